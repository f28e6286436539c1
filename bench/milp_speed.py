"""Time the EE-CPO mixture solver (CBC, one thread) for C = 10, 50, 200 categories.

Random problems: gamma ~ N(0, 1), availability uniform in 100..5000, budget = 30% of the
pool, floors = 1% of each category's availability, trust region 0.05 around the
proportional mixture. Prints a JSON with median (and max) seconds of solve_mixture, model
building included, for MILP and LP over 5 repeats each, after one untimed warm-up solve
(the first call pays for loading CBC).

    .venv/bin/python bench/milp_speed.py
"""

from __future__ import annotations

import json
import statistics

import numpy as np

from instructmix.selectors.mixture import MixtureProblem, alpha_from_proportions, solve_mixture

SIZES = (10, 50, 200)
REPEATS = 5


def make_problem(c: int, seed: int, integer: bool) -> MixtureProblem:
    rng = np.random.default_rng(seed)
    available = rng.integers(100, 5001, size=c)
    budget = int(0.3 * available.sum())
    return MixtureProblem(
        categories=[f"cat{j}" for j in range(c)],
        gamma=rng.normal(size=(c, c)),
        alpha=alpha_from_proportions(available),
        available=available,
        budget=budget,
        floors=0.01 * available,
        current=budget * available / available.sum(),
        trust_region=0.05,
        integer=integer,
    )


def main() -> None:
    out: dict = {"repeats": REPEATS, "median_seconds": {}, "max_seconds": {}}
    solve_mixture(make_problem(10, seed=0, integer=True))  # warm-up
    for c in SIZES:
        row, worst = {}, {}
        for kind, integer in (("milp", True), ("lp", False)):
            times = []
            for rep in range(REPEATS):
                r = solve_mixture(make_problem(c, seed=1000 * c + rep, integer=integer))
                assert r.status == "optimal", r.status
                times.append(r.seconds)
            row[kind] = round(statistics.median(times), 4)
            worst[kind] = round(max(times), 4)
        out["median_seconds"][str(c)], out["max_seconds"][str(c)] = row, worst
    out["meets_goal_200_under_1s"] = max(out["median_seconds"]["200"].values()) < 1.0
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
