"""Resharding: after a split, the children are read only once the parent is finished."""

from __future__ import annotations

from typing import Any

import pytest

from agentfleet.entrypoints.worker import Worker
from agentfleet.ingest.leases import SHARD_END
from tests.runtime.fakes import ScriptedBackend
from tests.runtime.support import Fleet, event, wait_for_count, wait_until

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("fleet", [1], indirect=True)
def test_split_shard_parent_finishes_before_children_are_leased(fleet: Fleet, running: Any) -> None:
    kinesis = fleet.clients["kinesis"]
    fleet.put([event("cloudwatch.alarm", f"before-{i}", {"want": "notify"}) for i in range(3)])
    parent = kinesis.list_shards(StreamName=fleet.names.stream)["Shards"][0]["ShardId"]
    kinesis.split_shard(StreamName=fleet.names.stream, ShardToSplit=parent, NewStartingHashKey=str(2**127))
    # The emulator keeps routing writes to the closed parent (real Kinesis routes them to the
    # children), so here every record is in the parent; what this checks is the lease order.
    fleet.put([event("cloudwatch.alarm", f"after-{i}", {"want": "notify"}) for i in range(3)])
    shards = kinesis.list_shards(StreamName=fleet.names.stream)["Shards"]
    children = {s["ShardId"] for s in shards if s.get("ParentShardId") == parent}
    assert len(children) == 2

    handle = running(Worker(fleet.settings(), ScriptedBackend()))
    wait_for_count(fleet.decisions, 6, 60, "decisions")
    wait_until(lambda: all(lease.get("owner") for lease in fleet.leases() if lease["shard_id"] in children),
               20, "children leased")
    leases = {lease["shard_id"]: lease for lease in fleet.leases()}
    assert (leases[parent]["checkpoint"], leases[parent]["finished"]) == (SHARD_END, True)
    assert "owner" not in leases[parent], "a finished shard is released"
    for child in children:
        assert leases[child]["parents"] == [parent]
        assert leases[child]["owner_since_ms"] >= leases[parent]["finished_ms"], "child leased only after parent"
    assert handle.stop() == 0
