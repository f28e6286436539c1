"""Per-row scores of a causal LM: greedy-generation exact match, response loss and response
token accuracy (teacher-forced: share of response tokens, eos included, that are the argmax).

Exact match compares the normalised prediction with the row's `answer`, or, for rows without
one (plain Alpaca or chat eval sets), with its reference response; `reference` says which.
"""

from __future__ import annotations

import torch

from instructmix.training.collate import as_messages
from instructmix.training.response import response_scores


def normalise(text: str) -> str:
    return " ".join(text.strip().split())


def reference_of(answer: str, messages: list[dict]) -> tuple[str, str]:
    """(which reference, its text): the explicit answer, else the last assistant turn."""
    if answer.strip():
        return "answer", answer
    return "response", messages[-1]["content"] if messages else ""


def load(model_dir: str, device: str = "cpu", threads: int = 1):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(threads)
    tok = AutoTokenizer.from_pretrained(model_dir)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device).eval()
    return model, tok


@torch.inference_mode()
def generate(model, tok, messages: list[list[dict]], max_new_tokens: int) -> list[str]:
    prompts = [tok.apply_chat_template(m[:-1], tokenize=False, add_generation_prompt=True)
               for m in messages]
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(
        model.device)
    out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    return tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)


def score_rows(model_dir: str, rows: list[dict], batch_size: int, max_new_tokens: int,
               max_len: int, device: str = "cpu") -> list[dict]:
    """rows: {id, category, messages, answer} -> {id, category, loss, token_accuracy,
    prediction, correct, reference}."""
    model, tok = load(model_dir, device)
    return score_model(model, tok, rows, batch_size, max_new_tokens, max_len)


def score_model(model, tok, rows: list[dict], batch_size: int, max_new_tokens: int,
                max_len: int, generate_answers: bool = True) -> list[dict]:
    """Score a loaded model; without `generate_answers` only the loss (prediction None)."""
    out = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        msgs = [as_messages(r["messages"]) for r in chunk]
        losses, accuracies = response_scores(model, tok, msgs, max_len)
        preds = generate(model, tok, msgs, max_new_tokens) if generate_answers else [None] * len(
            chunk)
        for r, m, loss, acc, pred in zip(chunk, msgs, losses, accuracies, preds, strict=True):
            reference, target = reference_of(r.get("answer") or "", m)
            correct = (normalise(pred) == normalise(target)) if target and pred is not None \
                else None
            out.append({"id": r["id"], "category": r["category"], "loss": loss,
                        "token_accuracy": acc, "prediction": pred, "correct": correct,
                        "reference": reference if correct is not None else None})
    return out
