"""One short fine-tune and its scores, run inside a Ray Tune trial.

The training is `loop.sft` (the target run's loop) in the trial's own process with the
plain torch engine: a probe pays no Ray Train start-up. The trial reports per-category
response loss on `eval_file` (probes) and, with `generate`, exact match (baselines).
"""

from __future__ import annotations

import time


def fine_tune_and_score(config: dict) -> None:
    """Tune trainable; reports per-category loss, token accuracy and (with `generate`)
    exact match. config["trial"]: name, seed, train_file, eval_file, model_path,
    train (TrainConfig dict), generate, max_new_tokens, save_to (write the trained model
    there in HF format), fail_once (testing)."""
    import os

    import pyarrow.parquet as pq
    from ray import tune

    from instructmix.evaluation.eval_stage import summarise
    from instructmix.evaluation.scoring import score_model
    from instructmix.training.loop import InProcessContext, sft

    t = config["trial"]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    marker = t.get("fail_once")
    if marker and not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError(f"fault injection: trial {t['name']} fails once")
    t0 = time.time()
    table = pq.read_table(t["train_file"])
    engine, tok, state = sft({"model_path": t["model_path"], "train": t["train"],
                              "seed": t["seed"], "rows": table.num_rows},
                             InProcessContext(table))
    train_s = time.time() - t0
    model = engine._module().eval()
    if t.get("save_to"):
        model.save_pretrained(t["save_to"])
        tok.save_pretrained(t["save_to"])
    columns = ["id", "category", "messages", "answer"]
    if "meta" in pq.read_schema(t["eval_file"]).names:
        columns.append("meta")  # testbed chains: scored by depth
    rows = pq.read_table(t["eval_file"], columns=columns).to_pylist()
    scored = score_model(model, tok, rows, 64, t.get("max_new_tokens", 16),
                         t["train"]["max_seq_len"], generate_answers=t.get("generate", False))
    summary = summarise(scored, rows)
    per_cat = summary["per_category"]
    loss = {c: v["loss"] for c, v in per_cat.items()}
    accuracy = {c: v["token_accuracy"] for c, v in per_cat.items()}
    em = {c: v["exact_match"] for c, v in per_cat.items() if v["exact_match"] is not None}
    last = state["history"][-1] if state["history"] else {}
    tune.report({"name": t["name"], "seed": t["seed"], "loss": loss,
                 "token_accuracy": accuracy, "exact_match": em,
                 "steps": state["steps"], "train_tokens": last.get("tokens", 0),
                 "train_seconds": train_s, "seconds": time.time() - t0,
                 "final_train_loss": last.get("loss"),
                 **{k: summary[k] for k in ("by_depth", "by_complexity") if k in summary}})


def in_process_train(tc: dict, **overrides) -> dict:
    """A TrainConfig dict for `sft` in one process with the plain torch engine."""
    return dict(tc, num_workers=1, deepspeed=False, torch_threads=1, log_batch_ids=False,
                fail_at_step=None, **overrides)
