"""A client of OpenAI-compatible chat-completions endpoints, on httpx with tenacity retries.

Every prompt is one POST {base_url}/chat/completions; at most `concurrency` are in flight.
Timeouts, connection errors, HTTP 429 and 5xx are retried after backoff_s, 2*backoff_s,
4*backoff_s, ...; after the last attempt the prompt is a Reject naming the failure, the URL
and the attempts. Other 4xx answers, malformed bodies, empty completions and (when
`GenParams.reject_truncated`) completions cut at max_tokens (finish_reason "length") are
Rejects at once.
"""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from instructmix.config import GeneratorConfig
from instructmix.generation.base import TRUNCATED, GenParams, Reject

EXCERPT = 200  # characters of an error body or bad response kept in a Reject


class RetryableStatus(Exception):
    """An HTTP answer worth another attempt (429 or 5xx)."""

    def __init__(self, status: int):
        super().__init__(f"HTTP {status}")
        self.status = status


#: Failures that are retried: the server may answer next time.
RETRYABLE = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError,
             RetryableStatus)


class OpenAIChatGenerator:
    """`timeout_s`: seconds per attempt (connect, read and write each); `max_retries`:
    attempts after the first; `backoff_s`: first retry delay (doubles); `concurrency`:
    requests in flight at most. Counters: `calls` (prompts), `requests` (HTTP attempts),
    `retries`. One pooled httpx client is shared by the worker threads; `close()` ends it."""

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
        self._client: httpx.Client | None = None

    @classmethod
    def from_config(cls, cfg: GeneratorConfig) -> OpenAIChatGenerator:
        return cls(cfg.base_url or "", cfg.model, cfg.api_key_env, cfg.timeout_s,
                   cfg.max_retries, cfg.backoff_s, cfg.concurrency)

    def __getstate__(self) -> dict:  # picklable: the lock and the open client stay behind
        return {k: v for k, v in self.__dict__.items() if k not in ("_lock", "_client")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _lock=threading.Lock(), _client=None)

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                limits = httpx.Limits(max_connections=self.concurrency,
                                      max_keepalive_connections=self.concurrency)
                self._client = httpx.Client(timeout=httpx.Timeout(self.timeout_s),
                                            limits=limits)
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def complete(self, prompts: list[list[dict]], params: GenParams) -> list[str | Reject]:
        if not prompts:
            return []
        with self._lock:
            self.calls += len(prompts)
        workers = min(self.concurrency, len(prompts))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chat") as pool:
            return list(pool.map(lambda m: self._complete_one(m, params), prompts))

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _count_retry(self, _state) -> None:
        with self._lock:
            self.retries += 1

    def _retrying(self) -> Retrying:
        return Retrying(stop=stop_after_attempt(self.max_retries + 1),
                        wait=wait_exponential(multiplier=self.backoff_s, exp_base=2, min=0),
                        retry=retry_if_exception_type(RETRYABLE),
                        before_sleep=self._count_retry, reraise=True)

    def _complete_one(self, messages: list[dict], params: GenParams) -> str | Reject:
        payload = {"model": self.model, "messages": messages,
                   "max_tokens": params.max_new_tokens, "temperature": params.temperature}
        try:
            return self._retrying()(self._attempt, payload, params.reject_truncated)
        except RETRYABLE as e:
            attempts = self.max_retries + 1
            return Reject(f"http: {self._describe(e)} from {self.url}; gave up after "
                          f"{attempts} attempt{'s' * (attempts > 1)} "
                          f"(max_retries={self.max_retries})")
        except httpx.HTTPError as e:  # not worth retrying: a bad URL, a protocol misuse
            return Reject(f"http: {type(e).__name__}: {e} ({self.url})")

    def _describe(self, e: Exception) -> str:
        if isinstance(e, RetryableStatus):
            return str(e)
        if isinstance(e, httpx.TimeoutException):
            return f"timeout ({self.timeout_s:g} s)"
        return f"connection error ({type(e).__name__}: {e})"

    def _attempt(self, payload: dict, reject_truncated: bool = True) -> str | Reject:
        """One POST: the completion, a Reject, or a RETRYABLE exception."""
        with self._lock:
            self.requests += 1
        response = self._http().post(self.url, json=payload, headers=self._headers())
        if response.status_code == 429 or response.status_code >= 500:
            raise RetryableStatus(response.status_code)
        if response.status_code >= 400:
            excerpt = _excerpt(response.content)
            return Reject(f"http: HTTP {response.status_code}: {excerpt}", excerpt)
        return parse_completion(response.content, reject_truncated)


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
