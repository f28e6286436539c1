"""`python -m tests.storage.trial_files_on_s3 RUN_URI NODE_MIRROR`: a two-trial Tune sweep
of a remote run whose trials run on "another node": Ray's workers are started with
INSTRUCTMIX_MIRROR=NODE_MIRROR, while this driver keeps its own mirror. Each trial reads a
file and a folder the driver wrote in its mirror, and writes a file. Prints what the trials
saw and what came back."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from instructmix import storage


class Spec:
    READS = ("text", "folder")
    WRITES = ("out",)

    def __init__(self, name: str, run: Path):
        self.name = name
        self.text = str(run / "probe" / "sets" / f"{name}.txt")
        self.folder = str(run / "model")  # read by both trials
        self.out = str(run / "probe" / "out" / f"{name}.txt")

    def to_dict(self) -> dict:
        return {"name": self.name, "text": self.text, "folder": self.folder, "out": self.out}


def trainable(config: dict) -> None:
    from ray import tune

    t = config["trial"]
    files = sorted(p.name for p in Path(t["folder"]).iterdir())
    Path(t["out"]).parent.mkdir(parents=True, exist_ok=True)
    Path(t["out"]).write_text(Path(t["text"]).read_text() + " trained")
    tune.report({"paths": json.dumps([t["text"], t["folder"], t["out"]]),
                 "folder_files": json.dumps(files)})


def main(uri: str, node_mirror: str) -> None:
    from instructmix.cluster import ensure_ray
    from instructmix.cluster.sweep import run_trials

    logging.basicConfig(level=logging.INFO)
    run = storage.mirror_of(uri)
    for name in ("a", "b"):
        Path(run, "probe", "sets").mkdir(parents=True, exist_ok=True)
        Path(run, "probe", "sets", f"{name}.txt").write_text(f"set {name}")
    Path(run, "model").mkdir(parents=True, exist_ok=True)
    Path(run, "model", "config.json").write_text("{}")
    Path(run, "model", "weights.bin").write_bytes(os.urandom(1000))
    driver_mirror = os.environ[storage.MIRROR_ENV]
    os.environ[storage.MIRROR_ENV] = node_mirror  # what Ray's processes inherit
    ensure_ray(num_cpus=2)
    os.environ[storage.MIRROR_ENV] = driver_mirror
    specs = [Spec("a", run), Spec("b", run)]
    done, failed = run_trials("probes", specs, trainable, run / "probe" / "tune",
                              resources={"cpu": 1}, max_concurrent=2, max_failures=0)
    print(json.dumps({"done": {d["trial"]: {"paths": json.loads(d["paths"]),
                                            "folder_files": json.loads(d["folder_files"])}
                               for d in done},
                      "failed": failed,
                      "outputs": {s.name: Path(s.out).read_text() for s in specs
                                  if Path(s.out).exists()}}))


if __name__ == "__main__":
    main(*sys.argv[1:])
