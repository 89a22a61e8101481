"""Priorities and load shedding (issue 11): the agent keys, and a shed item recorded, never dropped."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from agentfleet.act.audit import DecisionRecord
from agentfleet.decide.pipeline import DecisionPipeline
from agentfleet.ops.metrics import Metrics
from agentfleet.spec import metric_names
from agentfleet.spec.catalog import ConfigError, parse_agent
from tests.runtime.test_scheduler import SHEDDER, _item

BASE = {"name": "pager", "system_prompt": "p", "subscribes_to": ["ci.*"], "allowed_actions": ["notify"]}


def test_priority_and_shed_after_seconds_parse_round_trip_and_default_to_never() -> None:
    agent = parse_agent({**BASE, "priority": 3, "shed_after_seconds": 90}, "agents[0]")
    assert (agent.priority, agent.shed_after_seconds) == (3, 90.0)
    assert parse_agent(agent.to_json(), "agents[0]") == agent
    default = parse_agent(BASE, "agents[0]")
    assert (default.priority, default.shed_after_seconds) == (0, 0.0)


@pytest.mark.parametrize(("extra", "message"), [
    ({"priority": "high"}, "agents[2].priority must be an integer"),
    ({"priority": True}, "agents[2].priority must be an integer"),
    ({"shed_after_seconds": -1}, "agents[2].shed_after_seconds must be a number >= 0"),
    ({"shed_after_seconds": "60"}, "agents[2].shed_after_seconds must be a number >= 0"),
    ({"shed_after_seconds": float("nan")}, "agents[2].shed_after_seconds must be a number >= 0"),
])
def test_bad_priority_or_shed_values_name_the_key(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_agent({**BASE, **extra}, "agents[2]")


class RecordingAudit:
    def __init__(self) -> None:
        self.records: list[DecisionRecord] = []
        self.kept: list[tuple[str, str, bytes]] = []

    def keep(self, shard_id: str, sequence_number: str, sub_sequence: int | None, data: bytes) -> str:
        self.kept.append((shard_id, sequence_number, data))
        return f"s3://q/{shard_id}/{sequence_number}"

    def record_decision(self, record: DecisionRecord) -> tuple[DecisionRecord, bool]:
        self.records.append(record)
        return record, True


def test_a_shed_item_is_recorded_with_outcome_shed_a_reason_and_the_agent_metric() -> None:
    audit, out = RecordingAudit(), io.StringIO()
    metrics = Metrics("fleet", "emf", stream=out)
    backend: Any = type("B", (), {"model_id": "m"})()
    pipeline = DecisionPipeline(backend=backend, memory=None, audit=audit, dispatcher=None,  # type: ignore[arg-type]
                                guardrails=None, metrics=metrics, worker_id="w1")  # type: ignore[arg-type]
    item = _item(SHEDDER, "svc", "7")
    assert pipeline.shed(item, 2.5) is True, "handled: the worker acknowledges it"
    (record,) = audit.records
    assert (record.outcome, record.decision_id, record.agent, record.action) == ("shed", item.decision_id,
                                                                               "shedder", "")
    assert "waited 2.5 s" in record.reason and "shed_after_seconds 2" in record.reason
    ((shard, sequence, data),) = audit.kept  # its bytes kept, as a failed item's (no raw bytes here: the event)
    assert (shard, sequence, json.loads(data)["id"]) == (item.shard_id, item.sequence_number, item.event.id)
    assert record.payload_s3 == f"s3://q/{item.shard_id}/{item.sequence_number}"
    assert "shed" in metric_names.DECISION_OUTCOMES
    metrics.flush()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert any(line.get(metric_names.ITEMS_SHED) == 1.0 and line.get(metric_names.AGENT) == "shedder"
               for line in lines), lines
    assert any(line.get(metric_names.DECISIONS) == 1.0 and line.get(metric_names.OUTCOME) == "shed"
               for line in lines), lines
