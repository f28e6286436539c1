"""The files of Tune trials on a remote run (`run_dir: s3://…`), whichever node they run on.

The driver works in a mirror on its own disk. A trial spec names the fields holding paths
it reads and writes (`spec.READS`, `spec.WRITES`):
- the driver sends the files trials read to the bucket before they start (`send_inputs`)
  and gives the trials their URIs (`portable_dict`);
- a trial (`with_files`) fetches what it reads into its own node's mirror, runs on those
  paths, and sends what it wrote;
- the driver then fetches what the finished trials wrote (`fetch_outputs`), so the stage's
  closing push keeps it.
On a local run every path stays as it is and nothing moves.
"""

from __future__ import annotations

import functools
from pathlib import Path

from instructmix import storage


def _fields(spec, kind: str) -> tuple[str, ...]:
    return getattr(spec, kind, ())  # kind: "READS" or "WRITES"; a spec without: none


def _remote(spec, fields) -> dict[str, str]:
    """{field: URI} of `spec`'s paths in `fields` that are inside a remote run's mirror."""
    return {f: uri for f in fields
            if (path := getattr(spec, f)) and (uri := storage.remote_of(path))}


def send_inputs(specs: list) -> int:
    """The driver sends each file a trial reads that it holds (others are in the bucket
    already, or the trial's fetch names them); returns files sent."""
    sent, seen = 0, set()
    for spec in specs:
        for field, uri in _remote(spec, _fields(spec, "READS")).items():
            if uri not in seen and Path(getattr(spec, field)).exists():
                seen.add(uri)
                sent += storage.send(Path(getattr(spec, field)), uri)
    return sent


def portable_dict(spec) -> dict:
    """`spec.to_dict()` with the paths it reads and writes usable on any node."""
    return spec.to_dict() | _remote(spec, (*_fields(spec, "READS"), *_fields(spec, "WRITES")))


def with_files(trainable, spec_class):
    """`trainable` on this node's files: the fields `spec_class.READS` fetched to local
    paths first, `spec_class.WRITES` pointed at this node's mirror and sent after."""
    reads, writes = _fields(spec_class, "READS"), _fields(spec_class, "WRITES")
    if not reads and not writes:
        return trainable

    @functools.wraps(trainable)
    def run(config):
        trial = dict(config["trial"])
        for field in reads:
            if trial.get(field):
                trial[field] = storage.on_this_node(trial[field])
        sends = {f: trial[f] for f in writes if trial.get(f) and storage.is_remote(trial[f])}
        trial.update({f: str(storage.mirror_of(uri)) for f, uri in sends.items()})
        result = trainable(dict(config, trial=trial))
        for field, uri in sends.items():
            if Path(trial[field]).exists():
                storage.send(Path(trial[field]), uri)
        return result

    return run


def fetch_outputs(specs: list, finished: set[str]) -> int:
    """The driver fetches what the `finished` trials wrote; returns files fetched."""
    return sum(storage.fetch(uri, Path(getattr(spec, field)))
               for spec in specs if spec.name in finished
               for field, uri in _remote(spec, _fields(spec, "WRITES")).items())
