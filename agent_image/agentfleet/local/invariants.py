"""The invariant detectors behind the local fleet's "lost" and "duplicate" figures.

A *pair* is one user record read back from the stream (shard, sequence number, KPL
sub-sequence number) and one agent subscribed to its event type. Invariant 1 (nothing lost):
every pair has exactly one decision recorded at that very position for that agent; a record no
agent can take (it fails validation, or nobody subscribes) has a quarantine record at its
position instead. Invariant 2 (nothing done twice): no pair has more than one Step Functions
execution, matched through each execution's *input* (decision id, else event id + agent) — not
its name, so one record acted on under two decision ids is caught. A decision whose position
is not on the stream, or whose event id differs from the record there, is misplaced.

Records are decoded exactly as the workers decode them (agentfleet.ingest.adapters: CloudEvents,
EventBridge, CloudWatch Logs, the kit envelope), so a record's subscribed agents follow from its
decoded event type whatever shape it came in. A record the adapters *drop* (a CloudWatch Logs
CONTROL_MESSAGE) needs neither a decision nor a quarantine record; one that was quarantined anyway
is reported (quarantined_dropped), since dropping is deliberate and counted, never a rejection.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentfleet.ingest.adapters import Dropped
from agentfleet.local.records import Snapshot, StreamRecord
from agentfleet.spec.catalog import AgentSpec, subscribers
from agentfleet.spec.events import MAX_KINESIS_RECORD_BYTES, Event

Position = tuple[str, str, int | None]
Pair = tuple[Position, str]  # (position, agent)


@dataclass
class Findings:
    """What the detectors found; each list names the offending pairs/records (for summary.json)."""

    pairs: int = 0
    lost: list[Pair] = field(default_factory=list)  # no decision at the pair's position
    duplicate_decisions: list[Pair] = field(default_factory=list)  # more than one decision for a pair
    misplaced: list[str] = field(default_factory=list)  # decision ids at a position with another record
    duplicate_actions: int = 0  # executions beyond the first, per pair
    unmatched_executions: list[str] = field(default_factory=list)  # executions that match no pair
    unquarantined: list[Position] = field(default_factory=list)  # rejected records with no quarantine record
    dropped: list[Position] = field(default_factory=list)  # records the adapters drop (Logs control messages)
    quarantined_dropped: list[Position] = field(default_factory=list)  # dropped records that were quarantined


def _position(item: dict[str, Any]) -> Position:
    sub = item.get("sub_sequence_number")
    return str(item.get("shard_id", "")), str(item.get("sequence_number", "")), None if sub is None else int(sub)


def expected_pairs(stream: Iterable[StreamRecord], subscribed: Callable[[Event], list[str]],
                   max_record_bytes: int = MAX_KINESIS_RECORD_BYTES) -> tuple[set[Pair], set[Position], set[Position]]:
    """(pairs that need a decision, positions that need a quarantine record, positions dropped)."""
    pairs: set[Pair] = set()
    rejected: set[Position] = set()
    dropped: set[Position] = set()
    for record in stream:
        _, decoded = record.decoded(max_record_bytes)
        if isinstance(decoded, Dropped):
            dropped.add(record.position)
            continue
        names = subscribed(decoded) if isinstance(decoded, Event) else []
        if not names:
            rejected.add(record.position)
        pairs |= {(record.position, name) for name in names}
    return pairs, rejected, dropped


def inferred_subscriptions(snap: Snapshot) -> Callable[[Event], list[str]]:
    """Without the agent catalog: the agents that decided any event of a type subscribe to that type
    (weaker: it cannot see an agent that decided nothing of a type)."""
    types = {r.event_id: r.decoded()[1] for r in snap.stream if r.event_id}
    by_type: defaultdict[str, set[str]] = defaultdict(set)
    for d in snap.audit.decisions:
        for event_id in d.get("event_ids", []):
            parsed = types.get(event_id)
            if isinstance(parsed, Event):
                by_type[parsed.type].add(str(d.get("agent")))
    return lambda event: sorted(by_type.get(event.type, ()))


def detect(snap: Snapshot, agents: Sequence[AgentSpec] | None,
           max_record_bytes: int = MAX_KINESIS_RECORD_BYTES) -> Findings:
    """Run every detector; `agents` is the catalog the workers ran with (None: inferred, weaker);
    `max_record_bytes` the workers' limit (settings.max_record_bytes)."""
    if agents is None:
        subscribed = inferred_subscriptions(snap)
    else:
        catalog = list(agents)
        subscribed = lambda event: [a.name for a in subscribers(catalog, event.type)]  # noqa: E731
    pairs, rejected, dropped = expected_pairs(snap.stream, subscribed, max_record_bytes)
    at = {record.position: record for record in snap.stream}
    found = Findings(pairs=len(pairs))
    decided: defaultdict[Pair, list[str]] = defaultdict(list)
    decision_pair: dict[str, Pair] = {}
    for d in snap.audit.decisions:
        position = _position(d)
        record = at.get(position)
        if record is None or position in dropped or (record.event_id and record.event_id not in d.get("event_ids", [])):
            found.misplaced.append(str(d.get("decision_id")))
            continue
        pair = (position, str(d.get("agent")))
        decided[pair].append(str(d.get("decision_id")))
        decision_pair[str(d.get("decision_id"))] = pair
    found.lost = sorted((p for p in pairs if not decided.get(p)), key=str)
    found.duplicate_decisions = sorted((p for p, ids in decided.items() if len(ids) > 1), key=str)
    quarantined = {_position(q) for q in snap.audit.quarantines}
    found.unquarantined = sorted(rejected - quarantined, key=str)
    found.dropped = sorted(dropped, key=str)
    found.quarantined_dropped = sorted(dropped & quarantined, key=str)

    by_event: defaultdict[str, list[Position]] = defaultdict(list)
    for record in snap.stream:
        if record.event_id:
            by_event[record.event_id].append(record.position)
    runs: Counter[Pair] = Counter()
    for ex in snap.executions:
        doc = ex.get("input") or {}
        target = decision_pair.get(str(doc.get("decision_id")))
        if target is None:  # an execution under an id no decision records: match it by what it acts on
            events = doc.get("event_ids") or []
            places = by_event.get(str(events[0]), []) if events else []
            candidates = [(pos, str(doc.get("agent"))) for pos in places if (pos, str(doc.get("agent"))) in pairs]
            target = candidates[0] if len(candidates) == 1 else None
        if target is None:
            found.unmatched_executions.append(str(ex.get("name")))
        else:
            runs[target] += 1
    found.duplicate_actions = sum(n - 1 for n in runs.values() if n > 1)
    return found
