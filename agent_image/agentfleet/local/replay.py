"""Replay a scenario into the Kinesis stream, in file order, each record with its producer's partition
key; GitHub deliveries go through the real webhook handler (local/github_sim.py), which writes them."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from agentfleet.ingest.adapters import Dropped, decode
from agentfleet.local.github_sim import GitHubSim
from agentfleet.local.scenarios import Record
from agentfleet.spec.events import MAX_KINESIS_RECORD_BYTES

MAX_BATCH_RECORDS = 500  # PutRecords limits: 500 records and 5 MiB per call
MAX_BATCH_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Sent:
    """Where the stream put one record (what the audit trail must account for)."""

    shard_id: str
    sequence_number: str
    partition_key: str
    dropped: bool = False  # the workers drop it on purpose (a Logs control message): no decision, no quarantine


def _dropped(data: bytes) -> bool:
    # The arrival time only fills a CloudEvent's missing time; it cannot make a record Dropped.
    return isinstance(decode(data, arrival_time="1970-01-01T00:00:00Z", max_record_bytes=MAX_KINESIS_RECORD_BYTES),
                      Dropped)


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


def _segments(records: Sequence[Record]) -> list[list[Record]]:
    """Runs of stream records, and each webhook delivery on its own, in file order."""
    out: list[list[Record]] = []
    for record in records:
        if record.webhook is not None or not out or out[-1][-1].webhook is not None:
            out.append([])
        out[-1].append(record)
    return out


def put_all(kinesis: Any, stream_name: str, records: Sequence[Record], *, rate: float = 0.0,
            on_sent: Callable[[int], None] | None = None, attempts: int = 8,
            github: GitHubSim | None = None) -> list[Sent]:
    """Send every record; `rate` > 0 paces to about that many records per second.

    A batch's failed entries are resent (with backoff) before the next batch goes, so one
    subject's records reach the stream in file order even when the stream throttles. A webhook
    delivery is posted to `github` (needed when the scenario holds one) after the records before it.
    """
    sent: list[Sent] = []
    for segment in _segments(records):
        delivery = segment[0].webhook
        if delivery is None:
            _put(kinesis, stream_name, segment, rate, on_sent, attempts, sent)
            continue
        if github is None:
            raise ValueError(f"the scenario holds a GitHub delivery ({delivery.delivery}) but no webhook handler "
                             "was set up to receive it")
        sent += [Sent(shard, seq, key) for shard, seq, key in github.deliver(delivery)]
        if on_sent:
            on_sent(len(sent))
        if rate > 0:
            time.sleep(1 / rate)
    return sent


def _put(kinesis: Any, stream_name: str, records: Sequence[Record], rate: float,
         on_sent: Callable[[int], None] | None, attempts: int, sent: list[Sent]) -> None:
    per_call = max(1, min(MAX_BATCH_RECORDS, int(rate) if rate > 0 else MAX_BATCH_RECORDS))
    for batch in _batches(records, per_call):
        started = time.monotonic()
        pending = list(batch)
        for attempt in range(attempts):
            response = kinesis.put_records(StreamName=stream_name, Records=[
                {"Data": r.data, "PartitionKey": r.partition_key} for r in pending])
            failed = []
            for record, result in zip(pending, response["Records"], strict=True):
                if "SequenceNumber" in result:
                    sent.append(Sent(result["ShardId"], result["SequenceNumber"], record.partition_key,
                                     _dropped(record.data)))
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
