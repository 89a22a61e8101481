"""OpenAIHTTPBackend: a client for one or more vLLM OpenAI-compatible servers (model replicas).

A request with `messages` goes to POST /v1/chat/completions, so the server applies the served model's
chat template; a request with only a `prompt` goes to POST /v1/completions. Which replica serves it is
the ReplicaRouter's choice (serve/model/routing.py: consistent hashing of the request's affinity key over
the live replicas, or random). vLLM's ChatCompletionRequest takes the same `structured_outputs` field as
completions, and its `add_special_tokens` defaults to False because "the chat template takes care of
adding the special tokens" (vllm-project/vllm vllm/entrypoints/openai/chat_completion/protocol.py,
main-branch commit 002032e read 2026-12-01; 0.24.0 tag UNVERIFIED), so a chat prompt is counted as the template's
tokens, BOS once (`count_messages`). `chat_template_kwargs` is passed through (Qwen3: enable_thinking).

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
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from agentfleet.ops import logs
from agentfleet.serve.model import vllm_metrics
from agentfleet.serve.model.base import GenerationRequest, GenerationResult, Message
from agentfleet.serve.model.chat import estimate_message_tokens, estimate_tokens
from agentfleet.serve.model.routing import ReplicaRouter
from agentfleet.spec.decisions import guided_schema

_LOG = logs.get(__name__)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
STRUCTURED_PARAMS = ("structured_outputs", "guided_json")


class ModelServerError(RuntimeError):
    """The server refused a request, or kept failing after every retry."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status




class OpenAIHTTPBackend:
    """Implements agentfleet.serve.model.base.ModelBackend against OpenAI-compatible servers (replicas)."""

    name = "openai-http"

    def __init__(
        self,
        base_url: str | Sequence[str],
        model_id: str,
        *,
        batch_size: int,
        max_prompt_tokens: int,
        max_new_tokens: int,
        count_tokens: Callable[[str], int] = estimate_tokens,
        count_messages: Callable[[Sequence[Message]], int] = estimate_message_tokens,
        max_num_seqs: int = 0,
        routing: str = "affinity",
        chat_template_kwargs: dict[str, Any] | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 10.0,
        structured_param: str = "structured_outputs",
        api_key: str = "",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls or not all(urls):
            raise ValueError("openai-http needs a base URL (setting openai_base_url)")
        if structured_param not in STRUCTURED_PARAMS:
            raise ValueError(f"structured_param must be one of {STRUCTURED_PARAMS}, got {structured_param!r}")
        roots = [u.rstrip("/") for u in urls]
        self.api_roots = [r if r.endswith("/v1") else r + "/v1" for r in roots]
        self.url = self.api_roots[0] + "/completions"  # the first replica's completions URL (logs, tests)
        self.model_id = model_id
        self.batch_size = batch_size
        self.max_num_seqs = max_num_seqs or batch_size
        self.router = ReplicaRouter(len(urls), self.max_num_seqs, routing)
        self.max_prompt_tokens = max_prompt_tokens
        self.max_new_tokens = max_new_tokens
        self._count = count_tokens
        self._count_messages = count_messages
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.structured_param = structured_param
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._sleep = sleep
        self._hit_rates = vllm_metrics.HitRateWindow(len(urls))
        workers = max(batch_size, len(urls) * self.max_num_seqs)  # enough threads to fill every slot
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai-http")

    @property
    def slots(self) -> int:
        """Requests the live replicas run at once: live replicas x max_num_seqs."""
        return self.router.slots

    def replica_load(self) -> list[tuple[int, int]]:
        """(busy, slots) per replica; a replica that is down has 0 slots."""
        return self.router.load()

    def set_live(self, live: Sequence[int]) -> None:
        """The replica supervisor's view of which replicas answer /health."""
        self.router.set_live(live)

    def prefix_cache_hit_rate(self) -> list[float | None]:
        """Per replica: prefix-cache hit rate (hit tokens / queried tokens) since the previous call, from
        the server's /metrics; None where no query happened or the server exposes no counter."""
        return [self._hit_rates.update(i, vllm_metrics.fetch_prefix_counters(root.removesuffix("/v1")))
                for i, root in enumerate(self.api_roots)]

    def count_tokens(self, text: str) -> int:
        return self._count(text)

    def count_messages(self, messages: Sequence[Message]) -> int:
        """Prompt tokens of a chat request as the served model's chat template renders it."""
        return self._count_messages(messages)

    def body(self, request: GenerationRequest) -> dict[str, Any]:
        schema = guided_schema(request.allowed_actions)
        guided: Any = {"json": schema} if self.structured_param == "structured_outputs" else schema
        doc: dict[str, Any] = {"model": self.model_id}
        if request.messages:
            doc["messages"] = [{"role": role, "content": content} for role, content in request.messages]
            if self.chat_template_kwargs:
                doc["chat_template_kwargs"] = self.chat_template_kwargs
        else:
            doc["prompt"] = request.prompt
        doc.update({"max_tokens": self.max_new_tokens, "temperature": 0.0, "n": 1, self.structured_param: guided})
        return doc

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
        """(text, prompt tokens, completion tokens, retries) for one request; each attempt is routed anew,
        so a retry after a refused connection goes to the key's next live replica."""
        data = json.dumps(self.body(request)).encode("utf-8")
        path = "/chat/completions" if request.messages else "/completions"
        for attempt in range(self.max_retries + 1):
            delay = self.backoff_s * (2**attempt)
            replica = self.router.pick(request.affinity_key)
            url = self.api_roots[replica] + path
            self.router.acquire(replica)
            try:
                req = urllib.request.Request(url, data=data, headers=self._headers, method="POST")  # noqa: S310
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310
                    return (*self._parse(json.loads(resp.read()), url), attempt)
            except urllib.error.HTTPError as exc:
                detail = exc.read()[:300].decode("utf-8", "replace")
                if exc.code not in RETRY_STATUSES:
                    raise ModelServerError(f"{url} answered {exc.code}: {detail}", exc.code) from None
                failure = f"HTTP {exc.code}: {detail}"
                retry_after = exc.headers.get("Retry-After", "") if exc.headers else ""
                if retry_after.isdigit():
                    delay = max(delay, float(retry_after))
                status: int | None = exc.code
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                failure, status = f"{type(exc).__name__}: {exc}", None
                if isinstance(getattr(exc, "reason", exc), ConnectionRefusedError):
                    self.router.mark_down(replica)  # nothing listens: route around it until it is back
            finally:
                self.router.release(replica)
            if attempt == self.max_retries:
                raise ModelServerError(f"{url} failed after {attempt + 1} attempts: {failure}", status)
            wait = min(self.max_backoff_s, delay) * random.uniform(0.5, 1.0)  # jitter spreads the workers out
            _LOG.warning("model server call failed, retrying",
                         extra={"url": url, "attempt": attempt + 1, "error": failure, "wait_s": round(wait, 2)})
            self._sleep(wait)
        raise AssertionError("unreachable")

    def _parse(self, doc: Any, url: str) -> tuple[str, int, int]:
        try:
            choice = doc["choices"][0]
            text = choice["message"]["content"] if "message" in choice else choice["text"]
            usage = doc["usage"]
            prompt_tokens, completion_tokens = int(usage["prompt_tokens"]), int(usage["completion_tokens"])
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ModelServerError(f"{url} answered an unexpected body ({exc!r}): {str(doc)[:300]}") from None
        if not isinstance(text, str):
            raise ModelServerError(f"{url} answered a non-text completion: {str(doc)[:300]}")
        return text, prompt_tokens, completion_tokens

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
