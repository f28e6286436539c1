"""Augmentation end to end on real Ray: selection -> SIT chains (rule backend) token-matched
-> Ray Train + DeepSpeed on the chains -> depth-wise eval -> augmented arms compared on Tune
-> report."""

import json

import pyarrow.parquet as pq
import pytest

from instructmix.pipeline import run_all
from tests.conftest import tiny_config

pytestmark = pytest.mark.slow
CATS = ["reverse", "upper", "rev_upper", "add"]


def test_sit_augmentation_trains_and_is_scored_by_depth(ray_local, tmp_path):
    run = tmp_path / "run"
    cfg = tiny_config(
        run,
        pool={"testbed": {"items_per_category": 50, "eval_per_category": 3, "categories": CATS,
                          "sequential_eval_per_depth": 3, "complex_nodes": [1, 3],
                          "complex_eval_per_level": 2,
                          "sequential_ops": ["reverse", "upper"]}},
        model={"max_positions": 128},
        select={"budget": 900, "budget_unit": "tokens"},
        augment={"train_on": "sit"},
        train={"max_steps": 4, "max_seq_len": 96},
        eval={"max_new_tokens": 12},
        compare={"strategies": ["iid", "iid+sit", "iid+tree"], "seeds": [0]})
    run_all(cfg)

    sel = pq.read_table(run / "select" / "train.parquet").to_pylist()
    stats = json.loads((run / "augment" / "stats.json").read_text())
    # every selected row ends as an item or a reject with a reason: add rows cannot chain,
    # so they stay single tasks (mode "none"), nothing is dropped
    assert stats["counts_add_up"] and stats["rows_in"] == len(sel)
    assert stats["items"] + stats["rejected"] == len(sel)
    items = pq.read_table(run / "augment" / "items.parquet").to_pylist()
    assert {x["origin_id"] for x in items} <= {r["id"] for r in sel}
    for x in items:
        chain = json.loads(x["chain"])
        assert chain[0]["mode"] == "original" and 1 <= x["depth"] <= 4
        if x["category"] == "add":
            assert x["depth"] == 1
        # the answer answers every step of the chain
        assert len(x["messages"][-1]["content"].split(" | ")) == x["depth"]
    assert max(x["depth"] for x in items) > 1
    # token matching: the chains kept never exceed the selection's tokens, and are close
    kept = pq.read_table(run / "augment" / "train.parquet").to_pylist()
    tokens = sum(x["n_tokens"] for x in kept)
    assert stats["matched_tokens"] == tokens <= stats["selection_tokens"]
    assert stats["selection_tokens"] - tokens <= max(x["n_tokens"] for x in items)
    assert len(kept) < len(sel)  # chains are longer: fewer items at equal tokens
    # the augmented rows keep the selection's training order (curricula need it)
    position = {r["id"]: k for k, r in enumerate(sel)}
    kept_positions = [position[x["origin_id"]] for x in kept]
    assert kept_positions == sorted(kept_positions)

    # the train stage trained on the augmented rows; eval scored chains by depth
    steps = json.loads((run / "train" / "_DONE.json").read_text())["summary"]["steps"]
    assert steps == min(4, len(kept) // (8 * 2))  # global batch: 8 rows x 2 workers
    results = json.loads((run / "eval" / "results.json").read_text())
    assert set(results["by_depth"]) == {"1", "2", "3", "4"}
    assert all(v["n"] == 3 for v in results["by_depth"].values())
    assert set(results["by_complexity"]) == {"1", "3"}

    # compare: the augmented arms trained on their own token-matched sets, scored by depth
    cells = json.loads((run / "compare" / "results.json").read_text())["cells"]
    by_arm = {c["strategy"]: c for c in cells}
    sit = by_arm["iid+sit"]
    assert sit["augment"]["matched_tokens"] <= by_arm["iid"]["selected_tokens"]
    # equal steps: fewer, longer rows train in a proportionally smaller global batch
    selected = sum(by_arm["iid"]["counts"].values())  # the same seed's selection
    assert by_arm["iid"]["global_batch"] == 16
    assert sit["global_batch"] == round(16 * sit["augment"]["matched_items"] / selected) < 16
    # the tree arm cannot grow `add` rows: each is rejected with the reason, none dropped
    tree = by_arm["iid+tree"]["augment"]
    assert tree["kind"] == "tree" and tree["items"] + tree["rejected"] == tree["rows_in"]
    cell = run / "compare" / "sets" / "iid+tree-s0"  # the cell's own augment artifacts
    tree_rejects = [json.loads(x) for x in (cell / "augment" / "rejected.jsonl").open()]
    assert len(tree_rejects) == tree["rejected"] > 0
    assert all(r["reason"] == "rules: category add has no string operation"
               for r in tree_rejects)
    assert all(set(c["by_depth"]) == {"1", "2", "3", "4"} for c in cells)
    table = (run / "compare" / "table.md").read_text()
    assert "following rate, depth 4" in table and "exact match, nodes 3" in table
    assert "optimizer steps" in table
    html = (run / "report" / "report.html").read_text()
    assert "By sequential depth" in html and "Augmentation" in html


def test_llm_backend_over_http_rejects_with_reasons_and_keeps_what_parses(ray_local, tmp_path):
    """The LLM path against a real OpenAI-compatible server serving a small model that
    answers testbed tasks: SIT needs a parseable mode word, which it never gives, so every
    row that must grow is rejected with that reason (rows drawn at depth 1 only need a
    response); the control regenerates responses, which do parse."""
    from instructmix.pipeline import BY_NAME, run_stage
    from tests.fixtures.chat_server import make_server

    run = tmp_path / "run"
    base = dict(pool={"testbed": {"items_per_category": 12, "eval_per_category": 2,
                                  "categories": ["reverse", "upper"]}},
                model={"max_positions": 512}, select={"budget": 10})
    cfg = tiny_config(run, **base)
    run_all(cfg, stop_after="select")
    # a generator that ends its answers: the run's model briefly fine-tuned (with the
    # project's own loop) on the selection, so it answers in a few characters and stops
    from instructmix.experiments.trial import in_process
    from instructmix.layout import RunLayout
    from instructmix.training.loop import InProcessContext, LoopSpec, sft

    table = pq.read_table(run / "select" / "train.parquet")
    train = in_process(cfg.train, epochs=40, max_steps=None, micro_batch_size=2)
    engine, tok, _ = sft(LoopSpec(RunLayout(run).model_path(), train, 0, table.num_rows),
                         InProcessContext(table))
    served = tmp_path / "served"
    engine._module().save_pretrained(served)
    tok.save_pretrained(served)
    server = make_server(str(served), port=0)
    import threading

    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        gen = {"backend": "http", "base_url": server.base_url, "max_new_tokens": 24,
               "max_retries": 0}
        sit = tiny_config(run, **base, augment={"train_on": "sit", "generator": gen})
        run_stage(sit, BY_NAME["augment"])
        stats = json.loads((run / "augment" / "stats.json").read_text())
        assert stats["rows_in"] == 10 and stats["counts_add_up"] and stats["rejected"] > 0
        rejects = [json.loads(x) for x in (run / "augment" / "rejected.jsonl").open()]
        bad_word = "llm: mode reply is not one of decompose/prefix/suffix/keep"
        assert all(r["step"] == "choose_modes[1]" and r["reason"] in (bad_word,
                   "empty completion") for r in rejects)
        assert any(r["reason"] == bad_word and r["raw"] for r in rejects)
        items = pq.read_table(run / "augment" / "items.parquet").to_pylist()
        assert len(items) + len(rejects) == 10
        assert all(x["depth"] == 1 and x["mode"] == "none" for x in items)

        control = tiny_config(run, **base, augment={"train_on": "control", "generator": gen})
        before = server.stats["chat_requests"]
        run_stage(control, BY_NAME["augment"])
        answered = len(items)  # the SIT items at depth 1 asked these responses already
        items = pq.read_table(run / "augment" / "items.parquet").to_pylist()
        assert len(items) == 10 and server.stats["chat_requests"] - before == 10 - answered
        for x in items:
            assert x["kind"] == "control" and x["messages"][-1]["content"].strip()
            assert json.loads(x["chain"])[0]["mode"] == "original" and x["complexity"] >= 1
        # a re-run is served from the cache: no request reaches the server
        before = server.stats["chat_requests"]
        run_stage(control, BY_NAME["augment"], force=True)
        assert server.stats["chat_requests"] == before
    finally:
        server.shutdown()
