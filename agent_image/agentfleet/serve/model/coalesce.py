"""Coalescing single-request calls into batches, for backends that run one batch at a time.

The worker's scheduler sends one request per item from many sender threads
(agentfleet.decide.sender). A batch-native backend (transformers on CPU, optimum-neuron's
compiled graph) runs best on a full batch and cannot run two at once, so this wrapper gathers
concurrent `generate` calls for up to `max_wait` seconds (or until `batch_size` requests wait)
and makes one batched call on its own thread; each caller gets its own rows back, or the
batch's exception. `slots` is two batches: one running, one gathering, so the model never
waits for the scheduler to refill it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future

from agentfleet.serve.model.base import GenerationRequest, GenerationResult, ModelBackend


class CoalescingBackend:
    """Implements ModelBackend over `inner`, serializing its calls into batches of <= batch_size."""

    def __init__(self, inner: ModelBackend, *, max_wait: float = 0.005,
                 on_batch: Callable[[int], None] | None = None) -> None:
        self.inner, self.max_wait, self._on_batch = inner, max_wait, on_batch
        self.name, self.model_id = inner.name, inner.model_id
        self.batch_size, self.max_prompt_tokens = inner.batch_size, inner.max_prompt_tokens
        self.slots = 2 * inner.batch_size
        count_messages = getattr(inner, "count_messages", None)
        if count_messages is not None:  # decide.prompt.request_for builds chat messages only for backends that count them
            self.count_messages = count_messages
        self._pending: list[tuple[GenerationRequest, Future[tuple[str, int, int, float]]]] = []
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="coalesce", daemon=True)
        self._thread.start()

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def generate(self, requests: Sequence[GenerationRequest]) -> GenerationResult:
        """Queue each request for the next batch and wait for its row; raises the batch's error."""
        started = time.perf_counter()
        futures: list[Future[tuple[str, int, int, float]]] = [Future() for _ in requests]
        with self._cond:
            if self._stopped:
                raise RuntimeError("the coalescing backend is stopped")
            self._pending.extend(zip(requests, futures, strict=True))
            self._cond.notify()
        rows = [future.result() for future in futures]
        latency_ms = max([row[3] for row in rows], default=(time.perf_counter() - started) * 1000)
        return GenerationResult([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], latency_ms)

    def _gather(self) -> list[tuple[GenerationRequest, Future[tuple[str, int, int, float]]]]:
        """The next batch: wait for a first request, then up to max_wait for the batch to fill."""
        with self._cond:
            while not self._pending and not self._stopped:
                self._cond.wait()
            deadline = time.monotonic() + self.max_wait
            while len(self._pending) < self.batch_size and not self._stopped:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch, self._pending = self._pending[: self.batch_size], self._pending[self.batch_size:]
            return batch

    def _run(self) -> None:
        while True:
            batch = self._gather()
            if not batch:
                return  # stopped and nothing left
            try:
                result = self.inner.generate([request for request, _ in batch])
                if len(result.texts) != len(batch):
                    raise RuntimeError(f"backend returned {len(result.texts)} outputs for {len(batch)} prompts")
            except BaseException as exc:  # every caller of this batch sees the failure
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for index, (_, future) in enumerate(batch):
                future.set_result((result.texts[index], _at(result.prompt_tokens, index),
                                   _at(result.completion_tokens, index), result.latency_ms))
            if self._on_batch is not None:
                self._on_batch(len(batch))

    def stop(self) -> None:
        """Finish the queued requests, then end the batching thread (the inner backend stays open)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def close(self) -> None:
        self.stop()
        self._thread.join(timeout=5.0)
        self.inner.close()


def _at(values: Sequence[int], index: int) -> int:
    return int(values[index]) if index < len(values) else 0
