"""Eval sources and their scorers: unknown values and keys fail with the dotted path; the
choice scorer's fields are checked across the source at load time."""

import pytest

from instructmix.config import ConfigError, load_config


def _error(source: str) -> str:
    with pytest.raises(ConfigError) as e:
        load_config(None, [f"pool.eval_sources=[{source}]"])
    return str(e.value)


def test_scorers_load():
    cfg = load_config(None, [
        "pool.eval_sources=[{path: g.jsonl, scorer: number, max_new_tokens: 256}, "
        "{path: i.jsonl, scorer: ifeval}, "
        "{path: m.jsonl, scorer: choice, choices_field: options, choice_label: letter}, "
        "{path: e.jsonl}]"])
    srcs = cfg.pool.eval_sources
    assert [s.scorer for s in srcs] == ["number", "ifeval", "choice", "exact"]
    assert srcs[0].max_new_tokens == 256 and srcs[3].max_new_tokens is None
    assert (srcs[2].choices_field, srcs[2].choice_label) == ("options", "letter")


def test_unknown_scorer():
    msg = _error("{path: a, scorer: bleu}")
    assert "pool.eval_sources.0.scorer" in msg and "'bleu'" in msg and "'number'" in msg


def test_unknown_key_names_its_path():
    msg = _error("{path: a, scorer: choice, choices: c}")
    assert "pool.eval_sources.0.choices" in msg and "choices_field" in msg


def test_choice_without_choices_field():
    msg = _error("{path: a, scorer: choice}")
    assert "pool.eval_sources.0.choices_field" in msg and "is not set" in msg


def test_choice_settings_on_another_scorer():
    msg = _error("{path: a, scorer: number, choices_field: options, choice_label: index}")
    lines = msg.splitlines()
    assert any("pool.eval_sources.0.choices_field" in ln and "'number'" in ln for ln in lines)
    assert any("pool.eval_sources.0.choice_label" in ln and "'index'" in ln for ln in lines)


def test_choice_generates_nothing():
    msg = _error("{path: a, scorer: choice, choices_field: c, max_new_tokens: 9}")
    assert "pool.eval_sources.0.max_new_tokens" in msg and "generates nothing" in msg


def test_max_new_tokens_must_be_positive():
    assert "pool.eval_sources.0.max_new_tokens" in _error("{path: a, max_new_tokens: 0}")


def test_train_sources_have_no_scorer():
    with pytest.raises(ConfigError, match=r"pool.sources.0.scorer"):
        load_config(None, ["pool.sources=[{path: a, scorer: number}]"])
