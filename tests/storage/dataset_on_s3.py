"""`python -m tests.storage.dataset_on_s3 RUN_URI`: Ray Data writes a 1,000-row dataset of 4
blocks as the pool's shards of a remote run (`RunLayout.write_dataset`, with its own local
Ray), twice, as a re-run stage would; prints the rows counted in the files each time."""

from __future__ import annotations

import json
import sys


def main(uri: str) -> None:
    import ray.data

    from instructmix.cluster import ensure_ray
    from instructmix.layout import POOL, RunLayout

    ensure_ray(num_cpus=2)
    ds = ray.data.range(1000, override_num_blocks=4)
    layout = RunLayout(uri, "pool")
    print(json.dumps({"rows": [layout.write_dataset(POOL.shards, ds) for _ in range(2)]}))


if __name__ == "__main__":
    main(sys.argv[1])
