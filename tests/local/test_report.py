"""The invariant detectors must be able to fail (issue 12): crafted snapshots with a lost pair, a pair
acted on twice under two ids, and a decision at the wrong position are each reported; the stream
read-back does not stop at the first empty page."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from agentfleet.act.dispatch import decision_id
from agentfleet.local.records import Audit, Snapshot, StreamRecord, read_stream
from agentfleet.local.report import summarize
from agentfleet.spec.catalog import parse_agents

AGENTS = parse_agents([
    {"name": "triage", "system_prompt": "p", "subscribes_to": ["ci.*"], "allowed_actions": ["notify", "ignore"]},
    {"name": "watcher", "system_prompt": "p", "subscribes_to": ["ci.failed"], "allowed_actions": ["notify", "ignore"]},
])


def _record(seq: str, event_id: str, type_: str = "ci.failed") -> StreamRecord:
    data = json.dumps({"spec_version": "1.0", "id": event_id, "type": type_, "subject": "svc", "source": "t",
                       "time": "2025-01-01T00:00:00Z", "payload": {}}).encode()
    return StreamRecord("shard-0", seq, 1_700_000_000.0, len(data), event_id, data)


def _decision(agent: str, seq: str, event_id: str, did: str | None = None) -> dict[str, Any]:
    return {"decision_id": did or decision_id(agent, "shard-0", seq), "agent": agent, "shard_id": "shard-0",
            "sequence_number": seq, "event_ids": [event_id], "outcome": "acted", "at": "2023-11-14T22:13:21.000Z"}


def _execution(d: dict[str, Any]) -> dict[str, Any]:
    return {"name": d["decision_id"], "status": "SUCCEEDED", "startDate": 1.0, "stopDate": 2.0,
            "input": {"decision_id": d["decision_id"], "agent": d["agent"], "event_ids": d["event_ids"]}}


def _summary(stream: list[StreamRecord], decisions: list[dict[str, Any]],
             executions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    snap = Snapshot(stream, Audit(decisions=decisions), executions if executions is not None else
                    [_execution(d) for d in decisions], memory_items=0)
    return summarize(snap, events_sent=len(stream), workers=1, killed_workers=[], wall_s=1.0, approvals_answered=0,
                     scenario="crafted", agents=AGENTS)


def test_a_clean_snapshot_reports_nothing() -> None:
    stream = [_record("1", "e1"), _record("2", "e2", "ci.passed")]
    decisions = [_decision("triage", "1", "e1"), _decision("watcher", "1", "e1"), _decision("triage", "2", "e2")]
    s = _summary(stream, decisions)
    assert (s["pairs"], s["lost_events"], s["duplicate_actions"], s["duplicate_decisions"],
            s["misplaced_decisions"]) == (3, 0, 0, [], [])


def test_a_second_subscribed_agent_without_a_decision_is_lost() -> None:
    s = _summary([_record("1", "e1")], [_decision("triage", "1", "e1")])
    assert s["lost_events"] == 1 and s["lost_pairs"] == ["shard-0:1 watcher"]


def test_one_pair_acted_on_twice_under_two_ids_is_a_duplicate() -> None:
    first = _decision("triage", "1", "e1")
    second = _decision("triage", "1", "e1", did="triage-derived-differently")
    s = _summary([_record("1", "e1")], [first, second, _decision("watcher", "1", "e1")])
    assert s["duplicate_actions"] == 1 and s["duplicate_decisions"] == ["shard-0:1 triage"]
    # The same, when the second execution's id is recorded nowhere: matched through its input.
    s = _summary([_record("1", "e1")], [first, _decision("watcher", "1", "e1")],
                 [_execution(first), _execution(second), _execution(_decision("watcher", "1", "e1"))])
    assert s["duplicate_actions"] == 1


def test_a_decision_at_the_wrong_position_is_reported() -> None:
    stream = [_record("1", "e1"), _record("2", "e2")]
    decisions = [_decision("triage", "2", "e1"), _decision("watcher", "1", "e1"),  # triage's e1 decision at 2
                 _decision("triage", "2", "e2"), _decision("watcher", "2", "e2")]
    s = _summary(stream, decisions)
    assert s["misplaced_decisions"] == [decisions[0]["decision_id"]]
    assert s["lost_pairs"] == ["shard-0:1 triage"]


def test_a_rejected_record_needs_its_quarantine_record() -> None:
    bad = StreamRecord("shard-0", "3", 1.0, 9, "", b"{not json")
    assert _summary([bad], [])["unquarantined"] == ["shard-0:3"]


class Pages:
    """GetRecords as Kinesis may answer it: empty pages before the records, then the tip."""

    def __init__(self) -> None:
        now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
        record = {"SequenceNumber": "7", "Data": b'{"id": "e7"}', "ApproximateArrivalTimestamp": now}
        self.pages = [{"Records": [], "MillisBehindLatest": 9000}, {"Records": [], "MillisBehindLatest": 8000},
                      {"Records": [record], "MillisBehindLatest": 0}, {"Records": [], "MillisBehindLatest": 0}]

    def list_shards(self, **kwargs: Any) -> dict[str, Any]:
        return {"Shards": [{"ShardId": "shard-0"}]}

    def get_shard_iterator(self, **kwargs: Any) -> dict[str, str]:
        return {"ShardIterator": "it-0"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        page = self.pages.pop(0)
        return {**page, "NextShardIterator": f"it-{4 - len(self.pages)}"}


def test_the_stream_read_back_does_not_stop_at_an_empty_page() -> None:
    pages = Pages()
    assert [(r.sequence_number, r.event_id) for r in read_stream(pages, "s")] == [("7", "e7")]
    assert pages.pages == [], "read until an empty page at the tip"
