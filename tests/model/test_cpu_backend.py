"""TransformersBackend: real batched generation on CPU with guided decoding."""

from __future__ import annotations

import pytest

from agentfleet.decide.prompt import build_prompt
from agentfleet.serve.model.base import GenerationRequest
from agentfleet.serve.model.cpu import TransformersBackend
from agentfleet.spec.catalog import AgentSpec
from agentfleet.spec.decisions import parse_decision

ALLOWED = [
    ("notify",), ("ignore",), ("open_ticket",), ("call_webhook",),
    ("notify", "ignore"), ("notify", "open_ticket", "ignore"), ("open_ticket", "call_webhook"), ("ignore", "notify"),
]


def requests(backend: TransformersBackend, n: int = 8) -> list[GenerationRequest]:
    out = []
    for i in range(n):
        allowed = ALLOWED[i % len(ALLOWED)]
        agent = AgentSpec(f"agent-{i}", "You watch alarms. " * (1 + i % 3), ("cloudwatch.alarm",), allowed, 60)
        event = {"id": f"evt-{i}", "type": "cloudwatch.alarm", "subject": f"alarm/A{i}",
                 "payload": {"state": "OK" if i % 2 else "ALARM", "value": i * 11}}
        prompt = build_prompt(agent, [event], [], [], backend.count_tokens, backend.max_prompt_tokens)
        out.append(GenerationRequest(prompt, allowed))
    return out


def test_batch_of_eight_gives_valid_decisions_in_order(backend: TransformersBackend) -> None:
    reqs = requests(backend)
    result = backend.generate(reqs)
    assert len(result.texts) == len(result.prompt_tokens) == len(result.completion_tokens) == 8
    for req, text, prompt_tokens, completion_tokens in zip(
        reqs, result.texts, result.prompt_tokens, result.completion_tokens, strict=True
    ):
        decision = parse_decision(text)
        # Single-action requests pin each output to its slot: order is preserved.
        assert decision.action in req.allowed_actions
        assert prompt_tokens == backend.count_tokens(req.prompt) + 1  # + BOS
        assert 0 < completion_tokens <= backend.max_new_tokens
    for key in ("tokenize_ms", "prefill_ms", "decode_ms"):
        assert result.timings[key] > 0
    assert result.latency_ms > 0 and result.tokens_per_second > 0


def test_padding_does_not_change_results(backend: TransformersBackend) -> None:
    """Prompts of different lengths give the same greedy output alone and in a padded batch."""
    reqs = requests(backend)[4:8]
    assert len({backend.count_tokens(r.prompt) for r in reqs}) > 1
    batched = backend.generate(reqs).texts
    alone = [backend.generate([r]).texts[0] for r in reqs]
    assert batched == alone


def test_more_requests_than_batch_size_are_split(backend: TransformersBackend) -> None:
    small = TransformersBackend(backend.model, backend.tokenizer, model_id="tiny", batch_size=3,
                                sequence_length=1024, max_new_tokens=60)
    reqs = requests(backend, 7)
    result = small.generate(reqs)
    assert result.timings["batches"] == 3.0
    assert [parse_decision(t).action in r.allowed_actions for t, r in zip(result.texts, reqs, strict=True)] == [True] * 7
    assert small.generate([]).texts == []


def test_tight_budget_still_closes_the_json(backend: TransformersBackend) -> None:
    need = backend.vocab.minimum_tokens(["open_ticket"])
    tight = TransformersBackend(backend.model, backend.tokenizer, model_id="tiny", batch_size=8,
                                sequence_length=1024, max_new_tokens=need + 2)
    result = tight.generate(requests(backend, 4))
    for text, used in zip(result.texts, result.completion_tokens, strict=True):
        parse_decision(text)
        assert used <= need + 2


def test_oversize_prompt_and_bad_shapes_are_refused(backend: TransformersBackend) -> None:
    long_prompt = "alarm " * (backend.max_prompt_tokens + 10)
    with pytest.raises(ValueError, match="max_prompt_tokens"):
        backend.generate([GenerationRequest(long_prompt, ("notify",))])
    with pytest.raises(ValueError, match="leaves no room"):
        TransformersBackend(backend.model, backend.tokenizer, model_id="t", batch_size=1,
                            sequence_length=64, max_new_tokens=60)
    assert backend.max_prompt_tokens == 1024 - 96 - 1
