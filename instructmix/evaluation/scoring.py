"""Per-row scores of a causal LM: `correct` as the row's scorer decides, response loss and
response token accuracy (teacher-forced: share of response tokens, eos included, that are the
argmax; None for a row without a reference response, e.g. IFEval's).

Scorers (`scorer` of the row's eval source, kept in `meta["eval"]`; rows without: exact):
- exact: the normalised greedy generation equals the row's `answer`, or, for rows without
  one (plain Alpaca or chat eval sets), its reference response; `reference` says which;
- number: the final numbers of generation and reference are equal (`numbers.py`);
- choice: the option of highest log-likelihood is the gold one (`choice.py`; no generation);
- ifeval: every covered IFEval instruction is followed (`ifeval.py`); per-instruction results
  in `instructions`, `reference` = "rules".
"""

from __future__ import annotations

from collections import defaultdict

import torch

from instructmix import storage
from instructmix.data.schema import meta_dict
from instructmix.evaluation.choice import best_option, option_scores
from instructmix.evaluation.ifeval import check_instructions
from instructmix.evaluation.numbers import number_match
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
    from transformers import AutoModelForCausalLM

    from instructmix.training.collate import load_tokenizer

    torch.set_num_threads(threads)
    tok = load_tokenizer(model_dir)
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
    """rows: {id, category, messages, answer, meta} -> {id, category, scorer, loss,
    token_accuracy, prediction, correct, reference} (see `score_model`)."""
    model, tok = load(storage.on_this_node(model_dir), device)
    return score_model(model, tok, rows, batch_size, max_new_tokens, max_len)


def eval_fields(row: dict) -> dict:
    """The row's scorer and its settings (`data.eval_fields`); rows without: exact."""
    fields = meta_dict(row.get("meta")).get("eval")
    return fields if isinstance(fields, dict) and fields.get("scorer") else {"scorer": "exact"}


def _losses(model, tok, msgs: list[list[dict]], batch_size: int, max_len: int) -> dict:
    """{row index: (loss, token accuracy)} of the rows with a reference response."""
    todo = [k for k, m in enumerate(msgs) if m[-1]["content"].strip()]
    out = {}
    for start in range(0, len(todo), batch_size):
        part = todo[start: start + batch_size]
        scores = response_scores(model, tok, [msgs[k] for k in part], max_len)
        out.update(zip(part, zip(*scores, strict=True), strict=True))
    return out


def _predictions(model, tok, msgs: list[list[dict]], fields: list[dict], batch_size: int,
                 max_new_tokens: int, max_len: int) -> dict:
    """{row index: greedy generation (its source's max_new_tokens, else `max_new_tokens`),
    or, for choice rows, the score of each option}."""
    by_length, choice, out = defaultdict(list), [], {}
    for k, f in enumerate(fields):
        if f["scorer"] == "choice":
            choice.append(k)
        else:
            by_length[f.get("max_new_tokens") or max_new_tokens].append(k)
    for n, todo in sorted(by_length.items()):
        for start in range(0, len(todo), batch_size):
            part = todo[start: start + batch_size]
            out.update(zip(part, generate(model, tok, [msgs[k] for k in part], n), strict=True))
    if choice:
        scores = option_scores(model, tok, [msgs[k][:-1] for k in choice],
                               [fields[k]["choices"] for k in choice], max_len, batch_size)
        out.update(zip(choice, scores, strict=True))
    return out


def judge(row: dict, messages: list[dict], fields: dict, prediction) -> dict:
    """`prediction`, `correct` and `reference` of one row by its scorer (None when there is
    no prediction, or, for exact and number, no reference to compare with)."""
    scorer = fields["scorer"]
    if prediction is None:
        return {"prediction": None, "correct": None, "reference": None}
    if scorer == "choice":
        best = best_option(prediction)
        return {"prediction": fields["choices"][best], "correct": best == fields["gold"],
                "reference": "answer", "option_logprobs": prediction}
    if scorer == "ifeval":
        ids = fields["instruction_id_list"]
        followed = check_instructions(prediction, ids, fields["kwargs"])
        covered = [f for f in followed if f is not None]
        return {"prediction": prediction, "correct": all(covered) if covered else None,
                "reference": "rules", "instructions": [
                    {"id": i, "followed": f} for i, f in zip(ids, followed, strict=True)]}
    reference, target = reference_of(row.get("answer") or "", messages)
    correct = None
    if target.strip():
        correct = (number_match(prediction, target) if scorer == "number"
                   else normalise(prediction) == normalise(target))
    return {"prediction": prediction, "correct": correct,
            "reference": reference if correct is not None else None}


def score_model(model, tok, rows: list[dict], batch_size: int, max_new_tokens: int,
                max_len: int, generate_answers: bool = True) -> list[dict]:
    """Score a loaded model: per row, in order, {id, category, scorer, loss, token_accuracy,
    prediction, correct, reference} (+ option_logprobs for choice rows, instructions for
    ifeval rows). Without `generate_answers` only loss and token accuracy (no prediction, no
    option scores; correct None)."""
    msgs = [as_messages(r["messages"]) for r in rows]
    fields = [eval_fields(r) for r in rows]
    losses = _losses(model, tok, msgs, batch_size, max_len)
    preds = _predictions(model, tok, msgs, fields, batch_size, max_new_tokens, max_len) \
        if generate_answers else {}
    out = []
    for k, (r, m, f) in enumerate(zip(rows, msgs, fields, strict=True)):
        loss, accuracy = losses.get(k, (None, None))
        out.append({"id": r["id"], "category": r["category"], "scorer": f["scorer"],
                    "loss": loss, "token_accuracy": accuracy,
                    **judge(r, m, f, preds.get(k))})
    return out
