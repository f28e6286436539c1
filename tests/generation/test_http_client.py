"""The httpx/tenacity chat client against real servers on free ports: the test chat server
serving a tiny HF model (with its fault knobs), a silent socket, a closed port and a canned
stdlib server."""

from __future__ import annotations

import json
import pickle
import socket
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from instructmix.generation.base import TRUNCATED, GenParams, Reject
from instructmix.generation.http_client import OpenAIChatGenerator
from tests.fixtures.chat_server import serving
from tests.generation.common import PARAMS, PROMPTS, client


def test_http_client_one_completion_per_prompt_in_order(model_dir):
    with serving(model_dir) as server:
        gen = client(server, concurrency=3)
        out = gen.complete(PROMPTS, PARAMS)
        answered = {json.dumps(m): text for m, text in server.answered}
    assert all(isinstance(o, str) and o.strip() for o in out), out
    assert len(set(out)) == len(PROMPTS)  # distinct answers: the order check below means it
    assert out == [answered[json.dumps(p)] for p in PROMPTS]
    assert server.stats["chat_requests"] == gen.requests == gen.calls == len(PROMPTS)


def test_server_failures_are_retried_with_backoff(model_dir):
    with serving(model_dir, fail_first=2) as server:
        gen = client(server, max_retries=3, backoff_s=0.05)
        t0 = time.monotonic()
        out = gen.complete(PROMPTS[:1], PARAMS)
        elapsed = time.monotonic() - t0
    assert isinstance(out[0], str)
    assert server.stats["failed_on_purpose"] == 2 and server.stats["chat_requests"] == 3
    assert gen.requests == 3 and gen.retries == 2
    assert elapsed >= 0.05 + 0.10  # the second delay doubled the first


def test_no_retries_left_gives_reject(model_dir):
    with serving(model_dir, fail_first=1) as server:
        gen = client(server, max_retries=0)
        out = gen.complete(PROMPTS[:1], PARAMS)
    assert out == [Reject(f"http: HTTP 503 from {gen.url}; gave up after 1 attempt "
                          "(max_retries=0)")]


def test_gives_up_after_max_retries_naming_url_status_and_attempts(model_dir):
    with serving(model_dir, fail_first=100) as server:
        gen = client(server, max_retries=2, backoff_s=0.01)
        out = gen.complete(PROMPTS[:1], PARAMS)
        assert server.stats["chat_requests"] == server.stats["failed_on_purpose"] == 3
    assert gen.url == server.base_url + "/chat/completions"
    assert out == [Reject(f"http: HTTP 503 from {gen.url}; gave up after 3 attempts "
                          "(max_retries=2)")]
    assert gen.requests == 3 and gen.retries == 2


def test_client_error_is_not_retried(model_dir):
    with serving(model_dir) as server:
        gen = client(server, max_retries=3)
        out = gen.complete([[{"role": "user"}]], PARAMS)
    assert isinstance(out[0], Reject)
    assert "HTTP 400" in out[0].reason and "content" in out[0].reason
    assert server.stats["chat_requests"] == 1 and gen.retries == 0


def test_timeout_and_refused_connection_give_rejects():
    with socket.socket() as silent:  # accepts connections (kernel backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        gen = client(f"http://127.0.0.1:{port}/v1", timeout_s=0.3, max_retries=1)
        t0 = time.monotonic()
        out = gen.complete(PROMPTS[:2], PARAMS)
        assert time.monotonic() - t0 < 5
    assert all(isinstance(o, Reject) and o.reason.startswith("http: timeout (0.3 s) from "
                                                             f"{gen.url}")
               and o.reason.endswith("gave up after 2 attempts (max_retries=1)")
               for o in out), out
    assert gen.requests == 4 and gen.retries == 2
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = client(f"http://127.0.0.1:{port}/v1", max_retries=1).complete(PROMPTS[:1], PARAMS)
    assert "connection error" in out[0].reason and f"127.0.0.1:{port}" in out[0].reason
    assert out[0].reason.endswith("gave up after 2 attempts (max_retries=1)")


