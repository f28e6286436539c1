"""Scale plan on paper: probe trials, tokens and GPU-hours (proxy) against the final run
(target), ZeRO-2/3 model-state memory per GPU from DeepSpeed's own estimators, the pool
stage's embedding GPU-hours, and the `ray_cluster.yaml` node type each scenario needs.
Nothing runs on a GPU: every throughput is an assumption below (docs/SCALE.md states them).

    python scripts/scale_plan.py   # prints the tables pasted in docs/SCALE.md
"""

from __future__ import annotations

from pathlib import Path

import yaml
from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

from instructmix.config import ProbesConfig, RunConfig, load_config

ROOT = Path(__file__).resolve().parents[1]
GIB = 2**30

# --- assumptions (docs/SCALE.md) ---
POOLS = (1_000_000, 100_000_000)
CATEGORIES = (50, 200)
BUDGET = {1_000_000: 100_000, 100_000_000: 1_000_000}  # rows selected for the final run
TOKENS_PER_ROW = 350  # prompt + response, mean
# Llama-3 shapes: total parameters, largest layer (the embedding, vocab 128256 x hidden).
MODELS = {"1B": (1.24e9, 128_256 * 2048), "8B": (8.03e9, 128_256 * 4096),
          "70B": (70.6e9, 128_256 * 8192)}
PROXY = "1B"  # configs/cluster.yaml probes Llama-3.2-1B (LoRA) for an 8B target
MFU = 0.35
FLOPS_PER_PARAM_TOKEN = 6  # forward + backward, full weights (LoRA probes: ~4, so an upper bound)
STATE_SHARE = 0.6  # model states may take this share of GPU memory; the rest: activations
# instance: (GPUs per node, GPU, usable GiB per GPU, dense bf16 TFLOPs per GPU)
INSTANCES = {"g5.12xlarge": (4, "A10G", 22.5, 125), "p4de.24xlarge": (8, "A100-80GB", 80.0, 312),
             "p5.48xlarge": (8, "H100-80GB", 79.6, 989)}
MISSING_MAX_NODES = 8  # nodes allowed of an instance type ray_cluster.yaml lacks
EMBED_ROWS_PER_S = 5_000  # all-MiniLM-L6-v2 per A10G at pool.max_embed_tokens=128 (to measure)


