"""lm-evaluation-harness on the exported model (`eval.lm_eval`): its tasks (MMLU, GSM8K,
IFEval, ... from the hub, or task YAMLs of `include_path` over local files) run through
`lm_eval.simple_evaluate` with its HF backend, in one Ray task (a CPU, or a GPU with
`eval.use_gpu`). The result is compact: per task, each metric's value, stderr and the docs
scored."""

from __future__ import annotations

from instructmix import storage
from instructmix.config import LmEvalConfig, RunConfig


def _metrics(entry: dict) -> dict:
    """{"acc,none": v, "acc_stderr,none": s, ...} -> {"acc": {value, stderr}}; a filter other
    than "none" (e.g. GSM8K's strict-match) is kept as "metric/filter"."""
    out = {}
    for key, value in entry.items():
        if "," not in key or "_stderr," in key:
            continue
        metric, filt = key.split(",", 1)
        stderr = entry.get(f"{metric}_stderr,{filt}")
        out[metric if filt == "none" else f"{metric}/{filt}"] = {
            "value": value, "stderr": stderr if isinstance(stderr, (int, float)) else None}
    return out


def compact(res: dict, lc: LmEvalConfig, model_dir: str) -> dict:
    """The JSON-able summary of a `simple_evaluate` result."""
    import lm_eval

    n = res.get("n-samples", {})
    tasks = {name: {"metrics": _metrics(entry),
                    "n": n.get(name, {}).get("effective"), "n_total": n.get(name, {}).get(
                        "original"),
                    "num_fewshot": res.get("n-shot", {}).get(name),
                    "version": res.get("versions", {}).get(name)}
             for name, entry in res["results"].items()}
    return {"lm_eval_version": lm_eval.__version__, "model": model_dir, "tasks": lc.tasks,
            "include_path": lc.include_path, "num_fewshot": lc.num_fewshot, "limit": lc.limit,
            "apply_chat_template": lc.apply_chat_template, "results": tasks}


def run_lm_eval(model_dir: str, lc: LmEvalConfig, device: str = "cpu") -> dict:
    """Run `lc`'s tasks on the HF model in `model_dir` (float32 on CPU, bf16 on CUDA)."""
    import lm_eval
    import torch
    from lm_eval.tasks import TaskManager

    torch.set_num_threads(1)  # one CPU per task, as the eval stage's scoring tasks
    res = lm_eval.simple_evaluate(
        model="hf", model_args={"pretrained": storage.on_this_node(model_dir),
                                "dtype": "bfloat16" if device.startswith("cuda") else "float32"},
        tasks=list(lc.tasks), num_fewshot=lc.num_fewshot, limit=lc.limit,
        batch_size=lc.batch_size, device=device, log_samples=False,
        apply_chat_template=lc.apply_chat_template,
        task_manager=TaskManager(include_path=lc.include_path))
    return compact(res, lc, model_dir)


def lm_eval_on_ray(model_dir: str, cfg: RunConfig) -> dict:
    """`run_lm_eval` in a Ray task, so it runs on a cluster worker (with a GPU if
    eval.use_gpu)."""
    import ray

    gpu = cfg.eval.use_gpu
    task = ray.remote(**({"num_gpus": 1} if gpu else {"num_cpus": 1}))(run_lm_eval)
    return ray.get(task.remote(storage.portable(model_dir), cfg.eval.lm_eval,
                               "cuda" if gpu else "cpu"))


def headline(summary: dict) -> str:
    """'task metric=value, ...': each task's first metric, for the log."""
    parts = []
    for name, r in summary["results"].items():
        first = next(iter(r["metrics"].items()), None)
        if first:
            v = first[1]["value"]
            parts.append(f"{name} {first[0]}={v:.4g}" if isinstance(v, float) else
                         f"{name} {first[0]}={v}")
    return ", ".join(parts)
