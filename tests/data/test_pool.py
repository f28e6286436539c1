"""The pool stage on a real local Ray instance."""

import json
import logging
import re
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray.data

from instructmix.data.pool import run_pool
from instructmix.layout import RunLayout
from tests.conftest import SHARED_DATA, tiny_config

BAD_LINES = [
    b'{"id": "a1", "instruction": "Say hi", "output": "hi", "category": "greet"}',
    b'{"id": "a2", "instruction": "Add 2 and 2", "output": "4"',  # malformed JSON
    b'{"id": "a3", "output": "no instruction"}',  # missing field
    b'{"id": "a4", "instruction": ["a", "list"], "output": "x"}',  # wrong type: list
    b'{"id": "a1", "instruction": "Same id again", "output": "dup"}',  # duplicate id
    b"",  # blank line: not a row
    b'{"id": "a6", "instruction": "caf\xe9", "output": "x"}',  # not UTF-8
    b'{"id": "a7", "messages": [{"role": "user", "content": "hello"},'
    b' {"role": "assistant", "content": "hey"}], "category": "greet"}',
    b'{"id": "a8", "messages": [{"role": "user", "content": "no response"}]}',
    b"[1, 2, 3]",  # not an object
    b'{"instruction": "Name a colour", "output": "red", "category": "colours"}',
    b'{"id": "a11", "instruction": 42, "output": "x"}',  # wrong type: number
    b'{"id": "a12", "messages": [{"role": "user", "content": "q"},'
    b' {"role": "assistant", "content": ""}]}',  # empty response
    b'{"id": "a13", "instruction": "x", "output": ""}',  # empty output
    b'{"id": "a14", "prompt": "no known fields"}',  # unknown format
    b'{"id": "a15", "instruction": "' + b"long " * 50 + b'", "output": "x"}',  # too long
]
# line -> (kind, start of the reason); lines 1, 8 and 11 are accepted, line 6 is blank
WANT = {2: ("malformed JSON", "malformed JSON"),
        3: ("missing field", "missing field 'instruction'"),
        4: ("wrong type", "field 'instruction' must be a string, got list"),
        5: ("duplicate id", "duplicate id 'a1'"), 7: ("not valid UTF-8", "not valid UTF-8"),
        9: ("bad messages", "the last message"), 10: ("not an object", "a row must be"),
        12: ("wrong type", "field 'instruction' must be a string, got int"),
        13: ("empty field", "messages[1].content (the response) is empty"),
        14: ("empty field", "field 'output' is empty"),
        15: ("unknown format", "cannot tell the format"), 16: ("too long", "row of")}


def _run(tmp_path, sources, name="run", **pool):
    cfg = tiny_config(tmp_path / name, pool={"sources": sources, **pool})
    out = tmp_path / name / "pool"
    summary = run_pool(cfg, RunLayout(tmp_path / name, "pool"))
    stats = json.loads((out / "stats.json").read_text())
    rejected = [json.loads(x) for x in (out / "rejected.jsonl").read_text().splitlines()]
    accepted = pq.read_table(out / "shards").to_pylist()
    # the per-category and per-source counts are those of the shard files
    items, tokens = Counter(), Counter()
    for r in accepted:
        items[r["category"]] += 1
        tokens[r["category"]] += r["n_tokens"]
    assert stats["per_category"] == {c: {"items": items[c], "tokens": tokens[c]}
                                     for c in items}
    assert stats["per_source"] == Counter(r["source"] for r in accepted)
    return summary, stats, rejected, accepted


def test_bad_rows_are_quarantined_with_reasons(ray_local, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join(BAD_LINES) + b"\n")
    summary, stats, rejected, accepted = _run(tmp_path, [{"path": str(path)}],
                                              max_chars=200)
    # every row ends accepted or rejected; the blank line is counted apart, not as a row
    assert stats["blank_lines"] == 1 and stats["read"] == len(BAD_LINES) - 1
    assert stats["read"] == stats["accepted"] + stats["rejected"] and stats["counts_add_up"]
    assert summary["rejected"] == len(rejected) == len(WANT)
    origins = {int(r["origin"].rsplit(":", 1)[1]): r for r in rejected}
    assert set(origins) == set(WANT)
    for line, (kind, reason) in WANT.items():
        assert origins[line]["kind"] == kind and origins[line]["reason"].startswith(reason), line
    assert origins[5]["reason"].endswith("bad.jsonl:1)")  # names the first occurrence
    # counted by kind, the details stay in rejected.jsonl
    assert stats["rejected_by_reason"] == {
        "malformed JSON": 1, "missing field": 1, "wrong type": 2, "duplicate id": 1,
        "not valid UTF-8": 1, "bad messages": 1, "not an object": 1, "empty field": 2,
        "unknown format": 1, "too long": 1}
    assert len(accepted) == 3 and {r["id"] for r in accepted} >= {"a1", "a7"}
    assert next(r for r in accepted if r["id"] == "a1")["messages"][-1]["content"] == "hi"
    for row in accepted:
        assert len(row["embedding"]) == 384 and row["n_tokens"] > 0 and row["category"]


