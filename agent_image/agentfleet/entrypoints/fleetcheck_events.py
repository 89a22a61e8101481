"""Fleet check, part 1: synthetic CloudEvents for the configured agents, and putting them on the stream.

Each event is a CloudEvents 1.0 JSON record (the kit's preferred native record, ingest/adapters/
cloudevents.py) with an id unique to this run, so the run's decisions are found by event id. Event i
is addressed to agent i mod len(agents): its type is that agent's first subscription made concrete
("ci.*" -> "ci.fleetcheck", "*" -> "fleetcheck.synthetic"); every other agent subscribed to the type
decides it too, so the expected (event, agent) pairs come from `spec.catalog.subscribers`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agentfleet.ops import logs
from agentfleet.spec.catalog import AgentSpec, ConfigError, subscribers

log = logs.get(__name__)
SOURCE = "agentfleet/fleetcheck"
# Kinesis PutRecords takes at most 500 records per request (PutRecordsRequestEntryList "max": 500,
# botocore/data/kinesis/2013-12-02/service-2.json, botocore 1.44.8).
MAX_RECORDS_PER_PUT = 500
PUT_ATTEMPTS = 5  # failed entries (ProvisionedThroughputExceededException, InternalFailure) are resent


def concrete_type(pattern: str) -> str:
    """An event type a subscription pattern matches (catalog.AgentSpec.subscribes)."""
    if pattern == "*":
        return "fleetcheck.synthetic"
    return pattern[:-1] + "fleetcheck" if pattern.endswith(".*") else pattern


def synthetic_events(agents: Sequence[AgentSpec], count: int, run_id: str, *, subjects: int = 8,
                     now: Callable[[], float] = time.time) -> list[dict[str, Any]]:
    """`count` CloudEvents spread over the agents and over `subjects` subjects (one subject's events
    stay ordered on one shard, so several subjects let several shards and workers share the run)."""
    if not agents:
        raise ConfigError("the fleet's config document defines no agents: nothing to send events to")
    if count < 1 or subjects < 1:
        raise ConfigError(f"--events ({count}) and subjects ({subjects}) must be at least 1")
    stamp = datetime.fromtimestamp(now(), tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    events = []
    for i in range(count):
        agent = agents[i % len(agents)]
        events.append({
            "specversion": "1.0", "id": f"fleetcheck-{run_id}-{i:06d}", "source": SOURCE,
            "type": concrete_type(agent.subscribes_to[0]), "subject": f"fleetcheck/{run_id}/subject-{i % subjects}",
            "time": stamp, "datacontenttype": "application/json",
            "data": {"fleetcheck_run": run_id, "sequence": i, "for_agent": agent.name,
                     "summary": f"Synthetic fleet-check event {i + 1} of {count}: measure only, no action is needed."},
        })
    return events


def expected_pairs(agents: Sequence[AgentSpec], events: Sequence[dict[str, Any]]) -> set[tuple[str, str]]:
    """(event id, agent name) for every agent that must decide each event."""
    return {(e["id"], a.name) for e in events for a in subscribers(agents, e["type"])}


@dataclass(frozen=True)
class Sent:
    """One event on the stream: where it landed and when the put returned (this machine's clock)."""

    event_id: str
    shard_id: str
    sequence_number: str
    put_at: float


def put_events(kinesis: Any, stream: str, events: Sequence[dict[str, Any]], *, clock: Callable[[], float] = time.time,
               sleep: Callable[[float], None] = time.sleep) -> list[Sent]:
    """PutRecords in chunks of 500 (partition key = subject, as every producer of the kit does);
    entries that come back with an ErrorCode are resent with backoff; raises if any never land."""
    sent: list[Sent] = []
    for start in range(0, len(events), MAX_RECORDS_PER_PUT):
        pending = list(events[start:start + MAX_RECORDS_PER_PUT])
        for attempt in range(PUT_ATTEMPTS):
            response = kinesis.put_records(StreamName=stream, Records=[
                {"Data": json.dumps(e).encode(), "PartitionKey": e["subject"]} for e in pending])
            at = clock()
            failed = []
            # Records[i] answers pending[i]: SequenceNumber + ShardId when stored, else ErrorCode.
            for event, result in zip(pending, response["Records"], strict=True):
                if result.get("ErrorCode"):
                    failed.append(event)
                else:
                    sent.append(Sent(event["id"], result["ShardId"], result["SequenceNumber"], at))
            if not failed:
                break
            log.warning("put_records: entries refused, resending",
                        extra={"failed": len(failed), "attempt": attempt + 1})
            pending = failed
            sleep(min(2.0, 0.2 * 2 ** attempt))
        else:
            raise RuntimeError(f"{len(pending)} events were refused by the stream {stream} after {PUT_ATTEMPTS} "
                               "attempts (throttled?); send fewer with --events")
    return sent
