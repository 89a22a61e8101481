"""The coalescer: concurrent single-request calls become one batched call of a batch-native backend."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from agentfleet.serve.model.base import GenerationRequest, GenerationResult
from agentfleet.serve.model.coalesce import CoalescingBackend


class Recording:
    """A batch-native backend: echoes each prompt; optionally fails; records every batch it ran."""

    name, model_id, max_prompt_tokens = "recording", "test/recording", 100

    def __init__(self, batch_size: int, fail: bool = False) -> None:
        self.batch_size, self.fail = batch_size, fail
        self.batches: list[list[str]] = []
        self.gate, self.entered = threading.Event(), threading.Event()
        self.gate.set()

    def count_tokens(self, text: str) -> int:
        return len(text)

    def generate(self, requests: Sequence[GenerationRequest]) -> GenerationResult:
        self.entered.set()
        self.gate.wait(5)
        self.batches.append([r.prompt for r in requests])
        if self.fail:
            raise RuntimeError("device lost")
        return GenerationResult([f"out {r.prompt}" for r in requests], [len(r.prompt) for r in requests],
                                [1] * len(requests), 12.0)

    def close(self) -> None:
        pass


def _call_concurrently(backend: CoalescingBackend, prompts: list[str]) -> dict[str, object]:
    answers: dict[str, object] = {}

    def one(prompt: str) -> None:
        try:
            result = backend.generate([GenerationRequest(prompt, ("notify",), f"agent/{prompt}")])
            answers[prompt] = (result.texts[0], result.prompt_tokens[0])
        except Exception as exc:
            answers[prompt] = exc

    threads = [threading.Thread(target=one, args=(p,), daemon=True) for p in prompts]  # a hung caller fails, not hangs
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return answers


def test_concurrent_single_requests_become_one_batch_and_each_caller_gets_its_row() -> None:
    inner = Recording(batch_size=4)
    fills: list[int] = []
    backend = CoalescingBackend(inner, max_wait=2.0, on_batch=fills.append)  # the 4th call fills the batch
    answers = _call_concurrently(backend, ["a", "bb", "ccc", "dddd"])
    assert [sorted(batch) for batch in inner.batches] == [["a", "bb", "ccc", "dddd"]]
    assert answers == {p: (f"out {p}", len(p)) for p in ["a", "bb", "ccc", "dddd"]}
    assert fills == [4] and backend.slots == 8
    backend.close()


def test_requests_arriving_while_the_model_runs_form_the_next_batch() -> None:
    inner = Recording(batch_size=2)
    inner.gate.clear()  # the first batch is stuck in the model while more requests come in
    backend = CoalescingBackend(inner, max_wait=0.01)
    holder = threading.Thread(target=_call_concurrently, args=(backend, ["first"]))
    holder.start()
    assert inner.entered.wait(5)
    threading.Timer(0.3, inner.gate.set).start()
    answers = _call_concurrently(backend, ["x", "y", "z"])
    holder.join(5)
    assert inner.batches[0] == ["first"] and sorted(p for batch in inner.batches[1:] for p in batch) == ["x", "y", "z"]
    assert [len(batch) for batch in inner.batches] == [1, 2, 1], "waiting calls fill batches of batch_size"
    assert sorted(answers) == ["x", "y", "z"]
    backend.close()


def test_a_failed_batch_raises_in_every_caller() -> None:
    backend = CoalescingBackend(Recording(batch_size=3, fail=True), max_wait=2.0)
    answers = _call_concurrently(backend, ["a", "b", "c"])
    assert sorted(answers) == ["a", "b", "c"], "every caller returned"
    assert all(isinstance(a, RuntimeError) and "device lost" in str(a) for a in answers.values()), answers
    backend.close()
    with pytest.raises(RuntimeError, match="stopped"):
        backend.generate([GenerationRequest("late", ("notify",))])
