"""instructmix.storage and a RunLayout on object storage, against the moto server."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from instructmix import runtime, storage
from instructmix.cli import main
from instructmix.layout import POOL, TRAIN, RunLayout
from tests.conftest import tiny_config
from tests.processes import free_port
from tests.storage.conftest import SECRET, bucket_files, moto_server

REPO = Path(__file__).resolve().parents[2]


def test_local_paths_are_absolute_local_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fs, path = storage.filesystem("runs/a")
    assert isinstance(fs, pafs.LocalFileSystem) and path == str(tmp_path / "runs" / "a")
    assert not storage.is_remote("runs/a") and not storage.is_remote(tmp_path)
    assert storage.is_remote("s3://b/k") and storage.is_remote("S3://b")


def test_s3_file_system_comes_from_the_environment_only(s3_env, bucket):
    fs, path = storage.filesystem(f"s3://{bucket}/run/x/")
    assert isinstance(fs, pafs.S3FileSystem) and path == f"{bucket}/run/x"
    assert fs.region == "us-east-1"
    with fs.open_output_stream(f"{path}/hello.txt") as f:  # it talks to the test server
        f.write(b"hi")
    assert bucket_files(bucket) == {"run/x/hello.txt": b"hi"}
    # credentials stay in the environment: a pickled file system (sent to Ray workers) holds
    # the endpoint, not the secret
    assert SECRET.encode() not in pickle.dumps(fs)


@pytest.mark.parametrize("uri, problem", [("s3:///key", "names no bucket"),
                                          ("gs://b/k", "unsupported")])
def test_bad_uris_are_refused(uri, problem):
    with pytest.raises(ValueError, match=problem):
        storage.filesystem(uri)


def test_run_dir_keeps_an_s3_uri_and_refuses_other_schemes(tmp_path):
    assert tiny_config("s3://bucket/runs/a/").run_dir == "s3://bucket/runs/a"
    assert tiny_config(tmp_path / "r").run_dir == str(tmp_path / "r")
    with pytest.raises(ValueError, match="s3://BUCKET/KEY"):
        tiny_config("gs://bucket/run")


def test_missing_bucket_and_unreachable_endpoint_are_one_clear_error(s3_env, monkeypatch):
    with pytest.raises(storage.StorageError, match=r"run_dir s3://nobucket/run: bucket "
                       r"'nobucket' does not exist at http://127\.0\.0\.1:\d+"):
        storage.check("s3://nobucket/run")
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)
    with pytest.raises(storage.StorageError) as e:
        storage.check("s3://any/run")
    assert f"run_dir s3://any/run: object storage at {dead} refused or did not answer" in str(
        e.value) and "AWS_ACCESS_KEY_ID" in str(e.value)


def test_refused_credentials_are_one_clear_error(s3_env, monkeypatch, tmp_path):
    with moto_server(tmp_path, INITIAL_NO_AUTH_ACTION_COUNT="0") as url:  # checks keys
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        with pytest.raises(storage.StorageError, match=f"run_dir s3://b/run: object storage "
                           f"at {url} refused .*ACCESS_DENIED.*AWS_ACCESS_KEY_ID"):
            storage.check("s3://b/run")


def test_the_cli_names_the_missing_bucket_before_ray_starts(s3_env, tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("run_dir: s3://no-such-bucket/run\n")
    assert main(["run", str(config)]) == 1  # the unit tier fails a test that starts Ray
    err = capsys.readouterr().err
    assert err.startswith(f"error: run_dir s3://no-such-bucket/run: bucket 'no-such-bucket' "
                          f"does not exist at {s3_env['AWS_ENDPOINT_URL']}")


def test_push_and_pull_make_both_sides_equal(s3_env, bucket, tmp_path):
    uri, here = f"s3://{bucket}/run", tmp_path / "here"
    for rel, text in {"a/x.json": "1", "b.txt": "hello", "ray/ckpt": "c"}.items():
        (here / rel).parent.mkdir(parents=True, exist_ok=True)
        (here / rel).write_text(text)
    assert storage.push(here, uri, skip=("ray",)) == 2
    assert storage.push(here, uri, skip=("ray",)) == 0  # nothing changed: nothing sent
    assert set(bucket_files(bucket)) == {"run/a/x.json", "run/b.txt"}
    there = storage.mirror_of(uri)
    assert storage.pull(uri, there) == 2 and (there / "b.txt").read_text() == "hello"
    assert storage.pull(uri, there) == 0
    (here / "a" / "x.json").write_text("22")
    (here / "b.txt").unlink()
    assert storage.push(here, uri, skip=("ray",)) == 1  # the deleted object goes too
    (there / "extra").write_text("stale")
    assert storage.pull(uri, there) == 1
    assert sorted(p.name for p in there.rglob("*") if p.is_file()) == ["x.json"]
    assert (there / "a" / "x.json").read_text() == "22"


def test_send_and_fetch_move_one_file_or_folder_and_name_a_missing_object(
        s3_env, bucket, tmp_path, monkeypatch):
    run = storage.mirror_of(f"s3://{bucket}/run")
    (run / "m").mkdir(parents=True)
    (run / "m" / "w.bin").write_bytes(b"w" * 100)
    (run / "t.txt").write_text("t")
    assert storage.send(run / "t.txt", f"s3://{bucket}/run/t.txt") == 1
    assert storage.send(run / "t.txt", f"s3://{bucket}/run/t.txt") == 0  # unchanged
    assert storage.send(run / "m", f"s3://{bucket}/run/m") == 1
    assert storage.portable(run / "m") == f"s3://{bucket}/run/m"
    assert storage.portable(tmp_path / "plain") == str(tmp_path / "plain")
    monkeypatch.setenv("INSTRUCTMIX_MIRROR", str(tmp_path / "node"))  # another machine
    local = storage.on_this_node(f"s3://{bucket}/run/m")
    assert local == str(tmp_path / "node" / "s3" / bucket / "run" / "m")
    assert Path(local, "w.bin").read_bytes() == b"w" * 100
    assert storage.fetch(f"s3://{bucket}/run/t.txt", tmp_path / "node" / "t.txt") == 1
    assert storage.fetch(f"s3://{bucket}/run/t.txt", tmp_path / "node" / "t.txt") == 0
    with pytest.raises(storage.StorageError, match=f"s3://{bucket}/run/nope: not found"):
        storage.on_this_node(f"s3://{bucket}/run/nope")


def test_a_mirror_folder_maps_back_to_its_uri(s3_env, tmp_path):
    folder = storage.mirror_of("s3://b/runs/one") / "train" / "ray_results"
    assert folder.is_relative_to(tmp_path / "mirror")
    assert storage.remote_of(folder) == "s3://b/runs/one/train/ray_results"
    path, fs = storage.ray_storage(folder)
    assert path == "b/runs/one/train/ray_results" and isinstance(fs, pafs.S3FileSystem)
    assert storage.ray_storage(tmp_path / "local") == (str(tmp_path / "local"), None)


def test_remote_layout_sends_stage_folders_then_markers(s3_env, bucket):
    layout = RunLayout(f"s3://{bucket}/run/", "pool")
    assert layout.location == f"s3://{bucket}/run"
    assert layout.root == storage.mirror_of(f"s3://{bucket}/run")
    layout.pull()  # an empty run: nothing to fetch
    layout.write_json(POOL.stats, {"read": 1})
    assert bucket_files(bucket) == {}  # written locally only
    layout.write_marker("pool", "done", {"fingerprint": "f"})
    assert set(bucket_files(bucket)) == {"run/pool/stats.json", "run/pool/_DONE.json"}
    layout.remove_marker("pool", "done")
    assert set(bucket_files(bucket)) == {"run/pool/stats.json"}
    layout.clear("pool")
    assert bucket_files(bucket) == {} and not layout.stage_dir("pool").exists()
    train = RunLayout(f"s3://{bucket}/run", "train")
    ray_folder = train.writable(TRAIN.ray_results)
    ray_folder.mkdir()
    (ray_folder / "ckpt").write_text("Ray writes to the bucket")
    train.write_marker("train", "started", {"fingerprint": "t"})
    assert set(bucket_files(bucket)) == {"run/train/_STARTED.json"}  # Ray's folder: not sent


def test_workers_get_where_storage_is_but_not_the_credentials(s3_env):
    env = runtime.worker_env()
    assert env["AWS_ENDPOINT_URL"] == s3_env["AWS_ENDPOINT_URL"]
    assert env["AWS_REGION"] == "us-east-1"
    assert "AWS_SECRET_ACCESS_KEY" not in env and "AWS_ACCESS_KEY_ID" not in env


def test_ray_data_writes_a_remote_runs_shards_to_the_bucket_then_the_mirror_fetches_them(
        s3_env, bucket):
    """The write tasks may run on any node; the mirror is on the driver's disk only."""
    uri = f"s3://{bucket}/run"
    out = subprocess.run([sys.executable, "-m", "tests.storage.dataset_on_s3", uri], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"rows": [1000, 1000]}
    sent = {k: v for k, v in bucket_files(bucket).items() if k.endswith(".parquet")}
    assert sent and all(k.startswith("run/pool/shards/") for k in sent)  # nothing pushed yet
    mirror = RunLayout(uri).path(POOL.shards)
    assert {f"run/pool/shards/{f.name}": f.read_bytes() for f in mirror.glob("*")} == sent
    assert sorted(pq.read_table(mirror)["id"].to_pylist()) == list(range(1000))