def _shards(folder, names, rows=5):
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("".join(
            json.dumps({"instruction": f"{name} question {k}", "output": f"answer {k}"}) + "\n"
            for k in range(rows)))


def test_sharded_sources_without_ids_keep_every_row(ray_local, tmp_path):
    """A named folder of shards and same-named files in subfolders of an unnamed folder:
    no false duplicates; ids stable across runs and independent of the sources' order."""
    _shards(tmp_path / "mydata", ["part-0.jsonl", "part-1.jsonl"])
    _shards(tmp_path / "nested", ["a/part.jsonl", "b/part.jsonl"])
    sources = [{"path": str(tmp_path / "mydata"), "name": "mydata"},
               {"path": str(tmp_path / "nested")}]
    _, stats, rejected, accepted = _run(tmp_path, sources, name="one")
    assert stats["read"] == stats["accepted"] == 20 and not rejected
    assert stats["rejected_by_reason"] == {}
    _, _, _, again = _run(tmp_path, sources[::-1], name="two")
    ids = {r["id"]: (r["source"], r["messages"][0]["content"]) for r in accepted}
    assert ids == {r["id"]: (r["source"], r["messages"][0]["content"]) for r in again}
    assert sum(i.startswith("mydata-") for i in ids) == 10


def test_parquet_mapping_and_kmeans_categories(ray_local, tmp_path):
    rows = [{"q": f"question {k} about {'cats' if k % 2 else 'numbers'}", "a": str(k)}
            for k in range(30)]
    rows.append({"q": None, "a": "x"})
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "data.parquet")
    src = {"path": str(tmp_path / "data.parquet"), "format": "mapping",
           "mapping": {"instruction": "q", "output": "a"}}
    _, stats, rejected, accepted = _run(tmp_path, [src], num_clusters=2)
    assert stats["read"] == 31 and stats["accepted"] == 30 and len(rejected) == 1
    assert rejected[0]["reason"] == "missing field 'instruction'"
    assert stats["categories_assigned_by_kmeans"] == 30
    assert {r["category"] for r in accepted} == {"cluster-00", "cluster-01"}


def test_json_array_file(ray_local, tmp_path, caplog):
    rows = [{"instruction": f"say {k}", "output": str(k)} for k in range(5)] + [{"x": 1}]
    (tmp_path / "rows.json").write_text(json.dumps(rows, indent=2))
    ray_data_log = logging.getLogger("ray.data")  # it does not reach the root logger
    ray_data_log.addHandler(caplog.handler)
    try:
        _, stats, rejected, accepted = _run(tmp_path, [{"path": str(tmp_path / "rows.json")}])
        # Ray Data's progress (logged off a terminal, as here) for the stage's long runs: the
        # ingest, the embedding, and (rows without categories) the k-means assignment and
        # write; not for the short passes, nor for later runs
        assert len(set(re.findall(r"Running Dataset: (\S+)", caplog.text))) == 3
        caplog.clear()
        ray.data.range(10).map_batches(lambda b: b).materialize()
        assert "execution finished" in caplog.text and "Total Progress:" not in caplog.text
    finally:
        ray_data_log.removeHandler(caplog.handler)
    assert stats["read"] == 6 and len(accepted) == 5
    assert rejected[0]["origin"].endswith("rows.json:item6")


def _footer_readers() -> int:
    """Actors of Ray Data's footer-reading pool ever created on this instance."""
    import ray._private.state

    return sum(a["ActorClassName"].endswith("FooterReader")
               for a in ray._private.state.actors().values())


def test_testbed_pool_writes_eval_and_ground_truth(ray_local, tmp_path):
    footer_readers = _footer_readers()
    default_reader = ray.data.DataContext.get_current().use_datasource_v2
    summary, stats, rejected, accepted = _run(tmp_path, [])
    # the counts read the shards back without a pool of 32 footer-reading actors, and leave
    # Ray Data's default reader as the user's code finds it
    assert _footer_readers() == footer_readers
    assert ray.data.DataContext.get_current().use_datasource_v2 == default_reader
    assert summary["accepted"] == 9 * 40 and not rejected
    assert (tmp_path / "run" / "pool" / "ground_truth.json").is_file()
    evals = pq.read_table(tmp_path / "run" / "pool" / "eval.parquet").to_pylist()
    assert len(evals) == 9 * 4 and all(r["answer"] for r in evals)
    dc = stats["decontamination"]  # testbed prompts are far shorter than 13 words
    assert dc["eval_items_too_short"] == dc["eval_items"] == 9 * 4
    assert dc["pool_rows_rejected"] == 0


