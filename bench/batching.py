"""Benchmark 2: does batching pay? The CPU transformers backend with the small model, batch 8 vs batch 1.

The same prompts go through the backend once in batches of the configured size and once one by
one; the figure is generated tokens/s. The prompts are the ones the local fleet renders (the
ci-day scenario replayed through build_prompt with the backend's own tokenizer and budget, each
agent's memory growing as the pipeline records it), spread over the day; a second pair of runs
uses only the short ones, to separate "batching does not pay" from "these prompts are long".
The backend's own timings (prefill, decode, steps) and a CPU sample say where the time goes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentfleet.decide.prompt import build_prompt
from agentfleet.local import scenarios
from agentfleet.local.model_prep import prepare_model
from agentfleet.serve.model.base import GenerationRequest
from agentfleet.serve.model.cpu import TransformersBackend
from agentfleet.spec.catalog import subscribers
from agentfleet.spec.events import Rejection, parse_record
from agentfleet.spec.settings import Settings
from bench.overhead import bench_agents
from bench.results import Result
from bench.sampler import CpuSampler

ROOT = Path(__file__).resolve().parents[1]
TARGET = ">= 3"
LABELS = {
    "model forward (all)": "modeling_llama.py:LlamaForCausalLM.forward",
    "  attention": "modeling_llama.py:LlamaAttention.forward",
    "  MLP": "modeling_llama.py:LlamaMLP.forward",
    "  mask creation": "masking_utils.py:",
    "  static cache update": "cache_utils.py:",
    "guided decoding step (GuidedBatch.step)": "guided.py:GuidedBatch.step",
    "tokenizer (encode/decode)": "tokenization_utils",
}


@dataclass
class Tally:
    tokens: int = 0
    seconds: float = 0.0
    calls: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    def add(self, tokens: int, seconds: float, timings: dict[str, float]) -> None:
        self.tokens, self.seconds, self.calls = self.tokens + tokens, self.seconds + seconds, self.calls + 1
        for key, value in timings.items():
            self.timings[key] = self.timings.get(key, 0.0) + value

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def settings() -> Settings:
    """The local fleet's model settings: cdk.json's batch size, the local mode's sequence and decision length."""
    from agentfleet.local.fleet import LOCAL_MAX_NEW_TOKENS, LOCAL_SEQUENCE_LENGTH

    context = json.loads((ROOT / "cdk.json").read_text(encoding="utf-8"))["context"]
    return Settings(batch_size=context["batch_size"], sequence_length=LOCAL_SEQUENCE_LENGTH,
                    max_new_tokens=LOCAL_MAX_NEW_TOKENS, model_id="local/tiny-llama")


def prompts(backend: TransformersBackend) -> list[GenerationRequest]:
    """Every prompt the local fleet renders over the ci-day scenario, in order.

    The scenario is replayed; each agent and subject's memory grows as the pipeline records it
    (observation + decision summary per event, at most memory_max_items each), so early prompts are
    short and later ones fill the token budget, as in a running fleet.
    """
    agents, max_items = bench_agents(), Settings().memory_max_items
    history: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
    rendered: list[GenerationRequest] = []
    for record in scenarios.load("ci-day"):
        event = parse_record(record.data, 1 << 20)
        if isinstance(event, Rejection):
            continue
        for agent in subscribers(agents, event.type):
            observations, decisions = history.setdefault(f"{agent.name}#{event.subject}", ([], []))
            prompt = build_prompt(agent, [event.to_json()], observations, decisions, backend.count_tokens,
                                  backend.max_prompt_tokens)
            rendered.append(GenerationRequest(prompt, agent.allowed_actions))
            observations.append({"at": event.utc_time(), "event_id": event.id, "type": event.type,
                                 "source": event.source, "payload": dict(event.payload)})
            decisions.append({"at": event.utc_time(), "decision_id": f"{agent.name}-{event.id}", "event_id": event.id,
                              "action": "notify", "outcome": "acted", "rationale": "a failure on main needs a human"})
            del observations[:-max_items], decisions[:-max_items]
    return rendered


