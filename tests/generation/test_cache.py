"""The diskcache completion cache in front of the real HTTP client and test chat server:
re-runs make no request, Rejects are retried, threads and a new process share the cache."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

from instructmix.generation.base import GenParams, Reject
from instructmix.generation.cache import CachedGenerator
from instructmix.generation.http_client import OpenAIChatGenerator
from tests.fixtures.chat_server import serving
from tests.generation.common import PARAMS, PROMPTS, client

REPO = Path(__file__).resolve().parents[2]


def test_cache_rerun_makes_no_requests_and_retries_rejects(model_dir, tmp_path):
    bad = [{"role": "user"}]  # no content: the server answers 400, a Reject
    prompts = [*PROMPTS, bad]
    with serving(model_dir) as server:
        first = CachedGenerator(client(server), tmp_path / "cache")
        out1 = first.complete(prompts, PARAMS)
        assert server.stats["chat_requests"] == 7 and first.calls == 7
        again = first.complete(PROMPTS, PARAMS)  # the same instance: all from disk
        assert server.stats["chat_requests"] == 7 and first.inner.requests == 7
        assert again == out1[:6] and first.cache_hits == 6
        rerun = CachedGenerator(client(server), tmp_path / "cache")  # a new instance
        out2 = rerun.complete(prompts, PARAMS)
        # only the Reject (never cached) went to the server again
        assert server.stats["chat_requests"] == 8
        assert rerun.cache_hits == 6 and rerun.calls == 1 and rerun.inner.requests == 1
    assert out1[:6] == out2[:6] and all(isinstance(o, str) for o in out2[:6])
    assert isinstance(out2[6], Reject) and "HTTP 400" in out2[6].reason


def test_cache_survives_a_new_process(model_dir, tmp_path):
    with serving(model_dir) as server:
        out = CachedGenerator(client(server), tmp_path / "cache").complete(PROMPTS, PARAMS)
    assert all(isinstance(o, str) for o in out)
    # the server is gone: a new process answers from the cache alone, with no request
    script = (
        "import json, sys\n"
        "from instructmix.generation.cache import CachedGenerator\n"
        "from tests.generation.common import PARAMS, PROMPTS, client\n"
        f"gen = CachedGenerator(client({server.base_url!r}), sys.argv[1])\n"
        "out = gen.complete(PROMPTS, PARAMS)\n"
        "print(json.dumps({'out': out, 'hits': gen.cache_hits,"
        " 'requests': gen.inner.requests}))\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "cache")], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(done.stdout) == {"out": out, "hits": 6, "requests": 0}


def test_cache_is_safe_from_several_threads(model_dir, tmp_path):
    with serving(model_dir) as server:
        cached = CachedGenerator(client(server, concurrency=2), tmp_path / "cache")
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


def test_cache_key_tells_params_apart(tmp_path):
    cached = CachedGenerator(OpenAIChatGenerator("http://127.0.0.1:1/v1", api_key_env=None),
                             tmp_path / "cache")
    keys = {cached.key(PROMPTS[0], p) for p in
            (GenParams(8, 0.0), GenParams(8, 0.0, reject_truncated=False), GenParams(9, 0.0),
             GenParams(8, 0.5))}
    assert len(keys) == 4
    assert cached.key(PROMPTS[0], GenParams(8, 0.0)) == cached.key(PROMPTS[0], GenParams(8, 0))
    other = CachedGenerator(OpenAIChatGenerator("http://127.0.0.1:2/v1", api_key_env=None),
                            tmp_path / "cache")
    assert other.key(PROMPTS[0], GenParams(8, 0.0)) != cached.key(PROMPTS[0],
                                                                   GenParams(8, 0.0))
