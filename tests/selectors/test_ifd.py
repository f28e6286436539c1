"""IFD: the ranking rule, and the scores of a tiny real model (saved as an HF folder)
against the loss of the response with and without its instruction, computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from instructmix.config import ModelConfig
from instructmix.selectors.ifd import ifd_ranking, ifd_scores
from instructmix.training.model_factory import build_model, train_tokenizer

ROWS = [[{"role": "user", "content": p}, {"role": "assistant", "content": a}]
        for p, a in [("reverse: abc", "cba"), ("upper: cbc", "CBC"), ("add: 1 2", "3"),
                     ("copy: hello", "hello")]]


def test_ranking_puts_ifd_below_one_first_highest_first():
    ifd = np.array([0.2, 1.5, 0.9, 1.0, 0.5, 3.0, 0.9])
    order = ifd_ranking(ifd).tolist()
    assert order[:4] == [2, 6, 4, 0]  # 0.9 (ties by position), 0.5, 0.2
    assert set(order[4:]) == {1, 3, 5}  # IFD >= 1 (1.0 included) after every aligned row
    assert sorted(order) == list(range(len(ifd)))


def test_ranking_edge_cases():
    assert ifd_ranking(np.array([])).tolist() == []
    assert ifd_ranking(np.array([1.0, 2.0])).tolist() in ([0, 1], [1, 0])
    assert ifd_ranking(np.array([0.3, 0.3, 0.3])).tolist() == [0, 1, 2]
    assert ifd_ranking(np.array([0.999, 1.0])).tolist() == [0, 1]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("ifd_model")
    texts = [m["content"] for row in ROWS for m in row]
    tok = train_tokenizer(texts, "char", 512)
    model = build_model(ModelConfig(n_layer=1, n_embd=32, n_head=2), tok, seed=0).eval()
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path, model, tok


def _response_loss(model, tok, messages) -> float:
    prompt = tok.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    r = tok(messages[-1]["content"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([p + r])).logits[0, len(p) - 1: -1]
    return torch.nn.functional.cross_entropy(logits.float(), torch.tensor(r)).item()


def test_ifd_scores_of_a_tiny_model(tiny_model):
    path, model, tok = tiny_model
    scores = ifd_scores(str(path), ROWS, max_len=64, batch_size=3)  # two batches: 3 + 1
    assert isinstance(scores, np.ndarray) and scores.shape == (len(ROWS),)
    assert np.isfinite(scores).all() and (scores > 0).all()
    for row, got in zip(ROWS, scores, strict=True):
        bare = [{"role": "user", "content": ""}, row[-1]]
        want = math.exp(_response_loss(model, tok, row) - _response_loss(model, tok, bare))
        assert got == pytest.approx(want, rel=1e-4)
    assert len(set(np.round(scores, 8).tolist())) == len(ROWS)  # not a constant
    again = ifd_scores(str(path), ROWS, max_len=64)  # one padded batch: same numbers
    assert np.allclose(again, scores, rtol=1e-5)
