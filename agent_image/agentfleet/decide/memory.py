"""Agent memory per agent and subject: recent observations and the agent's own past decisions.

One item per (agent, subject) in the memory table, with bounded lists (`memory_max_items`
each, and a byte budget under DynamoDB's 400 KB item limit) and a TTL (`expires_at`) so
quiet subjects age out. Updates are optimistic: conditional on the version read, re-read
and merged on conflict; a decision already present (a replay) is not appended twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agentfleet.ops import ddb, logs, retry
from agentfleet.spec.tables import MEMORY_PK, TTL_ATTRIBUTE, memory_key

log = logs.get(__name__)
MAX_ITEM_JSON_BYTES = 300_000  # leaves room under the 400 KB item limit for keys and attributes
_CONFLICT_ATTEMPTS = 8


@dataclass(frozen=True)
class Memory:
    agent: str
    subject: str
    observations: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    version: int = 0  # 0 = no item yet


def _bounded(items: list[dict[str, Any]], max_items: int) -> list[dict[str, Any]]:
    return items[-max_items:] if max_items > 0 else []


class MemoryStore:
    """Load and update memory items in the memory table."""

    def __init__(self, dynamodb: Any, table: str, *, max_items: int, ttl_days: int,
                 clock: Callable[[], float] = time.time, policy: retry.RetryPolicy = retry.DEFAULT_POLICY,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._ddb, self.table, self.max_items, self.ttl_days = dynamodb, table, max_items, ttl_days
        self._clock, self._policy, self._sleep = clock, policy, sleep

    def load(self, agent: str, subject: str) -> Memory:
        response = retry.call(lambda: self._ddb.get_item(
            TableName=self.table, Key={MEMORY_PK: {"S": memory_key(agent, subject)}}, ConsistentRead=True),
            policy=self._policy, what="memory get", sleep=self._sleep)
        item = response.get("Item")
        if not item:
            return Memory(agent, subject)
        plain = ddb.from_item(item)
        expires = plain.get(TTL_ATTRIBUTE, 0)
        if expires and expires < self._clock():
            # DynamoDB deletes expired items lazily (up to days later); treat them as gone now.
            return Memory(agent, subject, version=int(plain.get("version", 0)))
        return Memory(agent, subject, json.loads(plain.get("observations", "[]")),
                      json.loads(plain.get("decisions", "[]")), int(plain.get("version", 0)))

    def record(self, base: Memory, observation: Mapping[str, Any], decision: Mapping[str, Any]) -> Memory:
        """Append one observation and one decision to `base` (re-read on conflict); returns the stored memory."""
        current = base
        for _ in range(_CONFLICT_ATTEMPTS):
            if any(d.get("decision_id") == decision.get("decision_id") for d in current.decisions):
                return current  # a replay of a decision this memory already holds
            updated = self._merge(current, observation, decision)
            try:
                self._put(updated, current.version)
                return updated
            except Exception as exc:
                if not ddb.is_conditional_failure(exc):
                    raise
                log.info("memory update conflict, re-reading", extra={"agent": base.agent, "subject": base.subject})
                current = self.load(base.agent, base.subject)
        raise RuntimeError(f"memory for {base.agent}/{base.subject} kept changing under {_CONFLICT_ATTEMPTS} updates")

    def _merge(self, current: Memory, observation: Mapping[str, Any], decision: Mapping[str, Any]) -> Memory:
        observations = _bounded([*current.observations, dict(observation)], self.max_items)
        decisions = _bounded([*current.decisions, dict(decision)], self.max_items)
        # Oldest observations go first when over the byte budget (they are the largest: payloads).
        # Each item is measured once: json.dumps of a list is its items joined by ", " in brackets.
        obs_sizes = [len(json.dumps(o)) for o in observations]
        dec_sizes = [len(json.dumps(d)) for d in decisions]
        while observations and _listed(obs_sizes) + _listed(dec_sizes) > MAX_ITEM_JSON_BYTES:
            observations.pop(0)
            obs_sizes.pop(0)
        while decisions and _listed(dec_sizes) > MAX_ITEM_JSON_BYTES:
            decisions.pop(0)
            dec_sizes.pop(0)
        return Memory(current.agent, current.subject, observations, decisions, current.version + 1)

    def _put(self, memory: Memory, expected_version: int) -> None:
        now = self._clock()
        item = ddb.to_item({
            MEMORY_PK: memory_key(memory.agent, memory.subject), "agent": memory.agent, "subject": memory.subject,
            "observations": json.dumps(memory.observations), "decisions": json.dumps(memory.decisions),
            "version": memory.version, "updated_at": int(now), TTL_ATTRIBUTE: int(now + self.ttl_days * 86400),
        })
        if expected_version == 0:
            condition, values = "attribute_not_exists(#pk) OR version = :v", {":v": {"N": "0"}}
        else:
            condition, values = "attribute_exists(#pk) AND version = :v", {":v": {"N": str(expected_version)}}
        retry.call(lambda: self._ddb.put_item(
            TableName=self.table, Item=item, ConditionExpression=condition,
            ExpressionAttributeNames={"#pk": MEMORY_PK}, ExpressionAttributeValues=values),
            policy=self._policy, what="memory put", sleep=self._sleep)


def _listed(sizes: list[int]) -> int:
    """len(json.dumps(items)) from the items' own serialized lengths."""
    return sum(sizes) + 2 * max(len(sizes) - 1, 0) + 2
