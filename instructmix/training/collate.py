"""Chat rows -> token ids with the loss on the response only."""

from __future__ import annotations

import torch

IGNORE = -100


def load_tokenizer(path: str):
    """The model's tokenizer; one without a pad token pads with eos (padding is masked)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def encode(tokenizer, messages: list[dict], max_len: int) -> tuple[list[int], list[int]]:
    """Prompt = chat template up to the generation prompt; response = the last assistant
    turn + eos. Labels are IGNORE on the prompt, so only response tokens carry loss.
    The prompt is cut from the left when too long, so the response is kept."""
    prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False,
                                           add_generation_prompt=True)
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    r_ids = tokenizer(messages[-1]["content"], add_special_tokens=False)["input_ids"]
    r_ids = r_ids + [tokenizer.eos_token_id]
    r_ids = r_ids[: max_len - 1]
    p_ids = p_ids[-(max_len - len(r_ids)):]
    return p_ids + r_ids, [IGNORE] * len(p_ids) + r_ids


def collate(tokenizer, rows_messages: list[list[dict]], max_len: int) -> dict[str, torch.Tensor]:
    encoded = [encode(tokenizer, m, max_len) for m in rows_messages]
    width = max(len(ids) for ids, _ in encoded)
    pad = tokenizer.pad_token_id
    input_ids = torch.full((len(encoded), width), pad, dtype=torch.long)
    labels = torch.full((len(encoded), width), IGNORE, dtype=torch.long)
    attention = torch.zeros((len(encoded), width), dtype=torch.long)
    for k, (ids, lab) in enumerate(encoded):
        input_ids[k, : len(ids)] = torch.tensor(ids)
        labels[k, : len(lab)] = torch.tensor(lab)
        attention[k, : len(ids)] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention}


def as_messages(value) -> list[dict]:
    """Messages as they come out of Arrow/numpy batches -> list of plain dicts."""
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in value]
