"""The choice scorer on a real tiny causal LM: each option's score is the summed
log-probability of its tokens and eos as the assistant's response, computed here by hand
from the model's forward pass on the unpadded sequence."""

import json

import pytest
import torch

from instructmix.config import ModelConfig
from instructmix.evaluation.choice import best_option, response_logprobs
from instructmix.evaluation.scoring import score_model
from instructmix.training.model_factory import build_model, train_tokenizer

PROMPTS = ["Pick a colour: red or blue?", "Which is a number: cat, 42 or dog?"]
OPTIONS = [["red", "blue"], ["cat", "42", "dog!"]]


def _model():
    texts = PROMPTS + [o for opts in OPTIONS for o in opts] + ["BC"]
    tok = train_tokenizer(texts, "char", 512)
    model = build_model(ModelConfig(n_layer=1, n_embd=32, n_head=2), tok, seed=0).eval()
    with torch.no_grad():  # sharper, still arbitrary, distributions: options far apart
        model.lm_head.weight.mul_(30)
    return model, tok


def _by_hand(model, tok, prompt: str, option: str) -> float:
    text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                   add_generation_prompt=True)
    p = tok(text, add_special_tokens=False)["input_ids"]
    r = tok(option, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    with torch.inference_mode():
        logp = torch.log_softmax(model(input_ids=torch.tensor([p + r])).logits[0], -1)
    return sum(logp[len(p) - 1 + k, t].item() for k, t in enumerate(r))


def _row(rid: str, prompt: str, options: list[str], gold: int) -> dict:
    return {"id": rid, "category": "mc", "answer": options[gold],
            "messages": [{"role": "user", "content": prompt},
                         {"role": "assistant", "content": options[gold]}],
            "meta": json.dumps({"eval": {"scorer": "choice", "choices": options,
                                         "gold": gold}})}


def test_option_scores_are_summed_response_logprobs():
    model, tok = _model()
    msgs = [[{"role": "user", "content": p}, {"role": "assistant", "content": o}]
            for p, opts in zip(PROMPTS, OPTIONS, strict=True) for o in opts]
    batched = response_logprobs(model, tok, msgs, max_len=96)  # padded batch of 5
    hand = [_by_hand(model, tok, m[0]["content"], m[1]["content"]) for m in msgs]
    assert batched == pytest.approx(hand, abs=1e-3)


def test_prediction_is_the_most_likely_option():
    model, tok = _model()
    hand = [[_by_hand(model, tok, p, o) for o in opts]
            for p, opts in zip(PROMPTS, OPTIONS, strict=True)]
    best = [max(range(len(h)), key=h.__getitem__) for h in hand]
    for h in hand:  # the ranking is not a near tie
        top, second = sorted(h, reverse=True)[:2]
        assert top - second > 0.1
    wrong = [(b + 1) % len(opts) for b, opts in zip(best, OPTIONS, strict=True)]
    rows = [_row("r0", PROMPTS[0], OPTIONS[0], best[0]),
            _row("r1", PROMPTS[1], OPTIONS[1], wrong[1])]
    scored = score_model(model, tok, rows, batch_size=2, max_new_tokens=4, max_len=96)
    assert [s["prediction"] for s in scored] == [OPTIONS[0][best[0]], OPTIONS[1][best[1]]]
    assert [s["correct"] for s in scored] == [True, False]
    assert [s["scorer"] for s in scored] == ["choice", "choice"]
    assert scored[1]["option_logprobs"] == pytest.approx(hand[1], abs=1e-3)
    # loss and token accuracy are those of the gold option as the reference response
    assert scored[0]["loss"] > 0 and 0 <= scored[0]["token_accuracy"] <= 1


def test_a_model_that_always_says_c_picks_c():
    texts = ["say it", "BC"]
    tok = train_tokenizer(texts, "char", 512)
    model = build_model(ModelConfig(n_layer=1, n_embd=32, n_head=2), tok, seed=0).eval()
    with torch.no_grad():
        model.lm_head.weight.zero_()
        model.lm_head.weight[tok.convert_tokens_to_ids("C")] = 1.0
        model.transformer.ln_f.bias.fill_(1.0)
    rows = [_row("a", "say it", ["B", "C", "BB"], 1), _row("b", "say it", ["BB", "B", "C"], 0)]
    scored = score_model(model, tok, rows, batch_size=8, max_new_tokens=4, max_len=64)
    assert [s["prediction"] for s in scored] == ["C", "C"]
    assert [s["correct"] for s in scored] == [True, False]
    assert best_option([-1.0, -0.5, -0.5]) == 1  # a tie goes to the first option
