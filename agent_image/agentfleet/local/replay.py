"""Replay a scenario into the Kinesis stream, in order, partition key = subject."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from agentfleet.local.scenarios import Record

MAX_BATCH_RECORDS = 500  # PutRecords limits: 500 records and 5 MiB per call
MAX_BATCH_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Sent:
    """Where the stream put one record (what the audit trail must account for)."""

    shard_id: str
    sequence_number: str
    partition_key: str


def _batches(records: Sequence[Record], per_call: int) -> list[list[Record]]:
    out: list[list[Record]] = [[]]
    size = 0
    for record in records:
        if out[-1] and (len(out[-1]) >= per_call or size + len(record.data) > MAX_BATCH_BYTES):
            out.append([])
            size = 0
        out[-1].append(record)
        size += len(record.data) + len(record.partition_key)
    return [batch for batch in out if batch]


def put_all(kinesis: Any, stream_name: str, records: Sequence[Record], *, rate: float = 0.0,
            on_sent: Callable[[int], None] | None = None, attempts: int = 8) -> list[Sent]:
    """Send every record; `rate` > 0 paces to about that many records per second.

    A batch's failed entries are resent (with backoff) before the next batch goes, so one
    subject's records reach the stream in file order even when the stream throttles.
    """
    per_call = max(1, min(MAX_BATCH_RECORDS, int(rate) if rate > 0 else MAX_BATCH_RECORDS))
    sent: list[Sent] = []
    for batch in _batches(records, per_call):
        started = time.monotonic()
        pending = list(batch)
        for attempt in range(attempts):
            response = kinesis.put_records(StreamName=stream_name, Records=[
                {"Data": r.data, "PartitionKey": r.partition_key} for r in pending])
            failed = []
            for record, result in zip(pending, response["Records"], strict=True):
                if "SequenceNumber" in result:
                    sent.append(Sent(result["ShardId"], result["SequenceNumber"], record.partition_key))
                else:
                    failed.append(record)
            if not failed:
                break
            if attempt == attempts - 1:
                raise RuntimeError(f"{len(failed)} records still refused after {attempts} attempts")
            pending = failed
            time.sleep(min(2.0, 0.1 * 2 ** attempt))
        if on_sent:
            on_sent(len(sent))
        if rate > 0:
            time.sleep(max(0.0, len(batch) / rate - (time.monotonic() - started)))
    return sent
