"""Response loss and token accuracy of a real (tiny, untrained) causal LM: the padded batch
gives exactly what each row gives alone, counted over the response tokens plus eos only."""

import pytest
import torch

from instructmix.config import ModelConfig
from instructmix.training.model_factory import build_model, train_tokenizer
from instructmix.training.response import response_scores

ROWS = [[{"role": "user", "content": p}, {"role": "assistant", "content": a}]
        for p, a in [("reverse: abc", "cba"), ("upper: cbc", "CBC"), ("add: 1 2", "3")]]


def _alone(model, tok, messages):
    prompt = tok.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    r = tok(messages[-1]["content"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    ids = torch.tensor([p + r])
    with torch.inference_mode():
        logits = model(input_ids=ids).logits[0, len(p) - 1: -1]
    target = torch.tensor(r)
    loss = torch.nn.functional.cross_entropy(logits, target).item()
    return loss, (logits.argmax(-1) == target).float().mean().item()


def test_batch_scores_equal_row_by_row_scores():
    texts = [m["content"] for row in ROWS for m in row]
    tok = train_tokenizer(texts, "char", 512)
    model = build_model(ModelConfig(n_layer=1, n_embd=32, n_head=2), tok, seed=0).eval()
    with torch.no_grad():  # a model whose argmax is always "C" (lm_head is tied to wte)
        model.lm_head.weight.zero_()
        model.lm_head.weight[tok.convert_tokens_to_ids("C")] = 1.0
        model.transformer.ln_f.bias.fill_(1.0)
    losses, accuracy = response_scores(model, tok, ROWS, max_len=64)
    for row, loss, acc in zip(ROWS, losses, accuracy, strict=True):
        want_loss, want_acc = _alone(model, tok, row)
        assert abs(loss - want_loss) < 1e-4 and abs(acc - want_acc) < 1e-6
    # the model always says "C": "CBC" + eos has 2 hits of 4; "cba" + eos and "3" + eos none
    assert accuracy == [0.0, 0.5, 0.0]


def test_rows_without_an_answer_are_scored_against_their_response():
    """Plain Alpaca / chat eval rows: exact match against the reference response."""
    from instructmix.evaluation.scoring import score_model
    from instructmix.evaluation.summary import summarise

    texts = [m["content"] for row in ROWS for m in row]
    tok = train_tokenizer(texts, "char", 512)
    model = build_model(ModelConfig(n_layer=1, n_embd=32, n_head=2), tok, seed=0).eval()
    with torch.no_grad():  # always "C", never eos: 4 new tokens generate "CCCC"
        model.lm_head.weight.zero_()
        model.lm_head.weight[tok.convert_tokens_to_ids("C")] = 1.0
        model.transformer.ln_f.bias.fill_(1.0)
    rows = [{"id": "r1", "category": "x", "answer": "", "messages": [
                {"role": "user", "content": "say c"}, {"role": "assistant", "content": "CCCC"}]},
            {"id": "r2", "category": "x", "answer": "", "messages": [
                {"role": "user", "content": "say b"}, {"role": "assistant", "content": "BBBB"}]},
            {"id": "r3", "category": "y", "answer": "CCCC", "messages": ROWS[1]}]
    scored = score_model(model, tok, rows, batch_size=8, max_new_tokens=4, max_len=64)
    assert [r["prediction"] for r in scored] == ["CCCC"] * 3
    assert [r["correct"] for r in scored] == [True, False, True]
    assert [r["reference"] for r in scored] == ["response", "response", "answer"]
    summary = summarise(scored)
    assert summary["per_category"]["x"]["exact_match"] == 0.5
    assert summary["per_category"]["x"]["reference"] == "response"
    assert summary["macro_exact_match"] == 0.75
    accuracy = [r["token_accuracy"] for r in scored]
    assert summary["per_category"]["x"]["token_accuracy"] == pytest.approx(
        (accuracy[0] + accuracy[1]) / 2)
    assert summary["macro_token_accuracy"] == pytest.approx(
        ((accuracy[0] + accuracy[1]) / 2 + accuracy[2]) / 2)
