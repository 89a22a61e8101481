"""KPL-aggregated records (issue 12, runtime item 9): de-aggregated, and each user record gets
decisions keyed by sequence and sub-sequence number. The records are built here with a minimal
encoder written from the format's spec (awslabs/amazon-kinesis-producer aggregation-format.md)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any

import pytest

from agentfleet.act.dispatch import decision_id
from agentfleet.entrypoints.worker import Worker
from agentfleet.ingest.kpl import deaggregate
from tests.runtime.fakes import ScriptedBackend
from tests.runtime.support import Fleet, event, wait_for_count

MAGIC = bytes([0xF3, 0x89, 0x9A, 0xC2])


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def kpl_record(records: list[tuple[str, bytes]]) -> bytes:
    """AggregatedRecord: partition_key_table = 1, records = 3 {partition_key_index = 1, data = 3}; MD5 trailer."""
    keys = sorted({key for key, _ in records})
    message = b"".join(_field(1, key.encode()) for key in keys)
    message += b"".join(_field(3, _field(1, keys.index(key)) + _field(3, data)) for key, data in records)
    return MAGIC + message + hashlib.md5(message).digest()


def test_deaggregate_reads_user_records_and_passes_anything_else_whole() -> None:
    packed = kpl_record([("a", b"one"), ("b", b"two"), ("a", b"three")])
    users = deaggregate(packed, "outer")
    assert [(u.data, u.partition_key, u.sub_sequence) for u in users] == [
        (b"one", "a", 0), (b"two", "b", 1), (b"three", "a", 2)]
    corrupt = packed[:-1] + bytes([packed[-1] ^ 1])  # checksum mismatch: an ordinary record (as the KCL does)
    assert [(u.data, u.sub_sequence) for u in deaggregate(corrupt, "k")] == [(corrupt, None)]
    assert [(u.data, u.sub_sequence) for u in deaggregate(b'{"plain": 1}')] == [(b'{"plain": 1}', None)]
    truncated = MAGIC + b"\x1a\x7f" + hashlib.md5(b"\x1a\x7f").digest()
    assert deaggregate(truncated)[0].data == truncated


@pytest.mark.integration
@pytest.mark.parametrize("fleet", [1], indirect=True)
def test_aggregated_records_get_one_decision_per_user_record_and_agent(fleet: Fleet, running: Any) -> None:
    events = [event("ci.failed", f"svc-{i}", {"want": "notify"}) for i in range(3)]  # triage + watcher each
    packed = kpl_record([(e["subject"], json.dumps(e).encode()) for e in events] + [("bad", b"{not json")])
    (position,) = fleet.put([packed], partition_key="svc-0")
    handle = running(Worker(fleet.settings(), ScriptedBackend()))
    decisions = wait_for_count(fleet.decisions, 6, 60, "decisions")
    quarantined = wait_for_count(fleet.quarantined, 1, 30, "quarantine record")
    assert handle.stop() == 0
    seq = position["sequence_number"]
    assert {d["sequence_number"] for d in decisions} == {seq}
    assert Counter(d["sub_sequence_number"] for d in decisions) == {0: 2, 1: 2, 2: 2}
    for d in decisions:
        assert d["decision_id"] == decision_id(d["agent"], position["shard_id"], seq, d["sub_sequence_number"])
        assert d["event_ids"] == [events[d["sub_sequence_number"]]["id"]]
    assert len({d["decision_id"] for d in decisions}) == 6
    assert (quarantined[0]["sub_sequence_number"], quarantined[0]["reason"]) == (3, "invalid_json")
    assert sorted(e["name"] for e in fleet.executions()) == sorted(d["decision_id"] for d in decisions)
