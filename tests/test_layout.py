"""The run layout: ownership of artifacts and strict JSON that reads back as written."""

import json
import math

import pytest

from instructmix.layout import NONFINITE_KEY, POOL, PROBE, RunLayout


def test_strict_json_round_trip_keeps_nonfinite(tmp_path):
    layout = RunLayout(tmp_path, "probe")
    data = {"lo": [[-math.inf, 0.5], [math.nan, 1.0]], "hi": [math.inf, 2.0], "n": 3}
    layout.write_json(PROBE.interactions, data)
    raw = json.loads(layout.path(PROBE.interactions).read_text(),
                     parse_constant=lambda c: pytest.fail(f"bare {c} in the file"))
    assert raw["lo"] == [[None, 0.5], [None, 1.0]] and raw["hi"] == [None, 2.0]
    assert sorted(raw[NONFINITE_KEY]) == ["hi[0] = inf", "lo[0][0] = -inf", "lo[1][0] = nan"]
    back = layout.read_json(PROBE.interactions)
    assert back["lo"][0][0] == -math.inf and math.isnan(back["lo"][1][0])
    assert back["hi"] == [math.inf, 2.0] and back["n"] == 3 and NONFINITE_KEY not in back


def test_a_stage_writes_only_its_own_artifacts(tmp_path):
    with pytest.raises(PermissionError, match="owned by stage 'pool'"):
        RunLayout(tmp_path, "probe").write_json(POOL.stats, {})
    with pytest.raises(FileNotFoundError, match="run that stage first"):
        RunLayout(tmp_path, "select").read_json(PROBE.interactions)


def test_a_dataset_artifact_is_written_whole_again_and_counted_in_its_files(tmp_path,
                                                                            ray_local):
    import ray.data

    layout = RunLayout(tmp_path, "pool")
    ds = ray.data.range(300, override_num_blocks=3)
    assert layout.write_dataset(POOL.shards, ds) == 300
    assert layout.write_dataset(POOL.shards, ds.limit(120)) == 120  # not 420: replaced
    assert sorted(layout.read_table(POOL.shards)["id"].to_pylist()) == list(range(120))
