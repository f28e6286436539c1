"""`instructmix serve MODEL.gguf`: a GGUF model behind llama.cpp's own OpenAI-compatible HTTP
server (through the `xllamacpp` bindings, the `serve` extra).

llama.cpp answers POST /v1/chat/completions, GET /v1/models and GET /health; the command
prints the base_url to put in `augment.generator.base_url` and blocks until Ctrl-C.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path


class GGUFServer:
    """A running llama.cpp server (model loaded, socket bound); `close()` stops it."""

    def __init__(self, server, model: Path):
        self._server, self.model = server, model
        self.address = server.listening_address  # e.g. http://127.0.0.1:8000

    @property
    def base_url(self) -> str:
        return self.address.rstrip("/") + "/v1"

    def close(self) -> None:
        self._server = None  # the bindings stop the HTTP loop when the Server is freed

    def __enter__(self) -> GGUFServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _params(model: Path, host: str, port: int, ctx_size: int, threads: int | None):
    import xllamacpp as xlc

    params = xlc.CommonParams()
    params.model.path = str(model)
    params.hostnames = [host]
    params.port = port
    params.n_ctx = ctx_size
    if threads:
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
    return params


def start_server(model: str | Path, host: str = "127.0.0.1", port: int = 8000,
                 ctx_size: int = 2048, threads: int | None = None,
                 ready_timeout_s: float = 120.0) -> GGUFServer:
    """Load the GGUF file and listen on host:port (0 picks a free port); returns once GET
    /health answers 200. `threads`: CPU threads for generation (None: llama.cpp's choice)."""
    model = Path(model)
    if not model.is_file():
        raise FileNotFoundError(f"GGUF file not found: {model}")
    try:
        import xllamacpp as xlc
    except ImportError:
        raise RuntimeError("serving a GGUF needs llama.cpp's bindings: "
                           "pip install 'instructmix[serve]' (or xllamacpp)") from None
    try:
        server = GGUFServer(xlc.Server(_params(model, host, port, ctx_size, threads)), model)
    except RuntimeError as e:
        raise RuntimeError(f"llama.cpp could not serve {model} on {host}:{port} "
                           f"(a bad GGUF, or the port is taken): {e}") from None
    if not _healthy(server.address, ready_timeout_s):
        server.close()
        raise RuntimeError(f"llama.cpp at {server.address} not healthy after "
                           f"{ready_timeout_s:g} s")
    return server


def _healthy(address: str, timeout_s: float) -> bool:
    """Whether GET {address}/health answers 200 within timeout_s (503 while loading)."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(address + "/health", timeout=10).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    return False


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("model", help="GGUF model file (llama.cpp's format)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    p.add_argument("--ctx-size", type=int, default=2048, help="context length in tokens")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for generation (default: llama.cpp's choice)")
    return p


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C (or SIGTERM); 1 when the server cannot start."""
    try:
        server = start_server(args.model, args.host, args.port, args.ctx_size, args.threads)
    except (FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"serving {server.model.name} at {server.address} (Ctrl-C stops)\n"
          f"augment.generator.base_url: {server.base_url}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="instructmix serve", description=__doc__)
    return run(add_arguments(p).parse_args(argv))