def probe_trials(c: int, pc: ProbesConfig, rounds: int = 1) -> dict[str, int]:
    """Trials the probe stage runs for c categories: plan() + warm starts + later rounds +
    plan_order() at most (every pair a candidate, the kept pairs disjoint: one alone arm
    per dependent)."""
    inter = pc.seeds * (1 + c) if pc.design != "random" else 0
    order = pc.dependencies == "order" and pc.design != "random"
    directed = 2 * min(pc.max_order_pairs // 2, c * (c - 1) // 2) if order else 0
    return {"intervention": inter, "random": pc.random_mixtures if pc.design != "intervention"
            else 0, "warm": pc.seeds if pc.warm_start_epochs else 0,
            "rounds": (rounds - 1) * inter, "order": pc.seeds * (directed + min(directed, c))}


def probe_rows(c: int, pc: ProbesConfig, rounds: int = 1) -> int:
    """Training rows (passes included) of those trials; random mixtures at their mean size."""
    n = probe_trials(c, pc, rounds)
    d0 = pc.base_per_category * c
    inter = pc.seeds * (d0 + c * (d0 + pc.add_per_category)) if n["intervention"] else 0
    return (pc.epochs * (inter * rounds + n["random"] * d0) + n["warm"] * d0
            * pc.warm_start_epochs + n["order"] * 2 * pc.add_per_category * pc.epochs)


def zero_gib(model: str, gpus_per_node: int, nodes: int) -> tuple[float, float]:
    """ZeRO-2 and ZeRO-3 model states per GPU (GiB, no offload), DeepSpeed's estimators."""
    total, largest = MODELS[model]
    _, z2 = estimate_zero2_model_states_mem_needs(total, gpus_per_node, nodes, cpu_offload=False)
    _, z3, _ = estimate_zero3_model_states_mem_needs(
        total, largest, gpus_per_node, nodes, cpu_offload=False, cpu_offload_params=False)
    return z2 / GIB, z3 / GIB


def node_types(path: Path = ROOT / "ray_cluster.yaml") -> dict[str, tuple[str, int]]:
    """instance type -> (node type, max workers) of the cluster launcher config."""
    types = yaml.safe_load(path.read_text())["available_node_types"]
    return {t["node_config"]["InstanceType"]: (name, t["max_workers"]) for name, t in
            types.items() if t["node_config"]["InstanceType"] in INSTANCES}


def fit(model: str, instance: str, max_nodes: int) -> dict | None:
    """Fewest nodes of `instance` whose ZeRO-2 (else ZeRO-3) states fit STATE_SHARE."""
    gpn, gpu, gib, _ = INSTANCES[instance]
    for nodes in range(1, max_nodes + 1):
        z2, z3 = zero_gib(model, gpn, nodes)
        for stage, need in ((2, z2), (3, z3)):
            if need <= STATE_SHARE * gib:
                return {"instance": instance, "nodes": nodes, "stage": stage, "z2": z2,
                        "z3": z3, "gpu": gpu}
    return None


def placement(model: str) -> dict:
    """The first instance type (those in ray_cluster.yaml first) that fits `model`."""
    have = node_types()
    order = [*have, *(i for i in INSTANCES if i not in have)]
    for inst in order:
        got = fit(model, inst, have[inst][1] if inst in have else MISSING_MAX_NODES)
        if got:
            return dict(got, node_type=have[inst][0] if inst in have else "missing")
    raise ValueError(f"{model}: no instance type fits")


def gpu_hours(params: float, tokens: float, tflops: float) -> float:
    return FLOPS_PER_PARAM_TOKEN * params * tokens / (tflops * 1e12 * MFU) / 3600


def scenarios(cfg: RunConfig) -> list[dict]:
    rows = []
    a10g = INSTANCES["g5.12xlarge"][3]
    for pool in POOLS:
        for c in CATEGORIES:
            for model in MODELS:
                probe_tok = probe_rows(c, cfg.probes, cfg.select.rounds) * TOKENS_PER_ROW
                target_tok = BUDGET[pool] * cfg.train.epochs * TOKENS_PER_ROW
                place = placement(model)
                proxy_n, target_n = MODELS[PROXY][0], MODELS[model][0]
                rows.append({
                    "pool": pool, "c": c, "model": model, "place": place,
                    "trials": sum(probe_trials(c, cfg.probes, cfg.select.rounds).values()),
                    "probe_tok": probe_tok, "target_tok": target_tok,
                    "probe_h": gpu_hours(proxy_n, probe_tok, a10g),
                    "target_h": gpu_hours(target_n, target_tok,
                                          INSTANCES[place["instance"]][3]),
                    "ratio": proxy_n * probe_tok / (target_n * target_tok),
                    "embed_h": pool / EMBED_ROWS_PER_S / 3600})
    return rows


def _n(x: float) -> str:
    return next(f"{x / d:.3g}{s}" for d, s in ((1e9, "B"), (1e6, "M"), (1e3, "k"), (1, ""))
                if x >= d or d == 1)


def tables(cfg: RunConfig) -> str:
    out = ["| pool rows | C | target | probe trials | probe tokens | probe GPU-h (proxy, "
           "A10G) | final tokens | final GPU-h | probe/final FLOPs | embed GPU-h (A10G) |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in scenarios(cfg):
        p = r["place"]
        out.append(f"| {_n(r['pool'])} | {r['c']} | {r['model']} | {r['trials']} | "
                   f"{_n(r['probe_tok'])} | {r['probe_h']:.3g} | {_n(r['target_tok'])} | "
                   f"{r['target_h']:.3g} ({p['gpu']}) | {r['ratio']:.3g} | {r['embed_h']:.3g} |")
    out += ["", "| target | node type | nodes x GPUs | ZeRO-2 GiB/GPU | ZeRO-3 GiB/GPU | "
            "stage | GPU GiB | used above |", "|---|---|---|---|---|---|---|---|"]
    have = node_types()
    for model in MODELS:
        chosen = placement(model)["instance"]
        for inst, (gpn, _, gib, _) in INSTANCES.items():
            name = have[inst][0] if inst in have else "missing"
            most = have[inst][1] if inst in have else MISSING_MAX_NODES
            p = fit(model, inst, most)
            if p is None:
                out.append(f"| {model} | {name} ({inst}) | > {most} x {gpn} | - | - | none "
                           f"fits {STATE_SHARE:.0%} | {gib} | |")
                continue
            out.append(f"| {model} | {name} ({inst}) | {p['nodes']} x {gpn} | {p['z2']:.1f} | "
                       f"{p['z3']:.1f} | ZeRO-{p['stage']} | {gib} | "
                       f"{'yes' if inst == chosen else ''} |")
    return "\n".join(out)


def main() -> None:
    print(tables(load_config(ROOT / "configs" / "cluster.yaml")))


if __name__ == "__main__":
    main()
