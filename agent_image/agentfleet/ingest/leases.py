"""Shard leases in the leases table: who reads which shard, until when, and from where.

Every write is conditional, so two workers never both believe they own a shard:
take (only if unchanged since read and free or expired), renew/checkpoint/release (only
while still the owner). Expiry is wall-clock milliseconds (EC2 clocks are NTP-synced);
`counter` changes on every ownership write so a take cannot race a renew.
Rows named "worker#<id>" are worker heartbeats (so a worker that owns nothing yet still
counts when others compute their fair share); "lock#..." rows belong to boot and are skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agentfleet.ops import ddb, logs, retry
from agentfleet.spec.tables import LEASES_PK

log = logs.get(__name__)
SHARD_END = "SHARD_END"
WORKER_PREFIX = "worker#"
LOCK_PREFIX = "lock#"
# Few attempts: a lease write that keeps failing is better retried on the next tick than blocking the loop.
_POLICY = retry.RetryPolicy(attempts=4)


@dataclass(frozen=True)
class Lease:
    shard_id: str
    owner: str = ""
    expires_ms: int = 0
    counter: int = 0
    checkpoint: str = ""  # "" = never checkpointed (start at TRIM_HORIZON); SHARD_END = finished
    parents: tuple[str, ...] = ()

    @property
    def finished(self) -> bool:
        return self.checkpoint == SHARD_END

    def held(self, now_ms: int) -> bool:
        return bool(self.owner) and self.expires_ms > now_ms

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Lease:
        plain = ddb.from_item(item)
        return cls(str(plain[LEASES_PK]), str(plain.get("owner", "")), int(plain.get("lease_expires_ms", 0)),
                   int(plain.get("counter", 0)), str(plain.get("checkpoint", "")), tuple(plain.get("parents", ())))


class LeaseTable:
    """Conditional reads and writes of lease rows. Methods that may lose a race return False/None, never raise."""

    def __init__(self, dynamodb: Any, table: str, *, lease_seconds: float, clock: Callable[[], float] = time.time,
                 policy: retry.RetryPolicy = _POLICY,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._ddb, self.table, self.lease_ms = dynamodb, table, int(lease_seconds * 1000)
        self._clock, self._policy, self._sleep = clock, policy, sleep

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        return retry.call(fn, policy=self._policy, what=what, sleep=self._sleep)

    def _conditional(self, what: str, **kwargs: Any) -> dict[str, Any] | None:
        """An UpdateItem that returns the new item, or None when its condition failed."""
        try:
            response = self._call(what, lambda: self._ddb.update_item(
                TableName=self.table, ReturnValues="ALL_NEW", **kwargs))
            return dict(response.get("Attributes", {}))
        except Exception as exc:
            if ddb.is_conditional_failure(exc):
                return None
            raise

    def scan(self) -> tuple[list[Lease], dict[str, int]]:
        """All shard leases, and worker heartbeats as {worker id: expires_ms}."""
        leases, workers = [], {}
        kwargs: dict[str, Any] = {"TableName": self.table, "ConsistentRead": True}
        while True:
            page = self._call("lease scan", lambda: self._ddb.scan(**kwargs))
            for item in page.get("Items", []):
                key = item[LEASES_PK]["S"]
                if key.startswith(WORKER_PREFIX):
                    workers[key[len(WORKER_PREFIX):]] = int(item.get("lease_expires_ms", {"N": "0"})["N"])
                elif not key.startswith(LOCK_PREFIX):
                    leases.append(Lease.from_item(item))
            if "LastEvaluatedKey" not in page:
                return leases, workers
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def ensure(self, shard_id: str, parents: tuple[str, ...]) -> None:
        """Create the lease row for a newly seen shard (no-op if any worker already did)."""
        item = ddb.to_item({LEASES_PK: shard_id, "counter": 0, "lease_expires_ms": 0, "parents": list(parents),
                            "finished": False, "created_ms": self.now_ms()})
        try:
            self._call("lease create", lambda: self._ddb.put_item(
                TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(#k)",
                ExpressionAttributeNames={"#k": LEASES_PK}))
            log.info("lease created", extra={"shard_id": shard_id, "parents": list(parents)})
        except Exception as exc:
            if not ddb.is_conditional_failure(exc):
                raise

    def take(self, lease: Lease, me: str) -> Lease | None:
        """Acquire a free or expired lease as seen in `lease`; None if anything changed since."""
        now = self.now_ms()
        attrs = self._conditional(
            "lease take", Key={LEASES_PK: {"S": lease.shard_id}},
            UpdateExpression="SET #o = :me, lease_expires_ms = :exp, #c = #c + :one, owner_since_ms = :now",
            ConditionExpression="#c = :seen AND (attribute_not_exists(#o) OR #o = :none OR lease_expires_ms < :now)",
            ExpressionAttributeNames={"#o": "owner", "#c": "counter"},
            ExpressionAttributeValues={":me": {"S": me}, ":exp": {"N": str(now + self.lease_ms)}, ":one": {"N": "1"},
                                       ":seen": {"N": str(lease.counter)}, ":now": {"N": str(now)},
                                       ":none": {"S": ""}})
        if attrs is None:
            return None
        taken = Lease.from_item(attrs)
        log.info("lease taken", extra={"shard_id": lease.shard_id, "previous_owner": lease.owner or None,
                                       "checkpoint": taken.checkpoint or None})
        return taken

    def _owned(self, what: str, shard_id: str, me: str, update: str, values: dict[str, Any],
               names: dict[str, str] | None = None) -> bool:
        return self._conditional(
            what, Key={LEASES_PK: {"S": shard_id}}, UpdateExpression=update, ConditionExpression="#o = :me",
            ExpressionAttributeNames={"#o": "owner", **(names or {})},
            ExpressionAttributeValues={":me": {"S": me}, **values}) is not None

    def renew(self, shard_id: str, me: str) -> bool:
        expires = self.now_ms() + self.lease_ms
        return self._owned("lease renew", shard_id, me, "SET lease_expires_ms = :exp, #c = #c + :one",
                           {":exp": {"N": str(expires)}, ":one": {"N": "1"}}, {"#c": "counter"})

    def checkpoint(self, shard_id: str, me: str, sequence_number: str) -> bool:
        """Record that every record up to `sequence_number` (or SHARD_END) is handled; only while owner."""
        finished = sequence_number == SHARD_END
        update = "SET checkpoint = :cp, finished = :fin" + (", finished_ms = :now" if finished else "")
        values = {":cp": {"S": sequence_number}, ":fin": {"BOOL": finished}}
        if finished:
            values[":now"] = {"N": str(self.now_ms())}
        return self._owned("checkpoint", shard_id, me, update, values)

    def release(self, shard_id: str, me: str) -> bool:
        return self._owned("lease release", shard_id, me, "REMOVE #o SET lease_expires_ms = :zero, #c = #c + :one",
                           {":zero": {"N": "0"}, ":one": {"N": "1"}}, {"#c": "counter"})

    def delete_finished(self, shard_id: str) -> None:
        """Forget a finished shard that has left the stream (past retention); children no longer need it."""
        try:
            self._call("lease delete", lambda: self._ddb.delete_item(
                TableName=self.table, Key={LEASES_PK: {"S": shard_id}},
                ConditionExpression="finished = :t", ExpressionAttributeValues={":t": {"BOOL": True}}))
        except Exception as exc:
            if not ddb.is_conditional_failure(exc):
                raise

    def heartbeat(self, me: str) -> None:
        item = ddb.to_item({LEASES_PK: WORKER_PREFIX + me, "lease_expires_ms": self.now_ms() + self.lease_ms})
        self._call("worker heartbeat", lambda: self._ddb.put_item(TableName=self.table, Item=item))

    def forget_worker(self, worker_id: str, expires_ms: int | None = None) -> None:
        """Delete a heartbeat row: our own on shutdown, or (with `expires_ms`, as read) a long-dead worker's."""
        kwargs: dict[str, Any] = {"TableName": self.table, "Key": {LEASES_PK: {"S": WORKER_PREFIX + worker_id}}}
        if expires_ms is not None:
            kwargs.update(ConditionExpression="lease_expires_ms = :seen",
                          ExpressionAttributeValues={":seen": {"N": str(expires_ms)}})
        try:
            self._call("worker leave", lambda: self._ddb.delete_item(**kwargs))
        except Exception as exc:
            if not ddb.is_conditional_failure(exc):
                raise