def spread(requests: list[GenerationRequest], count: int) -> list[GenerationRequest]:
    step = max(1, len(requests) // count)
    return requests[::step][:count]


def _generate(backend: TransformersBackend, requests: Sequence[GenerationRequest], size: int, tally: Tally) -> None:
    for first in range(0, len(requests), size):
        started = time.perf_counter()
        result = backend.generate(requests[first:first + size])
        tally.add(sum(result.completion_tokens), time.perf_counter() - started, result.timings)


def _padding(backend: TransformersBackend, requests: Sequence[GenerationRequest], size: int) -> float:
    """Share of prefill positions that are left padding when `size` prompts share a batch."""
    lengths = [backend.count_tokens(r.prompt) + 1 for r in requests]
    real = padded = 0
    for first in range(0, len(lengths), size):
        part = lengths[first:first + size]
        real, padded = real + sum(part), padded + max(part) * len(part)
    return 1 - real / padded if padded else 0.0


@dataclass
class Pair:
    """Batch 1 and batch `size` over the same prompts."""

    one: Tally
    batched: Tally
    size: int
    tokens: list[int]
    padding: float

    @property
    def ratio(self) -> float:
        return self.batched.tokens_per_s / self.one.tokens_per_s if self.one.tokens_per_s else 0.0

    @staticmethod
    def _step_ms(t: Tally) -> float:
        return t.timings.get("decode_ms", 0.0) / max(1.0, t.timings.get("decode_steps", 0.0))

    def summary(self) -> dict[str, Any]:
        def side(t: Tally) -> dict[str, Any]:
            return {"tokens": t.tokens, "seconds": round(t.seconds, 2), "tokens_per_s": round(t.tokens_per_s, 1),
                    "prefill_s": round(t.timings.get("prefill_ms", 0.0) / 1000, 2),
                    "decode_s": round(t.timings.get("decode_ms", 0.0) / 1000, 2),
                    "decode_ms_per_step": round(self._step_ms(t), 2)}
        lengths = sorted(self.tokens)
        return {"prompts": len(lengths), "prompt_tokens_min_median_max": [lengths[0], lengths[len(lengths) // 2],
                                                                          lengths[-1]],
                "batch1": side(self.one), "batched": side(self.batched), "ratio": round(self.ratio, 2),
                "prefill_padding_share": round(self.padding, 3)}

    def note(self, label: str) -> str:
        one, batched = self.one, self.batched
        return (f"{label}: {len(self.tokens)} prompts of {min(self.tokens)}-{max(self.tokens)} tokens: batch 1 "
                f"{one.tokens_per_s:,.0f} tokens/s (prefill {one.timings.get('prefill_ms', 0) / 1000:.1f} s + decode "
                f"{one.timings.get('decode_ms', 0) / 1000:.1f} s), batch {self.size} {batched.tokens_per_s:,.0f} "
                f"tokens/s (prefill {batched.timings.get('prefill_ms', 0) / 1000:.1f} s + decode "
                f"{batched.timings.get('decode_ms', 0) / 1000:.1f} s), ratio {self.ratio:.2f}; decode step "
                f"{self._step_ms(one):.1f} ms -> {self._step_ms(batched):.1f} ms; left padding {self.padding:.0%}")


def measure(backend: TransformersBackend, requests: list[GenerationRequest], rounds: int) -> Pair:
    size = backend.batch_size
    one, batched = Tally(), Tally()
    for _ in range(rounds):  # alternate, so a change in machine load hits both sides
        _generate(backend, requests, 1, one)
        _generate(backend, requests, size, batched)
    return Pair(one, batched, size, [backend.count_tokens(r.prompt) for r in requests],
                _padding(backend, requests, size))


def run(prompt_count: int = 16, rounds: int = 2, short_tokens: int = 1000) -> Result:
    """Headline: prompts spread over the scenario (as the fleet sends them); detail: short prompts only."""
    s = settings()
    backend = TransformersBackend.from_dir(prepare_model(), s)
    size = backend.batch_size
    rendered = prompts(backend)
    fleet = spread(rendered, prompt_count)
    short = [r for r in rendered if backend.count_tokens(r.prompt) < short_tokens][:prompt_count]
    backend.generate(short[:size])  # warm-up: first-call allocations and kernel selection
    backend.generate(short[:1])
    main, brief = measure(backend, fleet, rounds), measure(backend, short, rounds)
    sampler = CpuSampler().start()
    _generate(backend, fleet[-size:], size, Tally())
    sampler.stop()
    backend.close()
    shares = {k: round(v, 3) for k, v in sampler.inclusive(LABELS).items()}
    details = {
        "batch_size": size, "rounds": rounds, "torch_threads": s.torch_threads, "max_new_tokens": s.max_new_tokens,
        "sequence_length": s.sequence_length, "fleet_prompts": main.summary(), "short_prompts": brief.summary(),
        "cpu_time_shares_batched": shares,
        "innermost_frames_batched": [(f, round(v, 3)) for f, v in sampler.innermost(12)],
    }
    notes = [main.note("fleet prompts (ci-day replay, memories growing; the figure)"),
             brief.note(f"short prompts (< {short_tokens} tokens)"),
             "CPU time in a batched call of the longest prompts: " + ", ".join(
                 f"{k.strip()} {v:.0%}" for k, v in shares.items())]
    return Result("batching", round(main.batched.tokens_per_s, 1), "tokens/s", round(main.one.tokens_per_s, 1),
                  round(main.ratio, 2), TARGET, notes, details)
