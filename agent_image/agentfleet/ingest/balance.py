"""The pure parts of lease balancing: the stream's shard list, which leases are active, and
what this worker should take or give up (see ingest/coordinator.py for when they run)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agentfleet.ingest.leases import Lease

# ListShards returns at most 1000 shards a call whatever MaxResults says; the model allows up to
# 10000 (botocore/data/kinesis/2013-12-02/service-2.json, ListShardsInputLimit, botocore 1.44.8).
_LIST_SHARDS_MAX_RESULTS = 10000


@dataclass(frozen=True)
class ShardInfo:
    shard_id: str
    parents: tuple[str, ...]
    ending_sequence: str | None  # set once the shard is closed (split, merged)


@dataclass(frozen=True)
class Plan:
    take: list[Lease]
    give_up: list[str]
    fair_share: int
    live_workers: int


def active_leases(leases: list[Lease], shards: dict[str, ShardInfo]) -> list[Lease]:
    """Leases that may be processed now: unfinished, still in the stream, and every parent finished
    or gone from the stream (a parent past retention has nothing left to read, finished or not)."""
    rows = {lease.shard_id: lease for lease in leases}

    def parent_done(parent: str) -> bool:
        return parent not in shards or (parent in rows and rows[parent].finished)

    return [lease for lease in leases if not lease.finished and lease.shard_id in shards
            and all(parent_done(p) for p in lease.parents)]


def plan(leases: list[Lease], shards: dict[str, ShardInfo], *, me: str, held: set[str], alive: set[str],
         live_workers: set[str], shuffle: Callable[[list[Lease]], None] = random.shuffle) -> Plan:
    """Pure balancing decision (tested without AWS). `alive`: shard ids whose owner still renews them,
    as judged on this host's clock; `live_workers`: workers whose heartbeat still moves."""
    active = active_leases(leases, shards)
    live = {lease.owner for lease in leases if lease.owner and lease.shard_id in alive} | live_workers | {me}
    fair = math.ceil(len(active) / len(live)) if active else 0
    mine = sorted(lease.shard_id for lease in active if lease.shard_id in held)
    if len(mine) > fair:
        return Plan([], [mine[-1]], fair, len(live))
    free = [lease for lease in active if lease.shard_id not in held
            and not (lease.owner and lease.shard_id in alive)]
    shuffle(free)  # workers starting together should not all race for the same shard
    return Plan(free[: max(0, fair - len(mine))], [], fair, len(live))


def list_shards(kinesis: Any, stream_name: str) -> dict[str, ShardInfo]:
    """Every shard of the stream, paged by hand: a call with NextToken must not name the stream
    ("Don't specify StreamName ... if you specify NextToken", ListShardsInput.NextToken in
    botocore/data/kinesis/2013-12-02/service-2.json), and botocore's paginator resends it.
    Raises if any page fails, so callers only ever see a complete listing."""
    shards: dict[str, ShardInfo] = {}
    kwargs: dict[str, Any] = {"StreamName": stream_name, "MaxResults": _LIST_SHARDS_MAX_RESULTS}
    while True:
        page = kinesis.list_shards(**kwargs)
        for shard in page.get("Shards", []):
            parents = tuple(p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p)
            ending = shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
            shards[shard["ShardId"]] = ShardInfo(shard["ShardId"], parents, ending)
        token = page.get("NextToken")
        if not token:
            return shards
        kwargs = {"NextToken": token, "MaxResults": _LIST_SHARDS_MAX_RESULTS}
