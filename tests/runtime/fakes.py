"""Test doubles for the model backend: a scripted backend whose output the test controls.

Used only where a test must choose what the model says (bad output, disallowed actions,
approval) or how long it takes (shutdown mid-batch); loop tests use the real tiny model.
The default script reads the wish from the event payload in the prompt: {"want": "notify"}
yields a notify decision, {"want": "garbage"} yields text that is not a decision.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from agentfleet.serve.model.base import GenerationRequest, GenerationResult

_WANT = re.compile(r'"want": "([a-z_]+)"')


def decision_text(action: str, message: str = "scripted") -> str:
    return json.dumps({"action": action, "params": {"message": message}, "rationale": "scripted decision",
                       "confidence": 0.9})


def by_payload(request: GenerationRequest) -> str:
    """The payload's "want" (the last one in the prompt: the new event), else the first allowed action."""
    wants = _WANT.findall(request.prompt.split("### New events", 1)[-1])
    want = wants[-1] if wants else request.allowed_actions[0]
    if want == "garbage":
        return "I think we should probably notify someone about this."
    return decision_text(want)


class ScriptedBackend:
    """Implements ModelBackend; records every generate call (batch sizes) for assertions."""

    name = "scripted"

    def __init__(self, script: Callable[[GenerationRequest], str] = by_payload, *, batch_size: int = 8,
                 delay: float = 0.0, model_id: str = "test/scripted", started_marker: Path | None = None) -> None:
        self.script, self.batch_size, self.delay, self.model_id = script, batch_size, delay, model_id
        self.max_prompt_tokens = 4000
        self.calls: list[int] = []
        self.prompts: list[str] = []
        self._lock = threading.Lock()
        self._marker = started_marker

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def generate(self, requests: Sequence[GenerationRequest]) -> GenerationResult:
        started = time.perf_counter()
        with self._lock:
            self.calls.append(len(requests))
            self.prompts.extend(r.prompt for r in requests)
        if self._marker is not None:
            self._marker.write_text(str(len(self.calls)))
        if self.delay:
            time.sleep(self.delay)
        texts = [self.script(r) for r in requests]
        return GenerationResult(texts, [self.count_tokens(r.prompt) for r in requests], [len(t.split()) for t in texts],
                                (time.perf_counter() - started) * 1000)

    def close(self) -> None:
        pass
