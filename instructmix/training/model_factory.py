"""Model stage: a small causal LM from a transformers config plus a tokenizer trained on
the pool with `tokenizers`, saved as an HF directory with a chat template; or an existing
HF model path named in the config (real runs). `make_model` also builds the probes' proxy
(`probes.model`) for the probe stage.
"""

from __future__ import annotations

import logging
import string
from pathlib import Path

import pyarrow.parquet as pq

from instructmix.config import ModelConfig, RunConfig
from instructmix.layout import MODEL, POOL, Artifact, RunLayout
from instructmix.runtime import offline

log = logging.getLogger("instructmix")

SPECIALS = {"pad": "<|pad|>", "unk": "<|unk|>", "bos": "<|bos|>", "eos": "<|end|>"}
USER, ASSISTANT, SYSTEM = "<|user|>", "<|assistant|>", "<|system|>"
# One turn per role marker; the response ends with eos so generation knows where to stop.
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}<|user|>{{ m['content'] }}\n"
    "{% elif m['role'] == 'system' %}<|system|>{{ m['content'] }}\n"
    "{% else %}<|assistant|>{{ m['content'] }}<|end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def train_tokenizer(texts: list[str], kind: str, vocab_size: int):
    """A character-level (WordLevel over single characters) or byte-level BPE tokenizer.
    The character vocabulary holds every printable ASCII character besides those of
    `texts`: augmented items and eval sets use characters the pool may lack (the testbed's
    chain separator `|`, for one), which would otherwise all become <|unk|>."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = list(SPECIALS.values()) + [USER, ASSISTANT, SYSTEM]
    if kind == "char":
        tok = Tokenizer(models.WordLevel(unk_token=SPECIALS["unk"]))
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        tok.decoder = decoders.Fuse()
        trainer = trainers.WordLevelTrainer(special_tokens=specials, min_frequency=1,
                                            vocab_size=100000)
    else:
        tok = Tokenizer(models.BPE(unk_token=SPECIALS["unk"]))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    if kind == "char":
        texts = [string.printable, *texts]
    tok.train_from_iterator(texts, trainer=trainer)
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=SPECIALS["pad"], unk_token=SPECIALS["unk"],
        bos_token=SPECIALS["bos"], eos_token=SPECIALS["eos"],
        additional_special_tokens=[USER, ASSISTANT, SYSTEM],
    )
    hf.chat_template = CHAT_TEMPLATE
    return hf


def build_model(mc: ModelConfig, tokenizer, seed: int):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    common = dict(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    if mc.arch == "gpt2":
        # No dropout: small models on exact tasks do not need it, and resume is exact.
        config = GPT2Config(n_layer=mc.n_layer, n_embd=mc.n_embd, n_head=mc.n_head,
                            n_positions=mc.max_positions, resid_pdrop=0.0, embd_pdrop=0.0,
                            attn_pdrop=0.0, **common)
        return GPT2LMHeadModel(config)
    config = LlamaConfig(num_hidden_layers=mc.n_layer, hidden_size=mc.n_embd,
                         num_attention_heads=mc.n_head, intermediate_size=4 * mc.n_embd,
                         max_position_embeddings=mc.max_positions, **common)
    return LlamaForCausalLM(config)


def pool_texts(shards: Path) -> list[str]:
    table = pq.read_table(shards, columns=["messages"])
    return ["\n".join(m["content"] for m in msgs) for msgs in table.column("messages").to_pylist()]


def check_model_path(path: str, field: str = "model.path") -> None:
    """Fail early and clearly when a named model cannot be loaded offline."""
    from transformers import AutoConfig, AutoTokenizer

    try:
        AutoConfig.from_pretrained(path)
        AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        why = " (HF_HUB_OFFLINE=1: only local paths work)" if offline() else ""
        raise FileNotFoundError(f"{field} {path!r} cannot be loaded{why}: "
                                f"{str(e).splitlines()[0]}") from None


def count_parameters(path: str) -> int:
    """Parameters of the HF model at `path`, from its config alone (built on the meta device:
    no weights are read)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path))
    return sum(p.numel() for p in model.parameters())


def make_model(mc: ModelConfig, layout: RunLayout, info: Artifact, hf: Artifact,
               seed: int, field: str = "model") -> dict:
    """Build `mc` (the config section `field`) from scratch into `hf`, or check the model it
    names; write `info`: its path, whether it was built, and its parameter count."""
    if mc.path:
        check_model_path(mc.path, f"{field}.path")
        record = {"path": mc.path, "built": False, "parameters": count_parameters(mc.path)}
    else:
        texts = pool_texts(layout.path(POOL.shards))
        tokenizer = train_tokenizer(texts, mc.tokenizer, mc.vocab_size)
        model = build_model(mc, tokenizer, seed)
        hf_dir = layout.writable(hf)
        model.save_pretrained(hf_dir)
        tokenizer.save_pretrained(hf_dir)
        # relative to the run folder: the run stays valid when moved, or pulled from a bucket
        # into another machine's mirror (`RunLayout.model_record` resolves it)
        record = {"path": hf_dir.relative_to(layout.root).as_posix(), "built": True,
                  "parameters": sum(p.numel() for p in model.parameters()),
                  "vocab": len(tokenizer)}
    layout.write_json(info, record)
    log.info("model %s: %s, %d parameters", info.name, record["path"], record["parameters"])
    return record


def run_model(cfg: RunConfig, layout: RunLayout) -> dict:
    return make_model(cfg.model, layout, MODEL.info, MODEL.hf, cfg.seed)


def context_length(config) -> int | None:
    """Longest sequence (prompt + new tokens) a model config accepts; None: no known limit."""
    return getattr(config, "max_position_embeddings", None) or getattr(
        config, "n_positions", None)
