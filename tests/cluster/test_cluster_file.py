"""Static checks of the cluster-launcher file and the run configs; no Ray is started."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from instructmix.config import load_config

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_FILE = ROOT / "ray_cluster.yaml"
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
TORCH_PIN = "torch==2.13.0"
HEAD_ADDRESS = "--address=$RAY_HEAD_IP:6379"


@pytest.fixture(scope="module")
def cluster() -> dict:
    data = yaml.safe_load(CLUSTER_FILE.read_text())
    assert isinstance(data, dict), "ray_cluster.yaml must be a mapping"
    return data


def _ray_starts(commands: list[str]) -> list[str]:
    return [c for c in commands if "ray start" in c]


def _node_types(cluster: dict) -> dict[str, dict]:
    return cluster["available_node_types"]


def _gpu_types(cluster: dict) -> dict[str, dict]:
    return {
        name: nt for name, nt in _node_types(cluster).items()
        if name != cluster["head_node_type"] and nt["resources"].get("GPU", 0) > 0
    }


def test_top_level_keys(cluster):
    required = {
        "cluster_name", "max_workers", "provider", "auth", "available_node_types",
        "head_node_type", "file_mounts", "setup_commands", "head_start_ray_commands",
        "worker_start_ray_commands",
    }
    assert not required - cluster.keys(), f"missing: {sorted(required - cluster.keys())}"
    assert cluster["cluster_name"] == "instructmix"
    assert cluster["provider"]["type"] == "aws"
    assert cluster["provider"]["region"] == "us-west-2"
    assert cluster["auth"]["ssh_user"] == "ubuntu"


def test_head_node_type_exists_and_has_no_gpu(cluster):
    head = cluster["head_node_type"]
    assert head in _node_types(cluster)
    resources = _node_types(cluster)[head]["resources"]
    assert resources.get("GPU", 0) == 0, "training workers must not be placed on the head"
    assert resources.get("CPU", 0) > 0


def test_gpu_worker_type(cluster):
    gpu_types = _gpu_types(cluster)
    assert gpu_types, "need at least one worker node type with GPU > 0"
    assert any(nt.get("max_workers", 0) >= 1 for nt in gpu_types.values())
    for name, nt in gpu_types.items():
        assert nt.get("min_workers", 0) <= nt.get("max_workers", 0), name
        assert nt["max_workers"] <= cluster["max_workers"], name


def test_setup_installs_project_with_pinned_torch(cluster):
    mounts = cluster["file_mounts"]
    installs = [c for c in cluster["setup_commands"] if "pip install" in c]
    project_installs = [
        c for c in installs
        if any(f"-e {remote}" in c for remote in mounts)
    ]
    assert project_installs, "setup_commands must `pip install -e` the mounted project"
    assert all("requirements.lock" in c for c in project_installs), "install with the lock"
    assert any(TORCH_PIN in shlex.split(c) for c in project_installs)
    # No other torch requirement anywhere in the setup commands.
    for c in installs:
        for token in shlex.split(c):
            if re.match(r"torch(\W|$)", token):
                assert token == TORCH_PIN, f"unpinned or different torch in: {c}"


def test_torch_pin_matches_pyproject():
    pins = re.findall(r'"torch==([^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert pins == [TORCH_PIN.split("==")[1]]


def test_head_start_commands(cluster):
    commands = cluster["head_start_ray_commands"]
    assert any(c.strip() == "ray stop" for c in commands)
    starts = _ray_starts(commands)
    assert len(starts) == 1
    start = starts[0]
    for flag in ("--head", "--port=6379", "--dashboard-host=127.0.0.1",
                 "--autoscaling-config=~/ray_bootstrap_config.yaml"):
        assert flag in start.split(), flag


def test_worker_start_commands_point_at_head(cluster):
    commands = cluster["worker_start_ray_commands"]
    assert any(c.strip() == "ray stop" for c in commands)
    starts = _ray_starts(commands)
    assert starts, "no `ray start` in worker_start_ray_commands"
    for c in starts:
        assert HEAD_ADDRESS in c.split(), c
        assert "--head" not in c.split(), c


def test_file_mounts_map_remote_to_local_project(cluster):
    mounts = cluster["file_mounts"]
    assert "~/instructmix" in mounts
    local = Path(mounts["~/instructmix"]).expanduser()
    # `ray up` resolves relative local paths against its working directory: the repo root.
    local = (ROOT / local).resolve() if not local.is_absolute() else local
    assert local == ROOT
    assert (local / "pyproject.toml").is_file()
    assert (local / "instructmix" / "__init__.py").is_file()


def _ray_schema_path() -> Path | None:
    spec = importlib.util.find_spec("ray")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "autoscaler" / "ray-schema.json"
    return path if path.is_file() else None


def test_matches_ray_launcher_schema(cluster):
    schema_path = _ray_schema_path()
    if schema_path is None:
        pytest.skip("Ray does not ship autoscaler/ray-schema.json in this environment")
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(cluster, json.loads(schema_path.read_text()))


def test_ray_validate_config_after_defaults(cluster):
    """Ray's own offline checks, as `ray up` runs them once provider defaults are filled."""
    if _ray_schema_path() is None:
        pytest.skip("Ray does not ship autoscaler/ray-schema.json in this environment")
    util = pytest.importorskip("ray.autoscaler._private.util")
    prepared = util.prepare_config(json.loads(json.dumps(cluster)))
    util.validate_config(prepared)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_run_config_loads(path):
    load_config(path)


def test_cluster_run_config(cluster):
    cfg = load_config(ROOT / "configs" / "cluster.yaml")
    tc = cfg.train
    assert tc.use_gpu and tc.deepspeed and tc.zero_stage == 3 and tc.precision == "bf16"
    assert cfg.pool.sources, "a cluster run reads real data, not the testbed"
    # The training workers (one GPU each) fit on the GPU nodes the launcher may start.
    gpu_types = _gpu_types(cluster)
    max_gpus = sum(nt["resources"]["GPU"] * nt["max_workers"] for nt in gpu_types.values())
    assert tc.num_workers <= max_gpus
    assert any(
        tc.cpus_per_worker * min(tc.num_workers, nt["resources"]["GPU"])
        <= nt["resources"]["CPU"]
        for nt in gpu_types.values()
    )
    # Probe trials take a GPU each, fit a GPU node as many as it has GPUs, and at most as
    # many run at once as the launcher's GPU nodes hold.
    pc = cfg.probes
    assert pc.gpus_per_trial == 1 and "probes.gpus_per_trial" in cfg.gpu_requests
    assert any(pc.cpus_per_trial * nt["resources"]["GPU"] <= nt["resources"]["CPU"]
               for nt in gpu_types.values())
    assert pc.max_concurrent_trials <= max_gpus / pc.gpus_per_trial
