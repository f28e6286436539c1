"""SIT: sequential instruction tuning.

`sit_augment`: per row a target depth (number of sub-tasks, 1..max_depth) is drawn; the
rewriter then repeatedly picks a mode (decompose / prefix / suffix each add ONE sub-task,
keep stops) and rewrites, until the target depth is reached or the mode is keep; finally
the response is regenerated. Every step is one batched rewriter call over all rows still
growing. Rows whose meta holds `sit_cfg.translation_field` become hand-made
"translate then answer" chains instead (depth 2, no rewriter call).
`control_augment`: the fair control, original instructions with regenerated responses.

Item / reject dicts: see `tree_instruct`. Item extras here: depth = sub-tasks of the final
instruction (a row starts at its meta `depth`, else 1), mode = the modes used joined by ","
("none": no rewrite was needed), chain = JSON list of {mode, instruction} from the
original ("original") on, so len(chain) - 1 = number of rewrites.
"""

from __future__ import annotations

import random

from instructmix.augment.tree_instruct import (
    canonical_of,
    check_counts,
    make_item,
    make_reject,
    surface_of,
)
from instructmix.config import SitConfig
from instructmix.data.schema import meta_dict
from instructmix.generation.base import Reject, Rewriter

TRANSLATE_PROMPT = ("First translate the following text into English, then answer it.\n\n"
                    "{text}")
TRANSLATE_SEP = "\n\n"  # between the translation and the answer in the response


def start_depth(row: dict) -> int:
    """Sub-tasks of the original instruction: meta `depth` (testbed chains), else 1."""
    depth = meta_dict(row.get("meta")).get("depth")
    return depth if isinstance(depth, int) and depth >= 1 else 1


def draw_depth(seed: int, row_id: str, max_depth: int, weights: list[float] | None) -> int:
    """Target depth in 1..max_depth, a pure function of (seed, row id)."""
    if weights is not None and len(weights) != max_depth:
        raise ValueError(f"sit: {len(weights)} depth_weights for max_depth {max_depth}")
    return random.Random(f"{seed}-sit-{row_id}").choices(
        range(1, max_depth + 1), weights=weights)[0]


def _translation(row: dict, field: str | None) -> str | None:
    value = meta_dict(row.get("meta")).get(field) if field else None
    return value if isinstance(value, str) and value.strip() else None


def _translate_item(row: dict, rewriter, foreign: str) -> dict:
    english = surface_of(rewriter, canonical_of(rewriter, row))
    instruction = TRANSLATE_PROMPT.format(text=foreign)
    response = english + TRANSLATE_SEP + row["messages"][-1]["content"]
    chain = [{"mode": "original", "instruction": english},
             {"mode": "translate", "instruction": instruction}]
    item = make_item(row, rewriter, "sit", instruction, response, mode="translate",
                     depth=2, chain=chain)
    item["complexity"] = float(rewriter.complexity(canonical_of(rewriter, row)))
    return item


def sit_augment(rows: list[dict], rewriter: Rewriter, sit_cfg: SitConfig,
                seed: int) -> tuple[list[dict], list]:
    """(items, rejects) of SIT with `sit_cfg` (a `SitConfig`)."""
    kind = "sit"
    items: list[dict] = []
    rejects: list[dict] = []
    states = []  # dicts: row, cur (canonical), depth, target, modes, chain, done
    for row in rows:
        foreign = _translation(row, sit_cfg.translation_field)
        if foreign is not None:
            items.append(_translate_item(row, rewriter, foreign))
            continue
        cur = canonical_of(rewriter, row)
        states.append({"row": row, "cur": cur, "depth": start_depth(row), "modes": [],
                       "target": draw_depth(seed, row["id"], sit_cfg.max_depth,
                                            sit_cfg.depth_weights),
                       "chain": [{"mode": "original", "instruction": surface_of(rewriter, cur)}]})
    finished = []
    growing = [s for s in states if s["depth"] < s["target"]]
    finished += [s for s in states if s["depth"] >= s["target"]]
    rnd = 0
    while growing:
        rnd += 1
        modes = rewriter.choose_modes([s["cur"] for s in growing])
        to_rewrite = []
        for s, mode in zip(growing, modes, strict=True):
            if isinstance(mode, Reject):
                rejects.append(make_reject(s["row"], kind, f"choose_modes[{rnd}]", mode))
            elif mode == "keep":
                s["modes"].append("keep")
                finished.append(s)
            else:
                to_rewrite.append((s, mode))
        outs = rewriter.rewrite_sit([s["cur"] for s, _ in to_rewrite],
                                    [m for _, m in to_rewrite])
        growing = []
        for (s, mode), out in zip(to_rewrite, outs, strict=True):
            if isinstance(out, Reject):
                rejects.append(make_reject(s["row"], kind, f"rewrite_sit[{rnd}]", out))
                continue
            s["cur"], s["depth"] = out, s["depth"] + 1
            s["modes"].append(mode)
            s["chain"].append({"mode": mode, "instruction": surface_of(rewriter, out)})
            (growing if s["depth"] < s["target"] else finished).append(s)
    answers = rewriter.respond([s["cur"] for s in finished])
    for s, ans in zip(finished, answers, strict=True):
        if isinstance(ans, Reject):
            rejects.append(make_reject(s["row"], kind, "respond", ans))
            continue
        changed = len(s["chain"]) > 1
        items.append(make_item(s["row"], rewriter, kind, s["cur"], ans,
                               mode=",".join(s["modes"]) or "none", depth=s["depth"],
                               chain=s["chain"], changed=changed))
    position = {r["id"]: k for k, r in enumerate(rows)}  # items in the rows' order
    items.sort(key=lambda x: position[x["origin_id"]])
    check_counts(rows, items, rejects)
    return items, rejects


def control_augment(rows: list[dict], rewriter) -> tuple[list[dict], list[dict]]:
    """The fair control: the original instructions, responses regenerated by `rewriter`
    in one batched call (kind "control", depth = the original's, 1 for single tasks)."""
    instructions = [canonical_of(rewriter, row) for row in rows]
    items, rejects = [], []
    for row, ins, ans in zip(rows, instructions, rewriter.respond(instructions), strict=True):
        if isinstance(ans, Reject):
            rejects.append(make_reject(row, "control", "respond", ans))
            continue
        chain = [{"mode": "original", "instruction": surface_of(rewriter, ins)}]
        items.append(make_item(row, rewriter, "control", ins, ans, mode="none",
                               depth=start_depth(row), chain=chain, changed=False))
    check_counts(rows, items, rejects)
    return items, rejects
