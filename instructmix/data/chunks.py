"""Byte ranges of a line-oriented file, so that many tasks read one file at a memory cost
independent of its size.

A file is cut into ranges of `chunk_bytes`; a line belongs to the range its first byte is
in. Two passes, one task per range each:
- `count_newlines` counts b"\\n" in [start - 1, end - 1) (shifted by one byte). Summed over a
  file's ranges that is the number of newlines before its last byte, so the file has that
  many lines plus one (none when empty): a count that decodes no line, independent of the
  reading and parsing that follow. The prefix sums give each range its first line's index.
- `iter_lines` yields (0-based line index, line without its ending) of the lines that start
  in [start, end), reading `BUFFER` bytes at a time (a line that runs past `end` is read to
  its end).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

BUFFER = 1 << 20


def byte_ranges(size: int, chunk_bytes: int) -> list[tuple[int, int]]:
    return [(s, min(s + chunk_bytes, size)) for s in range(0, size, chunk_bytes)]


def count_newlines(f: BinaryIO, start: int, end: int) -> int:
    """Newlines in [start - 1, end - 1) of the file (see the module docstring)."""
    lo, hi = max(start - 1, 0), end - 1
    f.seek(lo)
    n, left = 0, hi - lo
    while left > 0:
        buf = f.read(min(BUFFER, left))
        if not buf:
            break
        n += buf.count(b"\n")
        left -= len(buf)
    return n


def line_count(size: int, shifted_newlines: int) -> int:
    """Lines of a file from the sum of `count_newlines` over its ranges."""
    return shifted_newlines + 1 if size else 0


def first_line_indices(start_counts: list[tuple[int, int]]) -> list[int]:
    """[(range start, its count_newlines)] in file order -> each range's first line index."""
    out, before = [], 0
    for start, count in start_counts:
        out.append(before + 1 if start else 0)
        before += count
    return out


def iter_lines(f: BinaryIO, start: int, end: int, first: int) -> Iterator[tuple[int, bytes]]:
    """(index, line) of every line that starts in [start, end); `first` is the index of the
    first of them (`first_line_indices`)."""
    pos = max(start - 1, 0)  # file position of buf[0]
    f.seek(pos)
    buf, cur = f.read(BUFFER), 0
    if start > 0:  # skip the line that started before `start`
        while (nl := buf.find(b"\n", cur)) < 0:
            more = f.read(BUFFER)
            if not more:
                return
            buf, pos = more, pos + len(buf)
        cur = nl + 1
    index = first
    while pos + cur < end:
        nl = buf.find(b"\n", cur)
        if nl < 0:
            more = f.read(BUFFER)
            if not more:
                if cur < len(buf):
                    yield index, buf[cur:].rstrip(b"\r")
                return
            buf, pos, cur = buf[cur:] + more, pos + cur, 0
            continue
        yield index, buf[cur:nl].rstrip(b"\r")
        index, cur = index + 1, nl + 1