SHARED = [
    ("niv2/niv2_definitions_pos_example.jsonl", {"format": "alpaca"}),
    ("t0_p3_subset/t0_train_50k_first50_per_template.jsonl", {"format": "alpaca"}),
    ("flan_cot/flan_v2_cot_train.jsonl",
     {"format": "mapping", "mapping": {"instruction": "question", "output": "rationale",
                                       "answer": "answer", "category": "category"}}),
]


@pytest.mark.parametrize("rel, fmt", SHARED, ids=["niv2", "t0", "flan_cot"])
def test_shared_real_data(ray_local, tmp_path, rel, fmt):
    path = SHARED_DATA / rel
    if not path.is_file():
        pytest.skip(f"shared data not present: {path}")
    _, stats, rejected, accepted = _run(tmp_path, [{"path": str(path), "limit": 300, **fmt}])
    assert stats["read"] == 300 == stats["accepted"] + stats["rejected"]
    assert stats["accepted"] > 250
    assert all(r["reason"] for r in rejected)
    assert all(r["category"] and r["messages"][0]["role"] == "user" for r in accepted)


def _read_without_ray(path, chunk_bytes=1 << 20, **source) -> list[dict]:
    """The read tasks of one source run in this process, in file order."""
    from instructmix.config import SourceConfig
    from instructmix.data.ingest import number_lines
    from instructmix.data.read import count_lines, plan_reads, read_range, source_items

    items = source_items([SourceConfig(path=str(path), **source)], 0)
    tasks, _ = number_lines([count_lines(t) for t in plan_reads(items, chunk_bytes)])
    rows = []
    for t in tasks:
        for block in read_range({k: [v] for k, v in t.items()}, 10_000, 3):
            rows += [dict(zip(block, vals, strict=True)) for vals in zip(*block.values(),
                                                                        strict=True)]
    return rows


def test_every_and_offset_read_disjoint_spread_samples(tmp_path):
    from instructmix.config import SourceConfig

    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"instruction": f"q{k}", "output": f"a{k}"}) + "\n"
                            for k in range(10)))

    def origins(**kw):
        return [r["origin"].rsplit(":", 1)[1] for r in _read_without_ray(path, 37, **kw)]

    assert origins(every=3) == ["1", "4", "7", "10"]
    assert origins(every=3, offset=1) == ["2", "5", "8"]
    assert origins(every=3, offset=1, limit=2) == ["2", "5"]
    assert origins() == [str(k) for k in range(1, 11)]
    with pytest.raises(ValueError, match="offset"):
        SourceConfig(path=str(path), every=2, offset=2)


def _big_file(path, n, dup_every, crlf=False):
    """n rows in many byte ranges: blank lines, duplicate ids and a bad row on the way;
    returns the lines as written."""
    lines = []
    for k in range(n):
        if k % 50 == 7:
            lines.append("")
        elif k % 97 == 3:
            lines.append('{"id": "broken", ')
        else:
            rid = f"{path.stem}-{k % dup_every if k % dup_every == 0 else k}"
            lines.append(json.dumps({"id": rid, "instruction": f"task {k} " + "w" * (k % 40),
                                     "output": f"answer {k}", "category": f"c{k % 3}"}))
    end = "\r\n" if crlf else "\n"
    path.write_bytes(end.join(lines).encode())  # the last line has no line ending
    return lines


def test_streamed_files_are_counted_line_by_line(ray_local, tmp_path):
    """Files cut into many 1 KiB ranges: each file's lines are counted apart from the rows
    read, and lines = not sampled + blank + accepted + rejected holds per file; duplicate
    ids are found across ranges, files and 10 dedupe partitions; origins name the right
    line."""
    a = _big_file(tmp_path / "a.jsonl", 700, dup_every=40)
    b = _big_file(tmp_path / "b.jsonl", 300, dup_every=1000, crlf=True)
    sources = [{"path": str(tmp_path / "a.jsonl")},
               {"path": str(tmp_path / "b.jsonl"), "every": 2, "offset": 1}]
    _, stats, rejected, accepted = _run(tmp_path, sources, chunk_bytes=1024, block_rows=64,
                                        dedupe_rows=100)
    files = stats["per_file"]
    fa, fb = files[str(tmp_path / "a.jsonl")], files[str(tmp_path / "b.jsonl")]
    assert fa["lines"] == len(a) and fb["lines"] == len(b)
    assert fa["counted_by"] == "newlines" and fa["not_sampled"] == 0
    assert fb["not_sampled"] == len(b) // 2
    assert fa["blank"] == sum(x == "" for x in a)
    assert fb["blank"] == sum(x == "" for k, x in enumerate(b) if k % 2 == 1)
    for f in (fa, fb):
        assert f["adds_up"] and f["lines"] == (f["not_sampled"] + f["blank"] + f["accepted"]
                                               + f["rejected"])
    assert stats["accepted"] == fa["accepted"] + fb["accepted"] == len(accepted)
    assert len({r["id"] for r in accepted}) == len(accepted)
    by_file = {"a.jsonl": a, "b.jsonl": b}
    for r in rejected:  # the origin's line holds the rejected row
        name, line = r["origin"].rsplit("/", 1)[1].rsplit(":", 1)
        assert by_file[name][int(line) - 1].startswith(r["raw_text"][:40]), r
    dups = [r for r in rejected if r["kind"] == "duplicate id"]
    assert len(dups) == sum(1 for k in range(700) if k % 40 == 0 and k % 50 != 7
                            and k % 97 != 3) - 1
    first = a.index(next(x for x in a if '"id": "a-0"' in x)) + 1
    assert all(r["reason"].endswith(f"a.jsonl:{first})") for r in dups)
    assert [r["origin"] for r in rejected] == sorted(
        (r["origin"] for r in rejected), key=lambda o: (o.rsplit(":", 1)[0],
                                                        int(o.rsplit(":", 1)[1])))


