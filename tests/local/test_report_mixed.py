"""The summary over a stream of mixed wire formats: agents follow from each record's decoded type
(EventBridge, gzip CloudWatch Logs, CloudEvents), control messages are dropped -- neither lost nor
quarantined -- and records are counted by adapter."""

from __future__ import annotations

import gzip
import json
from typing import Any

from agentfleet.act.dispatch import decision_id
from agentfleet.local.records import Audit, Snapshot, StreamRecord
from agentfleet.local.report import summarize, text
from agentfleet.spec.catalog import parse_agents
from tests.ingest.samples import sample

AGENTS = parse_agents([
    {"name": "oncall", "system_prompt": "p", "subscribes_to": ["cloudwatch.alarm"], "allowed_actions": ["notify"]},
    {"name": "logreader", "system_prompt": "p", "subscribes_to": ["logs.batch"], "allowed_actions": ["notify"]},
])
ALARM = sample("eventbridge_cloudwatch_alarm_state_change.json")
ALARM_ID = json.loads(ALARM)["id"]
LOGS_DOC = json.loads(sample("logs_subscription_data_message.json"))
LOGS = gzip.compress(json.dumps(LOGS_DOC).encode())
CONTROL = gzip.compress(json.dumps({**LOGS_DOC, "messageType": "CONTROL_MESSAGE", "logEvents": []}).encode())
CLOUDEVENT = sample("cloudevents_json_object_data.json")  # type com.example.someevent: nobody subscribes


def _record(seq: str, data: bytes, event_id: str = "") -> StreamRecord:
    return StreamRecord("shard-0", seq, 1_700_000_000.0, len(data), event_id, data)


def _decision(agent: str, seq: str, event_id: str) -> dict[str, Any]:
    return {"decision_id": decision_id(agent, "shard-0", seq), "agent": agent, "shard_id": "shard-0",
            "sequence_number": seq, "event_ids": [event_id], "outcome": "acted", "at": "2023-11-14T22:13:21.000Z"}


def _quarantine(seq: str) -> dict[str, Any]:
    return {"shard_id": "shard-0", "sequence_number": seq, "reason": "no_subscriber", "at": "2023-11-14T22:13:21.000Z"}


def _summary(stream: list[StreamRecord], decisions: list[dict[str, Any]],
             quarantines: list[dict[str, Any]]) -> dict[str, Any]:
    executions = [{"name": d["decision_id"], "status": "SUCCEEDED", "startDate": 1.0, "stopDate": 2.0,
                   "input": {"decision_id": d["decision_id"]}} for d in decisions]
    snap = Snapshot(stream, Audit(decisions=decisions, quarantines=quarantines), executions, memory_items=0)
    return summarize(snap, events_sent=len(stream), workers=1, killed_workers=[], wall_s=1.0, approvals_answered=0,
                     scenario="mixed", agents=AGENTS)


STREAM = [_record("1", ALARM, ALARM_ID), _record("2", LOGS, LOGS_DOC["logEvents"][0]["id"]), _record("3", CONTROL),
          _record("4", CLOUDEVENT, "C234-1234-1234")]
DECIDED = [_decision("oncall", "1", ALARM_ID), _decision("logreader", "2", LOGS_DOC["logEvents"][0]["id"])]


def test_a_fully_handled_mixed_stream_loses_nothing() -> None:
    s = _summary(STREAM, DECIDED, [_quarantine("4")])
    assert (s["pairs"], s["lost_events"], s["unquarantined"], s["misplaced_decisions"]) == (2, 0, [], [])
    assert s["dropped"] == 1 and s["quarantined_dropped"] == []
    assert s["records_by_adapter"] == {"eventbridge": 1, "logs": 2, "cloudevents": 1}
    assert "by adapter (logs 2, eventbridge 1, cloudevents 1); dropped 1" in text(s)


def test_subscribers_follow_the_decoded_type() -> None:
    # The alarm and the Logs batch each need their agent's decision, though neither is a kit envelope.
    s = _summary(STREAM, DECIDED[:1], [_quarantine("4")])
    assert s["lost_pairs"] == ["shard-0:2 logreader"] and s["unquarantined"] == []


def test_a_quarantined_control_message_is_reported() -> None:
    s = _summary(STREAM, DECIDED, [_quarantine("4"), _quarantine("3")])
    assert s["quarantined_dropped"] == ["shard-0:3"] and s["lost_events"] == 0


def test_a_decision_on_a_dropped_record_is_misplaced() -> None:
    stray = _decision("logreader", "3", "x")
    s = _summary(STREAM, [*DECIDED, stray], [_quarantine("4")])
    assert s["misplaced_decisions"] == [stray["decision_id"]]
