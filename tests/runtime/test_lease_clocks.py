"""Lease expiry without comparing clocks across hosts, shards that aged out of the stream, and
ListShards paged by hand (issue 12, runtime items 1, 2 and 7)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from agentfleet.ingest.balance import list_shards
from agentfleet.ingest.coordinator import LeaseCoordinator
from agentfleet.ingest.leases import Lease, LeaseTable
from tests.runtime.support import Fleet

pytestmark = pytest.mark.integration
LEASE_SECONDS = 3.0


class Clock:
    """A monotonic clock the test moves by hand (shared by both workers: only rates matter)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _worker(fleet: Fleet, me: str, wall_offset: float, mono: Clock) -> tuple[LeaseCoordinator, list[Lease]]:
    """A coordinator whose host wall clock is off by `wall_offset` seconds; records what it took."""
    import time

    table = LeaseTable(fleet.clients["dynamodb"], fleet.names.leases_table, lease_seconds=LEASE_SECONDS,
                       clock=lambda: time.time() + wall_offset)
    took: list[Lease] = []
    real_take = table.take

    def take(lease: Lease, owner: str) -> Lease | None:
        took.append(lease)  # the view the taker acted on
        return real_take(lease, owner)

    table.take = take  # type: ignore[method-assign]
    return LeaseCoordinator(table, fleet.clients["kinesis"], fleet.names.stream, me, lease_seconds=LEASE_SECONDS,
                            monotonic=mono), took


def _tick(coordinator: LeaseCoordinator) -> list[str]:
    changes = coordinator.tick(taking=True)
    for shard_id in changes.give_up:
        coordinator.release(shard_id)
    return changes.lost


@pytest.mark.parametrize("skew", [30.0, -30.0])
def test_workers_whose_wall_clocks_differ_never_take_a_live_lease(fleet: Fleet, skew: float) -> None:
    mono = Clock()
    a, _ = _worker(fleet, "A", 0.0, mono)
    b, b_took = _worker(fleet, "B", skew, mono)
    _tick(a)
    assert len(a.held) == 4
    for _ in range(12):  # both renew every second: 12 s, four lease durations
        mono.now += 1.0
        assert _tick(a) == [], "A never loses a lease it keeps renewing"
        _tick(b)
        assert not a.held.keys() & b.held.keys()
    assert all(not lease.owner for lease in b_took), f"B took a live lease: {b_took}"
    assert len(a.held) == len(b.held) == 2, "balanced by hand-offs only"

    # A stops renewing (crashed): B takes its leases only after they stood still a lease duration
    # on B's own clock, whatever B's wall clock says.
    stopped = mono.now
    while len(b.held) < 4:
        mono.now += 0.5
        _tick(b)
        assert mono.now - stopped < LEASE_SECONDS + 2.0, "B never took the dead worker's leases"
        if len(b.held) > 2:
            assert mono.now - stopped > LEASE_SECONDS, "B took a lease before it could have expired"


@pytest.mark.parametrize("fleet", [1], indirect=True)
def test_a_parent_that_aged_out_before_shard_end_releases_its_children(fleet: Fleet) -> None:
    """The parent's lease row says checkpoint 50, never SHARD_END; ListShards no longer lists it."""
    ddb = fleet.clients["dynamodb"]
    table = LeaseTable(ddb, fleet.names.leases_table, lease_seconds=LEASE_SECONDS)
    real = fleet.clients["kinesis"].list_shards(StreamName=fleet.names.stream)["Shards"][0]
    child_ids = [real["ShardId"], "shardId-000000000009"]
    table.ensure("shardId-000000000000-parent", ())
    (parent,), _ = table.scan()
    assert table.take(parent, "old") and table.checkpoint(parent.shard_id, "old", "50")
    for child in child_ids:
        table.ensure(child, (parent.shard_id,))

    class Listing:
        """ListShards as Kinesis answers once the parent is past retention: the children only."""

        def list_shards(self, **kwargs: Any) -> dict[str, Any]:
            return {"Shards": [{"ShardId": c, "ParentShardId": parent.shard_id,
                                "SequenceNumberRange": {"StartingSequenceNumber": "1"}} for c in child_ids]}

    mono = Clock()
    coordinator = LeaseCoordinator(table, Listing(), fleet.names.stream, "B", lease_seconds=LEASE_SECONDS,
                                   monotonic=mono)
    _tick(coordinator)
    assert sorted(coordinator.held) == sorted(child_ids), "the children are leased"
    leases, _ = table.scan()
    assert parent.shard_id not in {lease.shard_id for lease in leases}, "the aged-out lease is deleted"


def test_a_held_shard_that_left_the_stream_is_dropped(fleet: Fleet) -> None:
    mono = Clock()
    coordinator, _ = _worker(fleet, "A", 0.0, mono)
    _tick(coordinator)
    gone = sorted(coordinator.held)[0]
    listed = coordinator.list_shards()

    coordinator.list_shards = lambda: {k: v for k, v in listed.items() if k != gone}  # type: ignore[method-assign]
    mono.now += 1.0
    assert _tick(coordinator) == [gone], "the reader of a vanished shard is stopped"
    assert gone not in coordinator.held


def test_list_shards_pages_with_next_token_alone() -> None:
    """Kinesis refuses StreamName beside NextToken; the stub fails on any call not exactly as listed."""
    kinesis = boto3.client("kinesis", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    shard = {"SequenceNumberRange": {"StartingSequenceNumber": "1"}, "HashKeyRange": {
        "StartingHashKey": "0", "EndingHashKey": "1"}}
    with Stubber(kinesis) as stub:
        stub.add_response("list_shards", {"Shards": [{"ShardId": "s-0", **shard}, {"ShardId": "s-1", **shard}],
                                          "NextToken": "page2"}, {"StreamName": "events", "MaxResults": 10000})
        stub.add_response("list_shards", {"Shards": [{"ShardId": "s-2", **shard}], "NextToken": "page3"},
                          {"NextToken": "page2", "MaxResults": 10000})
        stub.add_response("list_shards", {"Shards": [{"ShardId": "s-3", "ParentShardId": "s-0", **shard}]},
                          {"NextToken": "page3", "MaxResults": 10000})
        shards = list_shards(kinesis, "events")
        stub.assert_no_pending_responses()
    assert sorted(shards) == ["s-0", "s-1", "s-2", "s-3"] and shards["s-3"].parents == ("s-0",)
