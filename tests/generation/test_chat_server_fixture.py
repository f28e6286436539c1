"""The test chat server (tests/fixtures/chat_server.py) answers the standard shape and
refuses bad bodies: the client tests rely on it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from tests.fixtures.chat_server import serving
from tests.generation.common import PROMPTS


def test_server_answers_standard_shape_and_rejects_bad_bodies(model_dir):
    with serving(model_dir) as server:
        def post(body: bytes) -> tuple[int, dict]:
            req = urllib.request.Request(server.base_url + "/chat/completions", data=body,
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read())

        status, ok = post(json.dumps({"model": "x", "messages": PROMPTS[0], "max_tokens": 4,
                                      "temperature": 0}).encode())
        assert status == 200 and ok["object"] == "chat.completion" and ok["id"]
        choice = ok["choices"][0]
        assert choice["index"] == 0 and choice["message"]["role"] == "assistant"
        assert choice["finish_reason"] in ("stop", "length")
        assert ok["usage"]["completion_tokens"] <= 4
        assert ok["usage"]["total_tokens"] == sum(
            ok["usage"][k] for k in ("prompt_tokens", "completion_tokens"))
        for body, problem in [(b"{not json", "not valid JSON"),
                              (b'{"messages": []}', "'messages' must be a non-empty list"),
                              (json.dumps({"messages": PROMPTS[0], "max_tokens": 0}).encode(),
                               "'max_tokens'")]:
            status, err = post(body)
            assert status == 400 and problem in err["error"]["message"]
        with urllib.request.urlopen(server.base_url + "/models", timeout=10) as r:
            models = json.loads(r.read())
        assert models["object"] == "list" and models["data"][0]["id"]
        assert server.stats["bad_requests"] == 3 and server.stats["completed"] == 1
