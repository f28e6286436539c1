"""A real S3-compatible server for the object-storage tests: moto's standalone server
(`python -m moto.server`, the S3 HTTP API) on a free 127.0.0.1 port, one per session."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.processes import free_port, listening, wait_for

SECRET = "instructmix-sentinel-secret-7f3a"  # must never reach an artifact or a log
S3_ENV_CLEARED = ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION")


@contextlib.contextmanager
def moto_server(folder: Path, **env: str):
    """A moto server on a free port (`env`: moto's settings); yields its URL."""
    port = free_port()
    log = folder / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                 "-p", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **env})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: listening(port), 60, "moto server listening", proc)
    except (AssertionError, TimeoutError):
        proc.kill()
        pytest.fail(f"moto server did not start: {log.read_text()[-2000:]}")
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """The endpoint URL of a moto server (any credentials), stopped after the session."""
    with moto_server(tmp_path_factory.mktemp("moto")) as url:
        yield url


@pytest.fixture
def s3_env(s3_server, monkeypatch, tmp_path) -> dict[str, str]:
    """The environment of a run on the test server (test credentials, a mirror folder
    under tmp_path), set in this process too."""
    env = {"AWS_ENDPOINT_URL": s3_server, "AWS_ACCESS_KEY_ID": "instructmix-test",
           "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true", "INSTRUCTMIX_MIRROR": str(tmp_path / "mirror")}
    for key in S3_ENV_CLEARED:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def bucket(s3_env) -> str:
    """A new empty bucket on the test server (boto3: independent of the code under test)."""
    import boto3

    name = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


def bucket_files(name: str, prefix: str = "") -> dict[str, bytes]:
    """Every object of the bucket under `prefix`: key -> content (not the empty "dir/"
    markers pyarrow leaves when it deletes the last file of a folder)."""
    import boto3

    s3 = boto3.client("s3")
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name, Prefix=prefix):
        for obj in page.get("Contents", []):
            if not obj["Key"].endswith("/"):
                out[obj["Key"]] = s3.get_object(Bucket=name, Key=obj["Key"])["Body"].read()
    return out
