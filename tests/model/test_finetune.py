"""The synthetic fine-tune: its targets are exactly what guided decoding emits, and it trains."""

from __future__ import annotations

import random
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from agentfleet.local.finetune import finetune, synthetic_example, training_pair
from agentfleet.serve.model.cpu import TransformersBackend
from agentfleet.spec.decisions import parse_decision


def test_targets_are_valid_decisions_that_follow_the_rules(backend: TransformersBackend) -> None:
    rng = random.Random(0)
    for _ in range(30):
        prompt, decision, n_action = training_pair(backend.vocab, backend.tokenizer, rng)
        assert prompt[0] == backend.tokenizer.bos_token_id and n_action >= 1
        parsed = parse_decision(backend.tokenizer.decode(decision, clean_up_tokenization_spaces=False))
        assert parsed.action in ("notify", "open_ticket", "file_jira", "page_oncall", "post_webhook", "ignore")
    for _ in range(50):
        agent, event, (action, *_) = synthetic_example(rng)
        assert agent.subscribes(event["type"]) and action in agent.allowed_actions
        if event["type"] == "cloudwatch.alarm" and event["payload"]["state"] == "OK":
            assert action == "ignore"


def test_a_few_steps_change_the_weights_and_report_losses(tiny_dir: Path, backend: TransformersBackend) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stats = finetune(model, backend.tokenizer, steps=2, batch=2)
    assert stats["steps"] == 2 and torch.isfinite(torch.tensor(stats["loss_end"]))
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.training
