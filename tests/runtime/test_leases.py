"""Lease writes are conditional: one owner at a time, a take only from an up-to-date view (the counter
it saw), and a checkpoint only from the current owner. When a lease counts as expired is the taker's
judgment on its own clock (tests/runtime/test_lease_clocks.py)."""

from __future__ import annotations

import pytest

from agentfleet.ingest.leases import SHARD_END, LeaseTable
from tests.runtime.support import Fleet

pytestmark = pytest.mark.integration


def test_ownership_takeover_and_checkpoints_are_conditional(fleet: Fleet) -> None:
    ddb = fleet.clients["dynamodb"]
    table = LeaseTable(ddb, fleet.names.leases_table, lease_seconds=10)
    table.ensure("shard-a", ())
    table.ensure("shard-a", ())  # a second worker creating the same row changes nothing
    (lease,), _ = table.scan()
    mine = table.take(lease, "A")
    assert mine is not None and mine.owner == "A"
    assert table.take(lease, "B") is None, "a stale view cannot take it"
    assert table.checkpoint("shard-a", "A", "17") and table.renew("shard-a", "A")
    assert table.take(mine, "B") is None, "A's renew moved the counter past what B saw"

    (expired,), _ = table.scan()  # B's view; B's clock then sees the counter stand still
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
    table.heartbeat("idle-worker")
    leases, workers = table.scan()
    assert leases == [] and workers["idle-worker"] == 2, "each beat raises the counter"
    table.forget_worker("idle-worker", counter=1)  # a stale view does not delete a live row
    assert "idle-worker" in table.scan()[1]
    table.forget_worker("idle-worker")
    assert table.scan()[1] == {}
