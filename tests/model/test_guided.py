"""Guided decoding: whatever the logits say, the output is a valid decision with an allowed action."""

from __future__ import annotations

import json
import random

import pytest
import torch

from agentfleet.serve.model.base import GenerationRequest
from agentfleet.serve.model.cpu import TransformersBackend
from agentfleet.serve.model.guided import GuidedBatch, decision_token_ids
from agentfleet.spec.decisions import parse_decision

ACTIONS = ("notify", "open_ticket", "call_webhook", "ignore", "notify_all")  # notify/notify_all share a prefix


def run_guided(backend: TransformersBackend, allowed: list[tuple[str, ...]], budget: int,
               logits_for: object, temperature: float, seed: int) -> list[str]:
    guide = GuidedBatch(backend.vocab, allowed, budget, backend.tokenizer.pad_token_id)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(budget):
        guide.step(logits_for(len(allowed)), generator, temperature)  # type: ignore[operator]
        if guide.done:
            break
    assert guide.done
    ids = guide.completion_ids()
    assert all(len(seq) <= budget for seq in ids)
    return [backend.tokenizer.decode(seq, clean_up_tokenization_spaces=False) for seq in ids]


def test_random_logits_always_give_valid_decisions(backend: TransformersBackend) -> None:
    rng = random.Random(7)
    width = backend.model.config.vocab_size
    minimum = max(backend.vocab.minimum_tokens([a]) for a in ACTIONS)
    for trial in range(40):
        allowed = [tuple(rng.sample(ACTIONS, rng.randint(1, len(ACTIONS)))) for _ in range(rng.randint(1, 8))]
        budget = rng.choice([minimum, minimum + 1, minimum + 5, 60, 120])
        noise = torch.Generator().manual_seed(trial)
        scale = rng.choice([0.1, 3.0, 30.0])
        texts = run_guided(backend, allowed, budget, lambda b: torch.randn(b, width, generator=noise) * scale,  # noqa: B023
                           temperature=rng.choice([0.0, 1.0]), seed=trial)
        for text, actions in zip(texts, allowed, strict=True):
            decision = parse_decision(text)
            assert decision.action in actions
            assert set(decision.params) == {"message"}
            assert 0.0 <= decision.confidence < 1.0


def test_logits_that_want_quotes_and_escapes_cannot_break_the_json(backend: TransformersBackend) -> None:
    tok = backend.tokenizer
    hostile = [i for i in range(len(tok)) if any(c in tok.decode([i]) for c in '"\\\n{}')]
    width = backend.model.config.vocab_size

    def logits(b: int) -> torch.Tensor:
        out = torch.zeros(b, width)
        out[:, hostile] = 100.0
        return out

    for text in run_guided(backend, [("notify", "ignore")] * 4, 90, logits, temperature=0.0, seed=0):
        decision = parse_decision(text)
        assert "\\" not in decision.params["message"] and '"' not in decision.rationale


def test_teacher_forced_sequence_is_reproduced_exactly(backend: TransformersBackend) -> None:
    target = decision_token_ids(backend.vocab, "open_ticket", "HIGH finding gd-1", "needs a ticket", "75")
    width = backend.model.config.vocab_size
    position = iter(range(len(target)))

    def logits(b: int) -> torch.Tensor:
        out = torch.zeros(b, width)
        out[:, target[next(position)]] = 50.0
        return out

    guide = GuidedBatch(backend.vocab, [ACTIONS], 96, backend.tokenizer.pad_token_id)
    while not guide.done:
        guide.step(logits(1))
    assert guide.completion_ids()[0] == target
    text = backend.tokenizer.decode(target, clean_up_tokenization_spaces=False)
    assert json.loads(text) == {"action": "open_ticket", "params": {"message": "HIGH finding gd-1"},
                                "rationale": "needs a ticket", "confidence": 0.75}


def test_budget_below_the_skeleton_is_refused(backend: TransformersBackend) -> None:
    need = backend.vocab.minimum_tokens(["notify"])
    with pytest.raises(ValueError, match="needs"):
        GuidedBatch(backend.vocab, [("notify",)], need - 1, 0)
    with pytest.raises(ValueError, match="at least one"):
        GuidedBatch(backend.vocab, [()], 96, 0)


def test_sampled_model_output_is_valid_across_seeds(backend: TransformersBackend) -> None:
    rng = random.Random(3)
    for seed in range(3):
        sampler = TransformersBackend(
            backend.model, backend.tokenizer, model_id="tiny", batch_size=8, sequence_length=1024,
            max_new_tokens=rng.choice([40, 64, 96]), temperature=1.0, seed=seed,
        )
        allowed = [tuple(rng.sample(ACTIONS[:4], rng.randint(1, 4))) for _ in range(8)]
        prompts = [f"event {i}: alarm/{rng.random():.6f} state {rng.choice(['OK', 'ALARM'])}\nDecision:\n" for i in range(8)]
        result = sampler.generate([GenerationRequest(p, a) for p, a in zip(prompts, allowed, strict=True)])
        for text, actions, used in zip(result.texts, allowed, result.completion_tokens, strict=True):
            assert parse_decision(text).action in actions
            assert used <= sampler.max_new_tokens
