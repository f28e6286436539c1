"""Byte ranges of a JSON-lines file: every line is read once, by the range it starts in,
with its index; the newline count gives the same number of lines without decoding any."""

import io
import random

import pytest

from instructmix.data import chunks


def _expected(data: bytes) -> list[bytes]:
    """Lines as Python splits a file (a final newline ends the last line)."""
    return [line.rstrip(b"\r\n") for line in io.BytesIO(data)]


@pytest.mark.parametrize("seed", range(4))
def test_ranges_read_every_line_once_with_its_index(monkeypatch, seed):
    monkeypatch.setattr(chunks, "BUFFER", 5)  # lines longer than a buffer and a range
    rng = random.Random(seed)
    for _ in range(500):
        data = bytes(rng.choice(b"ab\n\r") for _ in range(rng.randint(0, 60)))
        chunk = rng.randint(1, 15)
        f = io.BytesIO(data)
        spans = chunks.byte_ranges(len(data), chunk)
        counts = [chunks.count_newlines(f, s, e) for s, e in spans]
        want = _expected(data)
        assert chunks.line_count(len(data), sum(counts)) == len(want), (data, chunk)
        firsts = chunks.first_line_indices([(s, c) for (s, _), c in zip(spans, counts,
                                                                        strict=True)])
        got = [line for (s, e), first in zip(spans, firsts, strict=True)
               for line in chunks.iter_lines(f, s, e, first)]
        assert got == list(enumerate(want)), (data, chunk)


def test_a_range_inside_one_long_line_yields_nothing():
    data = b"short\n" + b"x" * 100 + b"\nend"
    f = io.BytesIO(data)
    assert list(chunks.iter_lines(f, 20, 40, 1)) == []
    assert list(chunks.iter_lines(f, 0, 6, 0)) == [(0, b"short")]
    assert list(chunks.iter_lines(f, 6, 7, 1)) == [(1, b"x" * 100)]