def test_dedupe_partitions_are_even_and_hold_every_copy_of_an_id(ray_local, tmp_path):
    """2,000 rows into 20 partitions of about 100: hashing the ids themselves keeps every
    partition near 100 rows (hashing 20 bucket numbers into 20 partitions put up to 3
    buckets in one), bad rows are spread by origin, and each id's copies meet."""
    from instructmix.config import SourceConfig
    from instructmix.data.ingest import ingest
    from instructmix.data.read import source_items

    path = tmp_path / "rows.jsonl"
    path.write_text("".join(
        ("{broken\n" if k % 10 == 0 else json.dumps(
            {"id": f"r{k % 1000}", "instruction": f"q{k}", "output": "a"}) + "\n")
        for k in range(2000)))
    ing = ingest(source_items([SourceConfig(path=str(path))], 0), max_chars=1000,
                 chunk_bytes=4096, block_rows=64, dedupe_rows=100)
    sizes = [len(b) for b in ing.outcome.iter_batches(batch_size=None,
                                                      batch_format="pyarrow")]
    assert sum(sizes) == 2000 and len(sizes) <= 20 and max(sizes) < 160, sizes
    assert ing.by_status == {"accepted": 900, "malformed JSON": 200, "duplicate id": 900}


def test_rejected_rows_are_written_in_file_order_range_by_range(ray_local, tmp_path):
    """1,090 rejected rows sorted in ranges of about 150: every row once, in (file, line)
    order across both files."""
    from instructmix.config import SourceConfig
    from instructmix.data.ingest import ingest, rejected_lines
    from instructmix.data.read import source_items

    for name, bad in (("a.jsonl", 5), ("b.jsonl", 2)):
        (tmp_path / name).write_text("".join(
            ("{broken\n" if k % bad == 0 else json.dumps(
                {"id": f"{name}{k % 700}", "instruction": f"q{k}", "output": "a"}) + "\n")
            for k in range(1000)))
    items = source_items([SourceConfig(path=str(tmp_path))], 0)
    ing = ingest(items, max_chars=1000, chunk_bytes=4096, block_rows=64, dedupe_rows=200)
    chunks = list(rejected_lines(ing, sort_rows=150))
    rows = [json.loads(line) for line in b"".join(chunks).splitlines()]
    n = sum(ing.rejected_by_reason.values())
    # malformed: 200 + 500; duplicates: lines k and k + 700 that both parse, 240 + 150
    assert n == 200 + 500 + 240 + 150 and len(rows) == n
    where = [(r["origin"].rsplit("/", 1)[1].split(":")[0], int(r["origin"].rsplit(":", 1)[1]))
             for r in rows]
    assert where == sorted(where) and len(set(where)) == n
    assert {r["kind"] for r in rows} == {"malformed JSON", "duplicate id"}
    assert len(chunks) >= 1090 // 150 and all(c.endswith(b"\n") for c in chunks)  # by range


def test_a_lost_line_breaks_the_count():
    """The per-file check fails when the rows do not account for every counted line."""
    from instructmix.data.ingest import _tally

    items = [{"path": "f.jsonl", "every": 1, "offset": 0, "limit": 0}]
    tallies = [{"file": "f.jsonl", "status": "accepted", "count()": 8},
               {"file": "f.jsonl", "status": "blank", "count()": 1}]
    ok = _tally(None, tallies, items, {"f.jsonl": 9})
    assert ok.per_file["f.jsonl"]["adds_up"] and ok.read == 8 and ok.blank == 1
    lost = _tally(None, tallies, items, {"f.jsonl": 10})
    assert not lost.per_file["f.jsonl"]["adds_up"]
