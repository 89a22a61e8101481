"""The serving benchmark's workload: a backlog of events across the shipped agents, and its prompts.

Events are the local scenarios' (ci-day and noisy: every shipped agent subscribes to some of them),
with fresh ids and `subjects` variants of each subject, so memory grows per (agent, subject) as in
a running fleet. rendered_requests() renders what the worker would send for them, in order.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from agentfleet.decide.prompt import build_prompt
from agentfleet.local import scenarios
from agentfleet.serve.model.base import GenerationRequest
from agentfleet.spec.catalog import subscribers
from agentfleet.spec.events import Rejection, parse_record
from agentfleet.spec.settings import Settings
from bench.serving_sim import RATIONALE

SCENARIOS = ("ci-day", "noisy")


def templates() -> list[dict[str, Any]]:
    """The scenarios' valid events (those the runtime accepts), in scenario order."""
    out = []
    for name in SCENARIOS:
        for record in scenarios.load(name):
            if not isinstance(parse_record(record.data, 1 << 20), Rejection):
                out.append(json.loads(record.data))
    return out


def backlog_records(count: int, *, subjects: int = 64) -> list[tuple[str, bytes]]:
    """`count` valid events as (partition key, data), cycling through the scenarios' events.

    Each event's subject gets one of `subjects` variants, interleaved (a fleet watches many alarms,
    repositories and findings at once). Order is kept per (agent, subject), so the requests in flight
    can never outnumber the distinct pairs with work waiting: with 8 variants taken in sequence, the
    first 300 records held 17 pairs and the worker kept 19 of 128 slots busy (15%).
    """
    base = templates()
    out = []
    for i in range(count):
        doc = dict(base[i % len(base)])
        doc["id"], doc["subject"] = f"serving-{i:07d}", f"{doc['subject']}-{i % subjects}"
        out.append((doc["subject"], json.dumps(doc).encode()))
    return out


def item_count(records: list[tuple[str, bytes]], settings: Settings) -> int:
    """Decisions the records make: one per (record, subscribed agent)."""
    total = 0
    for _, data in records:
        event = parse_record(data, settings.max_record_bytes)
        if not isinstance(event, Rejection):
            total += len(subscribers(settings.agents, event.type))
    return total


def rendered_requests(records: list[tuple[str, bytes]], settings: Settings, count_tokens: Callable[[str], int],
                      max_prompt_tokens: int, action: str = "notify") -> list[tuple[str, GenerationRequest]]:
    """(affinity key "agent/subject", request) per decision, memory growing as the pipeline writes it.

    Mirrors decide/pipeline.py: each decision appends the event as an observation and a summary of
    the decision (`action`, the simulator's answer) to that agent and subject's memory, keeping the
    newest memory_max_items of each.
    """
    history: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
    out: list[tuple[str, GenerationRequest]] = []
    for _, data in records:
        event = parse_record(data, settings.max_record_bytes)
        if isinstance(event, Rejection):
            continue
        for agent in subscribers(settings.agents, event.type):
            key = f"{agent.name}/{event.subject}"  # the runtime's affinity key (decide/prompt.request_for)
            observations, decisions = history.setdefault(key, ([], []))
            prompt = build_prompt(agent, [event.to_json()], observations, decisions, count_tokens, max_prompt_tokens)
            out.append((key, GenerationRequest(prompt, agent.allowed_actions)))
            observations.append({"at": event.utc_time(), "event_id": event.id, "type": event.type,
                                 "source": event.source, "payload": dict(event.payload)})
            decisions.append({"at": event.utc_time(), "decision_id": f"{agent.name}-{event.id}", "event_id": event.id,
                              "action": action, "outcome": "acted", "rationale": RATIONALE})
            del observations[:-settings.memory_max_items], decisions[:-settings.memory_max_items]
    return out
