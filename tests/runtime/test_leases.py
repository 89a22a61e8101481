"""Lease writes are conditional: one owner at a time, takeover only after expiry, and a checkpoint
only from the current owner."""

from __future__ import annotations

import pytest

from agentfleet.ingest.leases import SHARD_END, LeaseTable
from tests.runtime.support import Fleet

pytestmark = pytest.mark.integration


def test_ownership_takeover_and_checkpoints_are_conditional(fleet: Fleet) -> None:
    now = [1_000.0]
    ddb = fleet.clients["dynamodb"]
    table = LeaseTable(ddb, fleet.names.leases_table, lease_seconds=10, clock=lambda: now[0])
    table.ensure("shard-a", ())
    table.ensure("shard-a", ())  # a second worker creating the same row changes nothing
    (lease,), _ = table.scan()
    mine = table.take(lease, "A")
    assert mine is not None and mine.owner == "A"
    assert table.take(lease, "B") is None, "a stale view cannot take it"
    (fresh,), _ = table.scan()
    assert table.take(fresh, "B") is None, "not before it expires"
    assert table.checkpoint("shard-a", "A", "17") and table.renew("shard-a", "A")

    now[0] += 11  # A stopped renewing
    (expired,), _ = table.scan()
    taken = table.take(expired, "B")
    assert taken is not None and (taken.owner, taken.checkpoint) == ("B", "17"), "B resumes after A's checkpoint"
    assert not table.checkpoint("shard-a", "A", "25"), "A's late checkpoint is refused"
    assert not table.renew("shard-a", "A") and not table.release("shard-a", "A")
    assert table.checkpoint("shard-a", "B", SHARD_END) and table.release("shard-a", "B")
    (done,), _ = table.scan()
    assert (done.owner, done.finished, done.checkpoint) == ("", True, SHARD_END)


def test_heartbeats_make_a_worker_without_leases_visible(fleet: Fleet) -> None:
    table = LeaseTable(fleet.clients["dynamodb"], fleet.names.leases_table, lease_seconds=10)
    table.heartbeat("idle-worker")
    leases, workers = table.scan()
    assert leases == [] and workers["idle-worker"] > table.now_ms()
    table.forget_worker("idle-worker", expires_ms=1)  # a stale view does not delete a live row
    assert "idle-worker" in table.scan()[1]
    table.forget_worker("idle-worker")
    assert table.scan()[1] == {}
