"""A pretrained model (SmolLM2-135M-Instruct, `make instruct-model`) through Ray Train +
DeepSpeed on 2 CPU workers, with and without LoRA: its chat template in training, the
export, reloading it and scoring it."""

import json
import shutil

import pyarrow.parquet as pq
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from instructmix.evaluation.scoring import score_rows
from instructmix.pipeline import BY_NAME, run_all, run_stage
from instructmix.training.collate import IGNORE, encode
from tests.conftest import INSTRUCT_MODEL, needs_instruct_model, tiny_config

pytestmark = needs_instruct_model


def test_chat_template_and_loss_mask_of_the_pretrained_tokenizer():
    tok = AutoTokenizer.from_pretrained(INSTRUCT_MODEL)
    for head in ([], [{"role": "system", "content": "Be brief."}]):
        messages = head + [{"role": "user", "content": "Reverse abc."},
                           {"role": "assistant", "content": "cba"}]
        ids, labels = encode(tok, messages, 512)
        # the ids are the template's own rendering of the whole conversation (its trailing
        # newline aside): training sees the chat format the model was tuned on
        full = tok.apply_chat_template(messages, tokenize=False)
        assert full.endswith("cba<|im_end|>\n")
        assert ids == tok(full[:-1], add_special_tokens=False)["input_ids"]
        # loss only on the response and its end-of-turn token
        trained = [t for t in labels if t != IGNORE]
        assert tok.decode(trained) == "cba<|im_end|>"
        assert labels[: len(ids) - len(trained)] == [IGNORE] * (len(ids) - len(trained))


@pytest.fixture(scope="module")
def prepared(ray_local, tmp_path_factory):
    base = tmp_path_factory.mktemp("pretrained")
    run_all(_config(base), stop_after="augment")
    return base


@pytest.fixture(scope="module")
def base_scores(prepared):
    """The first 16 selected rows (every case trains on a copy of `prepared`) and the base
    model's scores of them."""
    rows = pq.read_table(prepared / "select" / "train.parquet").slice(0, 16).to_pylist()
    rows = [dict(r, answer="") for r in rows]
    return rows, score_rows(str(INSTRUCT_MODEL), rows, 16, 4, 96)


def _config(run_dir, **train):
    return tiny_config(run_dir, model={"path": str(INSTRUCT_MODEL)}, select={"budget": 64},
                       train={"max_seq_len": 96, "max_steps": 4, "checkpoint_every": 4,
                              "log_every": 2, "lr": 5e-4, "warmup_steps": 0, **train},
                       eval={"max_new_tokens": 4})


@pytest.mark.slow
@pytest.mark.parametrize("stage, lora", [(2, None), (3, {"rank": 8, "alpha": 32,
                                                          "target_modules": ["q_proj",
                                                                             "v_proj"]})])
def test_pretrained_model_under_deepspeed(prepared, base_scores, tmp_path, stage, lora):
    run_dir = tmp_path / "run"
    shutil.copytree(prepared, run_dir)
    cfg = _config(run_dir, zero_stage=stage, lr=2e-3 if lora else 5e-4, lora=lora)
    summary = run_stage(cfg, BY_NAME["train"])["summary"]
    assert summary["steps"] == 4
    history = json.loads((run_dir / "train" / "history.json").read_text())
    assert [h["step"] for h in history] == [2, 4] and all(h["loss"] > 0 for h in history)
    # the export is a plain HF model (adapters merged) with the base model's chat template
    exported = run_dir / "train" / "model"
    model = AutoModelForCausalLM.from_pretrained(exported)
    base = AutoModelForCausalLM.from_pretrained(INSTRUCT_MODEL)
    assert AutoTokenizer.from_pretrained(exported).chat_template == AutoTokenizer.\
        from_pretrained(INSTRUCT_MODEL).chat_template
    mine, theirs = model.state_dict(), base.state_dict()
    assert mine.keys() == theirs.keys()
    changed = {k for k in mine if not torch.equal(mine[k], theirs[k])}
    if lora:  # only the adapted projections moved
        assert changed and all(k.endswith(("q_proj.weight", "v_proj.weight")) for k in changed)
    else:
        assert any("mlp" in k for k in changed) and any("embed" in k for k in changed)
    # reloaded and scored: the trained rows' response loss fell below the base model's
    rows, before = base_scores
    after = score_rows(str(exported), rows, 16, 4, 96)
    mean = [sum(r["loss"] for r in s) / len(s) for s in (before, after)]
    assert mean[1] < mean[0], mean
    assert all(r["prediction"] is not None for r in after)
    if lora:  # the eval stage scores the exported model (the same route without LoRA)
        results = run_stage(cfg, BY_NAME["eval"])["summary"]
        assert 0 <= results["token_accuracy"] <= 1 and results["loss"] > 0
