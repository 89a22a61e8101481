"""The one model-backend interface: `generate(batch of requests) -> texts + token counts + timings`.

Backends: transformers on CPU (local and tests), optimum-neuron and vLLM-neuron (on
Trainium/Inferentia, see agentfleet.serve.boot), and an OpenAI-compatible HTTP client.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

Message = tuple[str, str]  # (role, content) of one chat message: "system" or "user"


@dataclass(frozen=True)
class GenerationRequest:
    """One rendered prompt plus what guided decoding may emit for the decision's action.

    `affinity_key` (agent, or agent and subject) picks the model replica, so one agent's requests share a
    replica's prefix cache; "" = no preference. `messages`, when given, is the same prompt as chat messages
    (stable system part first): chat-capable backends send these through the served model's chat template,
    the rest use `prompt`."""

    prompt: str
    allowed_actions: tuple[str, ...]
    affinity_key: str = ""
    messages: tuple[Message, ...] = ()


@dataclass(frozen=True)
class GenerationResult:
    """Outputs in request order, with per-request token counts and batch timings."""

    texts: list[str]
    prompt_tokens: list[int]
    completion_tokens: list[int]
    latency_ms: float
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def tokens_per_second(self) -> float:
        total = sum(self.completion_tokens)
        return total / (self.latency_ms / 1000.0) if self.latency_ms > 0 else 0.0


class ModelBackend(Protocol):
    """What the agent loop needs from a model server."""

    name: str
    model_id: str
    batch_size: int
    max_prompt_tokens: int

    def count_tokens(self, text: str) -> int: ...

    def generate(self, requests: Sequence[GenerationRequest]) -> GenerationResult: ...

    def close(self) -> None: ...
