"""score_model picks each row's scorer from `meta["eval"]`: a real tiny LM rigged to always
say "7" (never eos), so every generation is known in advance."""

import json

import pytest
import torch

from instructmix.config import ModelConfig
from instructmix.evaluation.scoring import score_model
from instructmix.evaluation.summary import summarise
from instructmix.training.model_factory import build_model, train_tokenizer

IFEVAL_IDS = ["punctuation:no_comma", "startend:quotation", "language:response_language"]


def _always_seven():
    tok = train_tokenizer(["question? 0123456789 #,.", "CB"], "char", 512)
    model = build_model(ModelConfig(n_layer=1, n_embd=32, n_head=2), tok, seed=0).eval()
    with torch.no_grad():
        model.lm_head.weight.zero_()
        model.lm_head.weight[tok.convert_tokens_to_ids("7")] = 1.0
        model.transformer.ln_f.bias.fill_(1.0)
    return model, tok


def _row(rid, category, response, answer="", **fields):
    meta = json.dumps({"eval": fields}) if fields else ""
    return {"id": rid, "category": category, "answer": answer, "meta": meta,
            "messages": [{"role": "user", "content": "question?"},
                         {"role": "assistant", "content": response}]}


ROWS = [
    _row("n1", "gsm", "so 7,777 in all\n#### 7,777", scorer="number"),  # generates "7777"
    _row("n2", "gsm", "#### 77", scorer="number", max_new_tokens=2),  # its own length: "77"
    _row("n3", "gsm", "#### 7", scorer="number"),
    _row("i1", "ifeval", "", scorer="ifeval", instruction_id_list=IFEVAL_IDS,
         kwargs=[{}, {}, {"language": "de"}]),
    _row("e1", "plain", "7777"),  # no meta: exact
    _row("c1", "mc", "7", answer="7", scorer="choice", choices=["C", "7"], gold=1),
]


def test_each_row_is_judged_by_its_scorer():
    model, tok = _always_seven()
    scored = score_model(model, tok, ROWS, batch_size=4, max_new_tokens=4, max_len=64)
    by_id = {s["id"]: s for s in scored}
    assert [s["id"] for s in scored] == [r["id"] for r in ROWS]
    assert [s["scorer"] for s in scored] == ["number"] * 3 + ["ifeval", "exact", "choice"]
    assert [by_id[i]["prediction"] for i in ("n1", "n2", "n3", "e1")] == [
        "7777", "77", "7777", "7777"]
    assert [by_id[i]["correct"] for i in ("n1", "n2", "n3", "e1", "c1")] == [
        True, True, False, True, True]
    assert by_id["n1"]["reference"] == "response" and by_id["c1"]["prediction"] == "7"
    ifeval = by_id["i1"]
    assert ifeval["correct"] is False and ifeval["reference"] == "rules"  # not quoted
    assert [i["followed"] for i in ifeval["instructions"]] == [True, False, None]
    assert ifeval["loss"] is None and ifeval["token_accuracy"] is None  # no reference
    assert all(s["loss"] is not None for s in scored if s["id"] != "i1")

    summary = summarise(scored, ROWS)
    pc = summary["per_category"]
    assert {c: v["scorer"] for c, v in pc.items()} == {
        "gsm": "number", "ifeval": "ifeval", "plain": "exact", "mc": "choice"}
    assert pc["gsm"]["exact_match"] == pytest.approx(2 / 3)
    assert pc["ifeval"]["exact_match"] == 0.0 and pc["ifeval"]["instruction_accuracy"] == 0.5
    assert pc["ifeval"]["uncovered"] == {"language:response_language": 1}
    assert pc["ifeval"]["loss"] is None
    assert summary["macro_exact_match"] == pytest.approx((2 / 3 + 0 + 1 + 1) / 4)
    assert summary["macro_loss"] == pytest.approx(
        sum(pc[c]["loss"] for c in ("gsm", "plain", "mc")) / 3)


def test_without_generation_only_losses():
    model, tok = _always_seven()
    scored = score_model(model, tok, ROWS, batch_size=4, max_new_tokens=4, max_len=64,
                         generate_answers=False)
    assert all(s["prediction"] is None and s["correct"] is None for s in scored)
    assert [s["loss"] is None for s in scored] == [False, False, False, True, False, False]
