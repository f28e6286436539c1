"""LoRA adapters (peft) on a causal LM, and the merge of trained adapters into plain weights
for the HF export: W' = W + scaling x B A (transposed for GPT-2's Conv1D layers)."""

from __future__ import annotations

from instructmix.config import LoraConfig


def add_adapters(model, lc: LoraConfig, section: str = "train.lora"):
    """`model` wrapped by peft with fresh adapters; only the adapters train. `section` names
    the config section in errors."""
    from peft import LoraConfig as PeftLora
    from peft import get_peft_model

    targets = lc.target_modules if isinstance(lc.target_modules, str) else list(
        lc.target_modules)
    config = PeftLora(r=lc.rank, lora_alpha=lc.alpha, lora_dropout=lc.dropout,
                      target_modules=targets, task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, config)
    except ValueError as e:  # e.g. a target module the model does not have
        raise ValueError(f"{section}.target_modules {lc.target_modules!r}: "
                         f"{str(e).splitlines()[0]}") from None


def check_adapters(model_path: str, lc: LoraConfig | None, section: str) -> None:
    """Fails, naming `section`, when `lc` does not fit the model at `model_path` (built on
    the meta device: no weights are read); run by the driver before any trial starts."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if lc is None:
        return
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_path))
    add_adapters(model, lc, section)


def is_adapted(module) -> bool:
    from peft import PeftModel

    return isinstance(module, PeftModel)


def merged_state(module, state: dict) -> dict:
    """The base model's state dict with every adapter merged in. `state` is the adapted
    model's full state dict (gathered, fp32); `module` supplies the layers' scaling."""
    prefix = "base_model.model."
    merged = {}
    for name, layer in module.named_modules():
        if not hasattr(layer, "lora_A") or "default" not in layer.lora_A:
            continue
        a = state.pop(f"{name}.lora_A.default.weight")
        b = state.pop(f"{name}.lora_B.default.weight")
        delta = (b @ a) * layer.scaling["default"]
        if getattr(layer, "fan_in_fan_out", False):
            delta = delta.T
        key = f"{name}.base_layer.weight"
        merged[key] = state.pop(key) + delta
    state.update(merged)
    out = {}
    for key, value in state.items():
        if ".lora_" in key:
            raise ValueError(f"adapter weight {key} was not merged")
        out[key.removeprefix(prefix).replace(".base_layer.", ".")] = value
    return out
