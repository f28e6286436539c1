"""Process helpers of the tests that start servers or clusters of their own: a free port,
polling with a deadline, and stopping a process group the test started (and only it)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout: float, what: str, proc: subprocess.Popen | None = None,
             every: float = 0.2):
    """Poll `condition()` until it returns something truthy (returned); fail on timeout or
    when `proc` exits first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process exited ({proc.returncode}) before {what}")
        time.sleep(every)
    raise TimeoutError(f"no {what} within {timeout:.0f} s")


def listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 2):
        return True
    return False


def stop_group(proc: subprocess.Popen, wait: float = 15) -> None:
    """SIGTERM, then SIGKILL, the process group of `proc` (started with
    `start_new_session=True`): what it started goes with it, nothing else does. SIGKILL
    follows in any case, for children that outlive the leader."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait)
