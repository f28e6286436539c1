"""One short `instructmix run` in a subprocess, watched from outside, shared by the dashboard
and the secrets tests (`watched_run()` runs it once per pytest session).

The run: every stage (Ray Data, Ray Tune probes, Ray Train), augment through the HTTP
generator, with `ray.dashboard: true` and OPENAI_API_KEY set to a sentinel. While it runs,
the dashboard's HTTP API is polled with the Ray token, once without it, and its listening
sockets are inspected; the chat server records the Authorization headers it receives."""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.processes import stop_group

SENTINEL = f"sk-sentinel-{uuid.uuid4().hex}"
ENDPOINTS = ("/api/jobs/", "/api/v0/actors?limit=10000", "/api/v0/tasks?limit=10000")
BIN = Path(sys.executable).parent
TIMEOUT_S = 600


@dataclass
class WatchedRun:
    returncode: int | None = None
    pid: int = 0
    stdout: str = ""
    stderr: str = ""
    root: Path = Path()            # run_dir and Ray's temp dir (session logs) are inside
    dashboard: str | None = None   # the URL the driver logged
    polls: dict = field(default_factory=dict)      # endpoint -> every JSON answer
    without_token: int | None = None               # status of a request without the token
    listening: set[str] = field(default_factory=set)   # addresses the dashboard listens on
    elsewhere: dict[str, bool] = field(default_factory=dict)  # non-loopback addr -> connects
    control: dict[str, bool] = field(default_factory=dict)  # same, to a 0.0.0.0 listener
    keys_received: list[str] = field(default_factory=list)  # Authorization headers

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def ray_dir(self) -> Path:
        return self.root / "ray"


def ray_token() -> str:
    """The token a user passes to the dashboard (`ray get-auth-token` prints it)."""
    return os.environ.get("RAY_AUTH_TOKEN") or (
        Path.home() / ".ray" / "auth_token").read_text().strip()


def _config(run_dir: Path, base_url: str) -> str:
    return (f"run_dir: {run_dir}\n"
            "ray: {dashboard: true, num_cpus: 2}\n"
            "pool: {testbed: {items_per_category: 20, eval_per_category: 2,"
            " categories: [reverse, upper]}}\n"
            "model: {n_layer: 1, n_embd: 32, n_head: 2, max_positions: 64}\n"
            "probes: {design: intervention, seeds: 1, base_per_category: 4,"
            " add_per_category: 4, valid_per_category: 4, epochs: 1, micro_batch_size: 8,"
            " dependencies: asymmetry, cpus_per_trial: 0.5}\n"
            "select: {strategy: milp, budget: 8, floor_per_category: 1}\n"
            "augment: {train_on: control, generator: {backend: http,"
            f" base_url: '{base_url}', max_new_tokens: 16, max_retries: 0}}}}\n"
            "train: {num_workers: 1, deepspeed: false, micro_batch_size: 8, epochs: 1,"
            " max_steps: 1, checkpoint_every: 1, max_seq_len: 64}\n"
            "eval: {max_new_tokens: 4}\n")


def _answering_lm(path: Path) -> str:
    """A tiny LM taught to answer "ok" and stop (an untrained one never stops: every
    completion would be truncated, rejected, and the augment stage would fail)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tests.fixtures.tiny_lm import build_tiny_lm

    build_tiny_lm(path, chat_template=True)
    tok, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path)
    rows = [tok.apply_chat_template([{"role": "user", "content": f"reverse: {w}"}],
                                    tokenize=False, add_generation_prompt=True)
            for w in ("abc", "xyz", "hello", "q")]
    rows = [torch.tensor([tok(r + "ok" + tok.eos_token)["input_ids"]]) for r in rows]
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(60):
        for ids in rows:
            model(input_ids=ids, labels=ids).loss.backward()
            opt.step()
            opt.zero_grad()
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def _chat_server(root: Path):
    """The tests' chat server, recording each request's Authorization header."""
    from tests.fixtures.chat_server import ChatHandler, make_server

    class Recording(ChatHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.server.keys.append(self.headers.get("Authorization", ""))
            super().do_POST()

    server = make_server(_answering_lm(root / "lm"), port=0)
    server.RequestHandlerClass, server.keys = Recording, []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _non_loopback() -> list[str]:
    import psutil

    return sorted({a.address for addrs in psutil.net_if_addrs().values() for a in addrs
                   if a.family == socket.AF_INET and not a.address.startswith("127.")})


def _connects(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _inspect_sockets(run: WatchedRun, port: int) -> None:
    """Where the dashboard listens; whether other addresses of this machine reach it, and
    (the control) whether they reach a listener bound to every interface."""
    import psutil

    run.listening = {c.laddr.ip for c in psutil.net_connections("inet")
                     if c.status == psutil.CONN_LISTEN and c.laddr.port == port}
    with socket.create_server(("0.0.0.0", 0)) as everywhere:
        control_port = everywhere.getsockname()[1]
        for host in _non_loopback():
            run.elsewhere[host] = _connects(host, port)
            run.control[host] = _connects(host, control_port)


def _poll(run: WatchedRun, client) -> None:
    headers = {"Authorization": f"Bearer {ray_token()}"}
    for endpoint in ENDPOINTS:
        with contextlib.suppress(Exception):  # the dashboard may be starting or stopping
            answer = client.get(run.dashboard + endpoint, headers=headers)
            if answer.status_code == 200:
                run.polls.setdefault(endpoint, []).append(answer.json())
    if run.without_token is None:
        with contextlib.suppress(Exception):
            run.without_token = client.get(run.dashboard + ENDPOINTS[0]).status_code
            _inspect_sockets(run, int(run.dashboard.rsplit(":", 1)[1]))


def _watch(run: WatchedRun, proc: subprocess.Popen, err: list[str]) -> None:
    import httpx

    deadline = time.time() + TIMEOUT_S
    with httpx.Client(timeout=10) as client:
        while proc.poll() is None and time.time() < deadline:
            if run.dashboard is None:
                found = re.search(r"ray: dashboard at (http://\S+)", "".join(err))
                run.dashboard = found.group(1) if found else None
            if run.dashboard:
                _poll(run, client)
            time.sleep(1)


@functools.cache
def watched_run() -> WatchedRun:
    root = Path(tempfile.mkdtemp(prefix="imw", dir="/tmp"))  # socket paths must stay short
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    server = _chat_server(root)
    run = WatchedRun(root=root)
    (root / "run.yaml").write_text(_config(run.run_dir, server.base_url))
    env = dict(os.environ, OPENAI_API_KEY=SENTINEL, RAY_AUTH_MODE="token",
               RAY_TMPDIR=str(root), PATH=f"{BIN}:{os.environ['PATH']}")
    env.pop("RAY_ADDRESS", None)
    out: list[str] = []
    err: list[str] = []
    proc = subprocess.Popen(
        [str(BIN / "instructmix"), "run", str(root / "run.yaml")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    readers = [threading.Thread(target=lambda s=s, b=b: b.extend(s), daemon=True)
               for s, b in ((proc.stdout, out), (proc.stderr, err))]
    for reader in readers:
        reader.start()
    try:
        _watch(run, proc, err)
    finally:
        if proc.poll() is None:
            stop_group(proc, wait=20)
        for reader in readers:
            reader.join(30)
        server.shutdown()
        server.server_close()
    run.returncode, run.pid = proc.returncode, proc.pid
    run.stdout, run.stderr = "".join(out), "".join(err)
    run.keys_received = list(server.keys)
    return run
