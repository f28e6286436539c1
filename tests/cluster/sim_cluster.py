"""A simulated multi-node Ray cluster for the fault tests, and `instructmix run` drivers
attached to it.

`ray.cluster_utils.Cluster`: a head (with the dashboard, for the state API) and two worker
nodes, two logical CPUs (or `node_cpus`) and one custom resource each (`head`, `node_a`,
`node_b`). It lives in a helper process of its own (`python -m tests.cluster.sim_cluster`:
a new process group, its own RAY_TMPDIR and ports), so it never touches the test session's
local Ray instance; the test drives it by one JSON line each way. `SimCluster.stop` shuts
it down, then kills its process group.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.processes import free_port, stop_group, wait_for

NODES = ("node_a", "node_b")
TRIAL_ACTOR = "ImplicitFunc"  # the actor class of a Tune function trial
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


class SimCluster:
    """The test's handle: addresses, node ids by name, node removal, the state API."""

    def __init__(self, log_dir: Path, node_cpus: int = 2, **env: str):
        """`env`: more variables for the cluster's processes (e.g. INSTRUCTMIX_MIRROR:
        the nodes' own folder for a remote run's files, not the driver's)."""
        self.tmp = tempfile.mkdtemp(prefix="imsim", dir="/tmp")  # short unix socket paths
        env = dict(os.environ, RAY_TMPDIR=self.tmp, PYTHONPATH=str(REPO),
                   IMSIM_NODE_CPUS=str(node_cpus), **env)
        env.pop("RAY_ADDRESS", None)
        self.log = open(log_dir / "sim_cluster.log", "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.cluster.sim_cluster"],
                                     cwd=REPO, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     start_new_session=True)
        try:
            info = self._reply()
            self.address, self.dashboard = info["address"], info["dashboard"]
            self.nodes: dict[str, str] = info["nodes"]  # name -> node id (hex)
            self.named = {v: k for k, v in self.nodes.items()}  # every node id -> name
            wait_for(self._state_api_up, 120, "state API on the head's dashboard")
        except BaseException:
            self.stop()
            raise

    def _state_api_up(self) -> bool:
        try:
            return len(self.alive()) == 3
        except Exception:
            return False

    def _reply(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the simulated cluster exited ({self.proc.poll()}); see "
                               f"{self.log.name}")
        return json.loads(line)

    def _send(self, **command) -> dict:
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return self._reply()

    def remove(self, name: str) -> None:
        self._send(cmd="remove", node=name)
        del self.nodes[name]

    def add(self, name: str) -> None:
        self.nodes[name] = self._send(cmd="add", node=name)["node_id"]
        self.named[self.nodes[name]] = name + "+"

    def alive(self) -> list[str]:
        """Names of the nodes the GCS counts alive."""
        from ray.util.state import list_nodes

        ids = {n.node_id for n in list_nodes(self.dashboard, raise_on_missing_output=False)
               if n.state == "ALIVE"}
        return [name for name, node_id in self.nodes.items() if node_id in ids]

    def actors(self, class_name: str, state: str | None = "ALIVE") -> list:
        from ray.util.state import list_actors

        filters = [("class_name", "=", class_name)] + ([("state", "=", state)] if state else [])
        return list_actors(self.dashboard, filters=filters, limit=10_000,
                           raise_on_missing_output=False)

    def training_trial(self, node: str | None = None) -> int | None:
        """Pid of a Tune trial (on `node`) inside its training code: it has loaded torch."""
        for actor in self.actors(TRIAL_ACTOR):
            if node is None or actor.node_id == self.nodes.get(node):
                with contextlib.suppress(OSError):
                    if "libtorch" in Path(f"/proc/{actor.pid}/maps").read_text():
                        return actor.pid
        return None

    def tasks(self, **filters) -> list:
        from ray.util.state import list_tasks

        return list_tasks(self.dashboard, filters=[(k, "=", v) for k, v in filters.items()],
                          limit=10_000, raise_on_missing_output=False)

    def names(self, node_ids) -> set[str]:
        """Names of node ids (a node added again is another node: `node_b+`)."""
        return {self.named.get(n, n) for n in node_ids if n}

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._send(cmd="shutdown")
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(60)
        stop_group(self.proc)  # whatever is left of its process group
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


class Driver:
    """`instructmix run CONFIG --set ray.address=ADDRESS [--stop-after STAGE]` in a process
    of its own (a context manager: its process group is killed on exit), output in `log`."""

    def __init__(self, config: Path, address: str, log: Path, stop_after: str | None = None):
        self.log_path = log
        self.log = open(log, "w")  # noqa: SIM115 (closed in __exit__)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("RAY_ADDRESS", None)
        self.proc = subprocess.Popen(
            [str(BIN / "instructmix"), "run", str(config), "--set", f"ray.address={address}",
             *(["--stop-after", stop_after] if stop_after else [])],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def __enter__(self) -> Driver:
        return self

    def __exit__(self, *exc) -> None:
        stop_group(self.proc)
        self.log.close()

    def wait_for(self, condition, what: str, timeout: float = 300):
        return wait_for(condition, timeout, what, self.proc)

    def kill(self) -> None:
        """SIGKILL the driver process itself (not its group: as a crash would)."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def finish(self, timeout: float = 600) -> str:
        """Wait for a successful exit; returns the output."""
        code = self.proc.wait(timeout)
        text = self.log_path.read_text()
        assert code == 0, text[-4000:]
        return text


def checkpoint_step(run_dir: Path) -> int:
    """Step of the latest checkpoint Ray Train registered for the train stage (0: none)."""
    snapshot = run_dir / "train" / "ray_results" / "sft" / "checkpoint_manager_snapshot.json"
    try:
        latest = json.loads(snapshot.read_text())["latest_checkpoint_result"]
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    return int(latest["metrics"]["step"]) if latest else 0


def _serve() -> None:
    """The helper process: start the cluster, print its addresses, obey commands."""
    from ray.cluster_utils import Cluster

    def node_args(name: str) -> dict:
        return {"num_cpus": int(os.environ["IMSIM_NODE_CPUS"]), "resources": {name: 1},
                "object_store_memory": 200 << 20}

    dash = free_port()
    # Ray's own processes (e.g. Ray Train's placement-group cleaner) ask the state API of
    # "the latest cluster on this machine" unless told which: this one.
    os.environ["RAY_API_SERVER_ADDRESS"] = f"http://127.0.0.1:{dash}"
    cluster = Cluster(initialize_head=True, head_node_args=dict(
        node_args("head"), gcs_server_port=free_port(), include_dashboard=True,
        dashboard_host="127.0.0.1", dashboard_port=dash,
        dashboard_agent_listen_port=free_port()))
    nodes = {"head": cluster.head_node}
    nodes.update({name: cluster.add_node(**node_args(name)) for name in NODES})
    cluster.wait_for_nodes()

    def say(**reply) -> None:
        print(json.dumps(reply), flush=True)

    say(address=cluster.address, dashboard=f"http://127.0.0.1:{dash}",
        nodes={name: node.node_id for name, node in nodes.items()})
    for line in sys.stdin:
        command = json.loads(line)
        if command["cmd"] == "remove":
            cluster.remove_node(nodes.pop(command["node"]))
            say(ok=True)
        elif command["cmd"] == "add":
            nodes[command["node"]] = cluster.add_node(**node_args(command["node"]))
            say(ok=True, node_id=nodes[command["node"]].node_id)
        else:
            break
    cluster.shutdown()
    say(ok=True)


if __name__ == "__main__":
    _serve()
