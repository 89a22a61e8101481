"""build_prompt: sections, and the token budget measured by the real tokenizer."""

from __future__ import annotations

import json

from agentfleet.decide.prompt import build_prompt
from agentfleet.serve.model.cpu import TransformersBackend
from agentfleet.spec.catalog import AgentSpec

AGENT = AgentSpec(
    "alarm-responder", "You watch CloudWatch alarms. Ignore alarms returning to OK.",
    ("cloudwatch.alarm",), ("notify", "ignore"), 60,
)


def event(i: int, size: int = 3) -> dict[str, object]:
    payload = {"alarm_name": f"Alarm{i}", "state": "ALARM", "notes": ["datapoint above threshold"] * size}
    return {"id": f"evt-{i}", "type": "cloudwatch.alarm", "subject": f"alarm/Alarm{i}", "payload": payload}


def memory(n: int) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    obs = [{"at": f"2025-01-01T10:{2 * i:02d}:00Z", "note": f"observation number {i} about the service"} for i in range(n)]
    dec = [{"at": f"2025-01-01T10:{2 * i + 1:02d}:00Z", "action": "notify", "rationale": f"decision {i}"}
           for i in range(n)]
    return obs, dec


def test_prompt_has_every_section(backend: TransformersBackend) -> None:
    obs, dec = memory(2)
    prompt = build_prompt(AGENT, [event(1)], obs, dec, backend.count_tokens, 900)
    for part in ("### System", AGENT.system_prompt, "### Allowed actions", "- notify:", "- ignore:",
                 "### Memory", "observation number 1", "decision 1", "### New events (1)",
                 "id=evt-1 type=cloudwatch.alarm subject=alarm/Alarm1", '"state": "ALARM"', '"confidence": 0.'):
        assert part in prompt
    assert "open_ticket" not in prompt  # only this agent's actions
    assert prompt.endswith("Decision:\n")
    assert prompt.index("Reply with one JSON") < prompt.index("### Memory") < prompt.index("### New events")


def test_memory_is_dropped_oldest_first_before_events(backend: TransformersBackend) -> None:
    obs, dec = memory(10)
    full = build_prompt(AGENT, [event(1)], obs, dec, backend.count_tokens, 5000)
    assert "omitted" not in full
    budget = backend.count_tokens(full) - 60
    cut = build_prompt(AGENT, [event(1)], obs, dec, backend.count_tokens, budget)
    assert backend.count_tokens(cut) <= budget
    assert "older memory items omitted" in cut
    assert "observation number 0 " not in cut  # oldest gone ...
    assert "decision 9" in cut  # ... newest kept
    assert json.dumps(event(1)["payload"], separators=(", ", ": ")) in cut  # event untouched


def test_events_are_never_dropped_only_their_payloads_cut(backend: TransformersBackend) -> None:
    obs, dec = memory(5)
    events = [event(i, size=40) for i in range(6)]
    budget = 600
    prompt = build_prompt(AGENT, events, obs, dec, backend.count_tokens, budget)
    assert backend.count_tokens(prompt) <= budget
    assert "### New events (6)" in prompt
    for i in range(6):
        assert f"id=evt-{i} type=cloudwatch.alarm subject=alarm/Alarm{i}" in prompt
    assert "payload truncated to" in prompt
    assert "observation number" not in prompt and "10 older memory items omitted" in prompt
    shown = int(prompt.split("payload truncated to ")[1].split(" ")[0])
    assert shown > 0  # the payloads are cut, not blanked


def test_events_without_payload_key_keep_their_other_fields(backend: TransformersBackend) -> None:
    raw = {"id": "e1", "type": "code.push", "subject": "repo/x", "time": "2025-01-01T10:00:00Z", "spec_version": "1",
           "branch": "main", "files": ["cdk.json"]}
    prompt = build_prompt(AGENT, [raw], [], [], backend.count_tokens, 900)
    assert "id=e1 type=code.push subject=repo/x time=2025-01-01T10:00:00Z\n" in prompt
    assert "spec_version" not in prompt
    assert '"branch": "main"' in prompt and "cdk.json" in prompt
    assert "(no memory yet)" in prompt


def test_impossible_budget_still_keeps_every_event(backend: TransformersBackend) -> None:
    events = [event(i) for i in range(3)]
    prompt = build_prompt(AGENT, events, [], [], backend.count_tokens, 20)
    for i in range(3):
        assert f"id=evt-{i}" in prompt
