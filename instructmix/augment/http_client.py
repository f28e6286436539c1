"""A client of OpenAI-compatible chat-completions endpoints (stdlib only).

Every prompt is one POST {base_url}/chat/completions; at most `concurrency` are in flight.
Timeouts, connection errors, HTTP 429 and 5xx are retried after backoff_s, 2*backoff_s,
4*backoff_s, ...; other 4xx answers, malformed bodies, empty completions and (when
`GenParams.reject_truncated`) completions cut at max_tokens (finish_reason "length") are
Rejects at once.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from instructmix.augment.base import TRUNCATED, GenParams, Reject
from instructmix.config import GeneratorConfig

EXCERPT = 200  # characters of an error body or bad response kept in a Reject


class _Retryable(Exception):
    """A failure worth another attempt; the message says what happened."""


class OpenAIChatGenerator:
    """`timeout_s`: seconds per attempt; `max_retries`: attempts after the first;
    `backoff_s`: first retry delay (doubles); `concurrency`: requests in flight at most.
    Counters: `calls` (prompts), `requests` (HTTP attempts), `retries`."""

    def __init__(self, base_url: str, model: str = "default",
                 api_key_env: str | None = "OPENAI_API_KEY", timeout_s: float = 60.0,
                 max_retries: int = 4, backoff_s: float = 0.5, concurrency: int = 4):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.api_key_env = model, api_key_env
        self.timeout_s, self.max_retries, self.backoff_s = timeout_s, max_retries, backoff_s
        self.concurrency = concurrency
        self.name = f"http:{model}"
        self.identity = f"http:{self.url}:{model}"
        self.calls = self.requests = self.retries = 0
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, cfg: GeneratorConfig) -> OpenAIChatGenerator:
        return cls(cfg.base_url or "", cfg.model, cfg.api_key_env, cfg.timeout_s,
                   cfg.max_retries, cfg.backoff_s, cfg.concurrency)

    def complete(self, prompts: list[list[dict]], params: GenParams) -> list[str | Reject]:
        if not prompts:
            return []
        with self._lock:
            self.calls += len(prompts)
        workers = min(self.concurrency, len(prompts))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chat") as pool:
            return list(pool.map(lambda m: self._complete_one(m, params), prompts))

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _complete_one(self, messages: list[dict], params: GenParams) -> str | Reject:
        body = json.dumps({"model": self.model, "messages": messages,
                           "max_tokens": params.max_new_tokens,
                           "temperature": params.temperature}).encode()
        what = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                with self._lock:
                    self.retries += 1
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                return self._attempt(body, params.reject_truncated)
            except _Retryable as e:
                what = str(e)
        return Reject(f"http: {what} after {self.max_retries} retries")

    def _attempt(self, body: bytes, reject_truncated: bool = True) -> str | Reject:
        """One POST: the completion, a Reject, or _Retryable."""
        with self._lock:
            self.requests += 1
        request = urllib.request.Request(self.url, data=body, headers=self._headers(),
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as e:
            excerpt = _excerpt(e.read())
            if e.code == 429 or e.code >= 500:
                raise _Retryable(f"HTTP {e.code}") from None
            return Reject(f"http: HTTP {e.code}: {excerpt}", excerpt)
        except urllib.error.URLError as e:
            if isinstance(e.reason, TimeoutError):
                raise _Retryable(f"timeout ({self.timeout_s:g} s)") from None
            raise _Retryable(f"connection error ({e.reason})") from None
        except TimeoutError:
            raise _Retryable(f"timeout ({self.timeout_s:g} s)") from None
        except (ConnectionError, http.client.HTTPException, OSError) as e:
            raise _Retryable(f"connection error ({type(e).__name__}: {e})") from None
        return parse_completion(raw, reject_truncated)


def _excerpt(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace").strip()
    return text[:EXCERPT] + ("..." if len(text) > EXCERPT else "")


def parse_completion(raw: bytes, reject_truncated: bool = True) -> str | Reject:
    """choices[0].message.content of a chat-completions body, or a Reject naming the flaw;
    with `reject_truncated`, choices[0].finish_reason "length" is Reject(TRUNCATED)."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return Reject(f"http: malformed JSON body ({e})", _excerpt(raw))
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return Reject("http: response has no choices[0].message.content", _excerpt(raw))
    if not isinstance(content, str):
        return Reject(f"http: choices[0].message.content is {type(content).__name__}, "
                      "not a string", _excerpt(raw))
    if not content.strip():
        return Reject("empty completion", content)
    if reject_truncated and data["choices"][0].get("finish_reason") == "length":
        return Reject(TRUNCATED, content)
    return content
