"""OpenAIHTTPBackend: a client for a vLLM OpenAI-compatible server (POST /v1/completions).

Guided decoding uses vLLM's structured-output request field. vLLM >= 0.12 accepts only
`"structured_outputs": {"json": <schema>}` (the older top-level `guided_json` was deprecated
in 0.10/0.11 and removed in 0.12, see docs.vllm.ai/en/latest/features/structured_outputs);
`structured_param="guided_json"` keeps servers older than 0.12 (e.g. some vLLM-neuron
builds) working. The schema is decisions.guided_schema(request.allowed_actions).

Each request of a batch is its own HTTP call, sent concurrently: each has its own schema
(its agent's allowed actions), each gets exact per-request `usage` token counts, and the
server's continuous batching merges them anyway. 429/5xx and connection errors are retried
with exponential backoff (honouring Retry-After); anything else raises ModelServerError.
"""

from __future__ import annotations

import json
import math
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from agentfleet.ops import logs
from agentfleet.serve.model.base import GenerationRequest, GenerationResult
from agentfleet.spec.decisions import guided_schema

_LOG = logs.get(__name__)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
STRUCTURED_PARAMS = ("structured_outputs", "guided_json")


class ModelServerError(RuntimeError):
    """The server refused a request, or kept failing after every retry."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def estimate_tokens(text: str) -> int:
    """Upper-bound token estimate when the served model's tokenizer is not at hand: BPE
    tokenizers average about 4 bytes per token on English, so 3 keeps prompts under budget."""
    return math.ceil(len(text.encode("utf-8")) / 3)


class OpenAIHTTPBackend:
    """Implements agentfleet.serve.model.base.ModelBackend against an OpenAI-compatible server."""

    name = "openai-http"

    def __init__(
        self,
        base_url: str,
        model_id: str,
        *,
        batch_size: int,
        max_prompt_tokens: int,
        max_new_tokens: int,
        count_tokens: Callable[[str], int] = estimate_tokens,
        timeout_s: float = 60.0,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 10.0,
        structured_param: str = "structured_outputs",
        api_key: str = "",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not base_url:
            raise ValueError("openai-http needs a base URL (setting openai_base_url)")
        if structured_param not in STRUCTURED_PARAMS:
            raise ValueError(f"structured_param must be one of {STRUCTURED_PARAMS}, got {structured_param!r}")
        root = base_url.rstrip("/")
        self.url = (root if root.endswith("/v1") else root + "/v1") + "/completions"
        self.model_id = model_id
        self.batch_size = batch_size
        self.max_prompt_tokens = max_prompt_tokens
        self.max_new_tokens = max_new_tokens
        self._count = count_tokens
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.structured_param = structured_param
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._sleep = sleep
        self._pool = ThreadPoolExecutor(max_workers=batch_size, thread_name_prefix="openai-http")

    def count_tokens(self, text: str) -> int:
        return self._count(text)

    def body(self, request: GenerationRequest) -> dict[str, Any]:
        schema = guided_schema(request.allowed_actions)
        guided: Any = {"json": schema} if self.structured_param == "structured_outputs" else schema
        return {
            "model": self.model_id,
            "prompt": request.prompt,
            "max_tokens": self.max_new_tokens,
            "temperature": 0.0,
            "n": 1,
            self.structured_param: guided,
        }

    def generate(self, requests: Sequence[GenerationRequest]) -> GenerationResult:
        """One completion per request, in request order; raises ModelServerError if any fails."""
        started = time.perf_counter()
        replies = list(self._pool.map(self._complete, requests))
        latency_ms = (time.perf_counter() - started) * 1000
        return GenerationResult(
            texts=[text for text, _, _, _ in replies],
            prompt_tokens=[p for _, p, _, _ in replies],
            completion_tokens=[c for _, _, c, _ in replies],
            latency_ms=latency_ms,
            timings={"retries": float(sum(r for _, _, _, r in replies)), "requests": float(len(replies))},
        )

    def _complete(self, request: GenerationRequest) -> tuple[str, int, int, int]:
        """(text, prompt tokens, completion tokens, retries) for one request."""
        data = json.dumps(self.body(request)).encode("utf-8")
        for attempt in range(self.max_retries + 1):
            delay = self.backoff_s * (2**attempt)
            try:
                req = urllib.request.Request(self.url, data=data, headers=self._headers, method="POST")  # noqa: S310
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310
                    return (*self._parse(json.loads(resp.read())), attempt)
            except urllib.error.HTTPError as exc:
                detail = exc.read()[:300].decode("utf-8", "replace")
                if exc.code not in RETRY_STATUSES:
                    raise ModelServerError(f"{self.url} answered {exc.code}: {detail}", exc.code) from None
                failure = f"HTTP {exc.code}: {detail}"
                retry_after = exc.headers.get("Retry-After", "") if exc.headers else ""
                if retry_after.isdigit():
                    delay = max(delay, float(retry_after))
                status: int | None = exc.code
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                failure, status = f"{type(exc).__name__}: {exc}", None
            if attempt == self.max_retries:
                raise ModelServerError(f"{self.url} failed after {attempt + 1} attempts: {failure}", status)
            wait = min(self.max_backoff_s, delay) * random.uniform(0.5, 1.0)  # jitter spreads the workers out
            _LOG.warning("model server call failed, retrying",
                         extra={"url": self.url, "attempt": attempt + 1, "error": failure, "wait_s": round(wait, 2)})
            self._sleep(wait)
        raise AssertionError("unreachable")

    def _parse(self, doc: Any) -> tuple[str, int, int]:
        try:
            text = doc["choices"][0]["text"]
            usage = doc["usage"]
            prompt_tokens, completion_tokens = int(usage["prompt_tokens"]), int(usage["completion_tokens"])
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ModelServerError(f"{self.url} answered an unexpected body ({exc!r}): {str(doc)[:300]}") from None
        if not isinstance(text, str):
            raise ModelServerError(f"{self.url} answered a non-text completion: {str(doc)[:300]}")
        return text, prompt_tokens, completion_tokens

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
