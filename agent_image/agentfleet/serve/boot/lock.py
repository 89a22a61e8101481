"""A compile lock in the leases table: one instance compiles a cache key while the others wait.

The lock is an item `lock#<key>` with an owner and an expiry (epoch seconds). Taking it is a
conditional put that succeeds when no item exists, the item has expired (its holder died),
or we already hold it. The holder renews the expiry from a heartbeat thread while it compiles
(a compile can take an hour), so a live holder keeps it and a dead one loses it within one TTL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from agentfleet.ops import logs
from agentfleet.spec import tables

log = logs.get(__name__)

_CONDITION_FAILED = "ConditionalCheckFailedException"


def lock_pk(key: str) -> str:
    return f"lock#{key}"


class LockLost(RuntimeError):
    """Another owner took the lock over (ours expired); our compile result must not be trusted blindly."""


class CompileLock:
    """A DynamoDB lease on one cache key; `clock` returns epoch seconds (injectable for tests)."""

    def __init__(
        self,
        dynamodb_client: Any,
        table: str,
        key: str,
        owner: str,
        *,
        ttl_seconds: int = 300,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not table:
            raise ValueError("the compile lock needs the leases table name (settings.leases_table)")
        if ttl_seconds < 3:
            raise ValueError(f"lock ttl_seconds must be >= 3, got {ttl_seconds}")
        self.ddb, self.table, self.key, self.owner = dynamodb_client, table, key, owner
        self.ttl, self._clock = ttl_seconds, clock
        self._pk = {tables.LEASES_PK: {"S": lock_pk(key)}}

    def _is_condition_failure(self, exc: Exception) -> bool:
        response = getattr(exc, "response", None) or {}
        return bool(response.get("Error", {}).get("Code") == _CONDITION_FAILED)

    def acquire(self) -> bool:
        """Take the lock if it is free, expired or already ours; False if a live holder has it."""
        now = int(self._clock())
        try:
            self.ddb.put_item(
                TableName=self.table,
                Item={**self._pk, "owner": {"S": self.owner},
                      tables.TTL_ATTRIBUTE: {"N": str(now + self.ttl)}, "taken_at": {"N": str(now)}},
                ConditionExpression="attribute_not_exists(#pk) OR #exp < :now OR #owner = :me",
                ExpressionAttributeNames={"#pk": tables.LEASES_PK, "#exp": tables.TTL_ATTRIBUTE, "#owner": "owner"},
                ExpressionAttributeValues={":now": {"N": str(now)}, ":me": {"S": self.owner}},
            )
        except Exception as exc:
            if self._is_condition_failure(exc):
                return False
            raise
        log.info("compile lock taken", extra={"cache_key": self.key, "owner": self.owner, "ttl_s": self.ttl})
        return True

    def holder(self) -> tuple[str, float] | None:
        """(owner, expires_at) of the current item, or None."""
        item = self.ddb.get_item(TableName=self.table, Key=self._pk, ConsistentRead=True).get("Item")
        if not item:
            return None
        return item["owner"]["S"], float(item[tables.TTL_ATTRIBUTE]["N"])

    def renew(self) -> None:
        """Push our expiry out by one TTL; LockLost if someone else holds it now."""
        now = int(self._clock())
        try:
            self.ddb.update_item(
                TableName=self.table, Key=self._pk,
                UpdateExpression="SET #exp = :exp",
                ConditionExpression="#owner = :me",
                ExpressionAttributeNames={"#exp": tables.TTL_ATTRIBUTE, "#owner": "owner"},
                ExpressionAttributeValues={":exp": {"N": str(now + self.ttl)}, ":me": {"S": self.owner}},
            )
        except Exception as exc:
            if self._is_condition_failure(exc):
                raise LockLost(f"compile lock for {self.key} is no longer held by {self.owner}") from None
            raise

    def release(self) -> None:
        """Delete the item if it is still ours (a taken-over lock is left to its new owner)."""
        try:
            self.ddb.delete_item(
                TableName=self.table, Key=self._pk, ConditionExpression="#owner = :me",
                ExpressionAttributeNames={"#owner": "owner"}, ExpressionAttributeValues={":me": {"S": self.owner}},
            )
        except Exception as exc:
            if not self._is_condition_failure(exc):
                raise
            log.warning("compile lock was taken over before release", extra={"cache_key": self.key})
            return
        log.info("compile lock released", extra={"cache_key": self.key, "owner": self.owner})

    @contextmanager
    def heartbeat(self, on_beat: Callable[[], None] | None = None) -> Iterator[threading.Event]:
        """Renew every ttl/3 seconds while the block runs (calling `on_beat`, e.g. a progress log);
        the yielded event is set if the lock was lost."""
        stop, lost = threading.Event(), threading.Event()

        def beat() -> None:
            while not stop.wait(self.ttl / 3):
                if on_beat is not None:
                    on_beat()
                try:
                    self.renew()
                except LockLost:
                    log.error("compile lock lost while compiling", extra={"cache_key": self.key})
                    lost.set()
                    return
                except Exception:  # a transient DynamoDB error must not kill the compile; retry next beat
                    log.warning("compile lock renewal failed", extra={"cache_key": self.key}, exc_info=True)

        thread = threading.Thread(target=beat, name=f"lock-heartbeat-{self.key[:8]}", daemon=True)
        thread.start()
        try:
            yield lost
        finally:
            stop.set()
            thread.join(timeout=10)
