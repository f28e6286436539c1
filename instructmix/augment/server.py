"""An OpenAI-compatible HTTP server for a local HF causal LM (stdlib http.server).

POST /v1/chat/completions and GET /v1/models. One model is held in memory; requests are
served by threads but generate one at a time under a lock.
    instructmix serve MODEL_PATH --port 8000
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

log = logging.getLogger("instructmix")
MAX_BODY = 8 * 1024 * 1024  # bytes of a request body at most


class BadRequest(ValueError):
    """A request body the server cannot use; the message names the problem."""


def parse_chat_request(body: bytes) -> tuple[list[dict], int, float]:
    """(messages, max_tokens (default 256), temperature (default 1.0, 0 = greedy))."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadRequest(f"body is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list")
    for k, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise BadRequest(f"messages[{k}] needs a string 'role'")
        if not isinstance(m.get("content"), str):
            raise BadRequest(f"messages[{k}] needs a string 'content'")
    max_tokens = data.get("max_tokens", data.get("max_completion_tokens", 256))
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise BadRequest("'max_tokens' must be a positive integer")
    temperature = data.get("temperature", 1.0)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or (
            temperature < 0):
        raise BadRequest("'temperature' must be a number >= 0")
    messages = [{"role": m["role"], "content": m["content"]} for m in messages]
    return messages, max_tokens, float(temperature)


class ChatServer(ThreadingHTTPServer):
    """The HTTP server plus its model and request statistics.

    fail_first: the first N chat requests answer 503 (tests exercise client retries).
    delay_s: seconds each chat request waits (outside the lock) before answering.
    stats: chat_requests (all POSTs to chat/completions), failed_on_purpose, bad_requests,
    completed, in_flight and max_in_flight (chat requests being handled at once).
    answered: the last 1000 (messages, content) pairs served, oldest first.
    """

    daemon_threads = True

    def __init__(self, address: tuple[str, int], lm, model_id: str, fail_first: int = 0,
                 delay_s: float = 0.0):
        super().__init__(address, ChatHandler)
        self.lm, self.model_id = lm, model_id
        self.fail_first, self.delay_s = fail_first, delay_s
        self.generate_lock, self.stats_lock = threading.Lock(), threading.Lock()
        self.stats = collections.Counter()
        self.answered: collections.deque = collections.deque(maxlen=1000)

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"

    def count(self, key: str, n: int = 1) -> int:
        with self.stats_lock:
            self.stats[key] += n
            if key == "in_flight":
                self.stats["max_in_flight"] = max(self.stats["max_in_flight"],
                                                  self.stats["in_flight"])
            return self.stats[key]

    def chat(self, body: bytes) -> tuple[int, dict]:
        """(HTTP status, JSON answer) of one chat-completions request."""
        if self.count("chat_requests") <= self.fail_first:
            self.count("failed_on_purpose")
            return 503, _error("unavailable on purpose (fail_first)", "unavailable")
        try:
            messages, max_tokens, temperature = parse_chat_request(body)
        except BadRequest as e:
            self.count("bad_requests")
            return 400, _error(str(e), "invalid_request_error")
        if self.delay_s:
            time.sleep(self.delay_s)
        with self.generate_lock:
            result = self.lm.generate([messages], max_tokens, temperature)[0]
        if not isinstance(result, dict):  # a Reject: the prompt does not fit
            self.count("bad_requests")
            return 400, _error(result.reason, "invalid_request_error")
        self.count("completed")
        self.answered.append((messages, result["text"]))
        usage = {"prompt_tokens": result["prompt_tokens"],
                 "completion_tokens": result["completion_tokens"],
                 "total_tokens": result["prompt_tokens"] + result["completion_tokens"]}
        return 200, {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion",
            "created": int(time.time()), "model": self.model_id,
            "choices": [{"index": 0, "finish_reason": result["finish_reason"],
                         "message": {"role": "assistant", "content": result["text"]}}],
            "usage": usage}


def _error(message: str, kind: str) -> dict:
    return {"error": {"message": message, "type": kind}}


class ChatHandler(BaseHTTPRequestHandler):
    server: ChatServer
    server_version = "instructmix-serve/0.1"

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            self._send(200, {"object": "list", "data": [
                {"id": self.server.model_id, "object": "model", "owned_by": "instructmix"}]})
        else:
            self._send(404, _error(f"no route GET {self.path}", "not_found"))

    def do_POST(self) -> None:  # noqa: N802
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._send(404, _error(f"no route POST {self.path}", "not_found"))
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._send(400, _error("missing or invalid Content-Length", "invalid_request_error"))
            return
        if not 0 <= length <= MAX_BODY:
            self._send(413 if length > 0 else 400,
                       _error(f"body of {length} bytes (limit {MAX_BODY})",
                              "invalid_request_error"))
            return
        body = self.rfile.read(length)
        self.server.count("in_flight")
        try:
            status, payload = self.server.chat(body)
        except Exception as e:  # noqa: BLE001 - the client gets a 500, the server lives on
            log.exception("serve: generation failed")
            status, payload = 500, _error(f"{type(e).__name__}: {e}", "server_error")
        finally:
            self.server.count("in_flight", -1)
        try:
            self._send(status, payload)
        except (BrokenPipeError, ConnectionResetError):
            log.info("serve: client went away before the answer")

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        log.debug("serve: %s %s", self.address_string(), format % args)


def make_server(model_path: str, host: str = "127.0.0.1", port: int = 8000,
                fail_first: int = 0, delay_s: float = 0.0, threads: int = 1) -> ChatServer:
    """Load the model (torch using `threads` threads) and bind; port 0 picks a free port.
    Call serve_forever() (e.g. in a thread) to answer, shutdown() to stop."""
    from instructmix.augment.generators import LocalLM

    lm = LocalLM(model_path, threads=threads)
    return ChatServer((host, port), lm, Path(model_path).name or model_path, fail_first,
                      delay_s)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="instructmix serve",
                                description="OpenAI-compatible chat server for an HF model")
    p.add_argument("model_path", help="HF model folder (or hub id when online)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--threads", type=int, default=1, help="torch threads for generation")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    server = make_server(args.model_path, args.host, args.port, threads=args.threads)
    log.info("serve: %s at %s (POST /v1/chat/completions, GET /v1/models)", args.model_path,
             server.base_url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
