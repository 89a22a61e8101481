"""Shard leases in the leases table: who reads which shard, until when, and from where.

Every write is conditional, so two workers never both believe they own a shard:
take (only if the counter is unchanged since the taker read it), renew/checkpoint/release
(only while still the owner). `counter` changes on every ownership write and every renew.
Expiry never compares clocks across hosts: like the Kinesis Client Library, a taker notes on
its own monotonic clock when it last saw a lease's counter change and calls the lease expired
once it has stood still for a lease duration (see ingest/expiry.py; KCL:
awslabs/amazon-kinesis-client, leases/dynamodb/DynamoDBLeaseTaker.java updateAllLeases and
leases/Lease.java isExpired, commit 024eb86). `lease_expires_ms` is still written, on the
writer's own clock, for people and the local watch view only; no decision reads it.
Rows named "worker#<id>" are worker heartbeats whose counter rises on each beat (so a worker
that owns nothing yet still counts when others compute their fair share, judged the same way);
"lock#..." rows belong to boot and are skipped.
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
# One attempt: these calls run on the worker's main loop, whose next tick (or turn) is the retry;
# a backoff sleep here would hold up renewals, reading and a stop while DynamoDB throttles.
_POLICY = retry.RetryPolicy(attempts=1)


@dataclass(frozen=True)
class Lease:
    shard_id: str
    owner: str = ""
    counter: int = 0
    checkpoint: str = ""  # "" = never checkpointed (start at TRIM_HORIZON); SHARD_END = finished
    parents: tuple[str, ...] = ()

    @property
    def finished(self) -> bool:
        return self.checkpoint == SHARD_END

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Lease:
        plain = ddb.from_item(item)
        return cls(str(plain[LEASES_PK]), str(plain.get("owner", "")), int(plain.get("counter", 0)),
                   str(plain.get("checkpoint", "")), tuple(plain.get("parents", ())))


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
        """All shard leases, and worker heartbeats as {worker id: heartbeat counter}."""
        leases, workers = [], {}
        kwargs: dict[str, Any] = {"TableName": self.table, "ConsistentRead": True}
        while True:
            page = self._call("lease scan", lambda: self._ddb.scan(**kwargs))
            for item in page.get("Items", []):
                key = item[LEASES_PK]["S"]
                if key.startswith(WORKER_PREFIX):
                    workers[key[len(WORKER_PREFIX):]] = int(item.get("counter", {"N": "0"})["N"])
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
        """Acquire a lease the caller judged free or expired (on its own clock) as seen in `lease`;
        None if its counter moved since (the owner renewed, or another worker took it)."""
        now = self.now_ms()
        attrs = self._conditional(
            "lease take", Key={LEASES_PK: {"S": lease.shard_id}},
            UpdateExpression="SET #o = :me, lease_expires_ms = :exp, #c = #c + :one, owner_since_ms = :now",
            ConditionExpression="#c = :seen",
            ExpressionAttributeNames={"#o": "owner", "#c": "counter"},
            ExpressionAttributeValues={":me": {"S": me}, ":exp": {"N": str(now + self.lease_ms)}, ":one": {"N": "1"},
                                       ":seen": {"N": str(lease.counter)}, ":now": {"N": str(now)}})
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

    def delete_gone(self, shard_id: str, counter: int) -> None:
        """Forget the lease of a shard a complete ListShards no longer lists (past retention), as read
        (`counter`): whatever it still held has aged out of the stream, so its children need it no more."""
        try:
            self._call("lease delete", lambda: self._ddb.delete_item(
                TableName=self.table, Key={LEASES_PK: {"S": shard_id}},
                ConditionExpression="#c = :seen", ExpressionAttributeNames={"#c": "counter"},
                ExpressionAttributeValues={":seen": {"N": str(counter)}}))
        except Exception as exc:
            if not ddb.is_conditional_failure(exc):
                raise

    def heartbeat(self, me: str) -> None:
        """Raise this worker's heartbeat counter; others see it move on their own clocks."""
        self._call("worker heartbeat", lambda: self._ddb.update_item(
            TableName=self.table, Key={LEASES_PK: {"S": WORKER_PREFIX + me}},
            UpdateExpression="SET lease_expires_ms = :exp ADD #c :one", ExpressionAttributeNames={"#c": "counter"},
            ExpressionAttributeValues={":exp": {"N": str(self.now_ms() + self.lease_ms)}, ":one": {"N": "1"}}))

    def forget_worker(self, worker_id: str, counter: int | None = None) -> None:
        """Delete a heartbeat row: our own on shutdown, or (with `counter`, as read) a long-dead worker's."""
        kwargs: dict[str, Any] = {"TableName": self.table, "Key": {LEASES_PK: {"S": WORKER_PREFIX + worker_id}}}
        if counter is not None:
            kwargs.update(ConditionExpression="#c = :seen", ExpressionAttributeNames={"#c": "counter"},
                          ExpressionAttributeValues={":seen": {"N": str(counter)}})
        try:
            self._call("worker leave", lambda: self._ddb.delete_item(**kwargs))
        except Exception as exc:
            if not ddb.is_conditional_failure(exc):
                raise