def test_concurrency_limit_is_respected(model_dir):
    with serving(model_dir, delay_s=0.2) as server:
        out = client(server, concurrency=2).complete(PROMPTS, PARAMS)
    assert all(isinstance(o, str) for o in out)
    assert server.stats["max_in_flight"] == 2


class _Canned(BaseHTTPRequestHandler):
    """Answers every POST with the next canned reply (a body, or (status, body)); records
    Authorization headers."""

    replies: list[bytes | tuple[int, bytes]] = []
    auth: list[str | None] = []

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).auth.append(self.headers.get("Authorization"))
        reply = type(self).replies.pop(0)
        status, body = reply if isinstance(reply, tuple) else (200, reply)
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextmanager
def canned(replies: list):
    _Canned.replies, _Canned.auth = list(replies), []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def _body(content: str = "hi", finish: str | None = None) -> bytes:
    choice = {"index": 0, "message": {"role": "assistant", "content": content}}
    if finish is not None:
        choice["finish_reason"] = finish
    return json.dumps({"choices": [choice]}).encode()


def test_malformed_answers_and_api_key(monkeypatch):
    with canned([b"{oops", b'{"choices": []}', _body("  "), _body("hi")]) as url:
        monkeypatch.setenv("IMX_TEST_KEY", "sekrit")
        keyed = OpenAIChatGenerator(url, api_key_env="IMX_TEST_KEY", concurrency=1,
                                    max_retries=2)
        out = keyed.complete(PROMPTS[:3], PARAMS)
        monkeypatch.delenv("IMX_TEST_KEY")
        out += keyed.complete(PROMPTS[:1], PARAMS)
    assert out[0].reason.startswith("http: malformed JSON body") and out[0].raw == "{oops"
    assert out[1].reason == "http: response has no choices[0].message.content"
    assert out[2] == Reject("empty completion", "  ")
    assert out[3] == "hi" and keyed.retries == 0
    assert _Canned.auth == ["Bearer sekrit"] * 3 + [None]


def test_429_is_retried_and_other_4xx_are_not():
    replies = [(429, b'{"error": "slow down"}'), _body("after 429"),
               (404, b'{"error": "no such model"}')]
    with canned(replies) as url:
        gen = client(url, concurrency=1, max_retries=3)
        out = gen.complete(PROMPTS[:2], PARAMS)
    assert out[0] == "after 429"
    assert out[1] == Reject('http: HTTP 404: {"error": "no such model"}',
                            '{"error": "no such model"}')
    assert gen.requests == 3 and gen.retries == 1 and not _Canned.replies


def test_truncated_http_completion_is_rejected_unless_allowed():
    half = "half a sent"
    replies = [_body(half, "length"), _body(half, "length"), _body(half, "stop"),
               _body(half, None)]
    with canned(replies) as url:
        gen = client(url, concurrency=1)
        strict = GenParams(max_new_tokens=8, temperature=0.0)  # reject_truncated defaults on
        out = gen.complete(PROMPTS[:1], strict)
        out += gen.complete(PROMPTS[:1], PARAMS)  # reject_truncated=False: kept
        out += gen.complete(PROMPTS[:2], strict)  # "stop" and no finish_reason: kept
    assert out == [Reject(TRUNCATED, half), half, half, half]
    assert gen.retries == 0 and gen.requests == 4


def test_client_pickles_after_use():
    with canned([_body("one"), _body("two")]) as url:
        gen = client(url, concurrency=1)
        assert gen.complete(PROMPTS[:1], PARAMS) == ["one"]
        copy = pickle.loads(pickle.dumps(gen))
        assert copy.complete(PROMPTS[:1], PARAMS) == ["two"]
        gen.close()
        copy.close()
    assert copy.url == gen.url and copy.requests == 2
