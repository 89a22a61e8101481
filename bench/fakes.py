"""Instant in-process stand-ins for the model and the AWS clients, for the overhead benchmark.

They record calls in memory and answer at once, so what is timed is the runtime's own work.
Only what the worker path calls is implemented; anything else raises, so a runtime change that
starts calling something new shows up as an error, not as a silently cheaper benchmark.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from agentfleet.ingest.coordinator import Changes, ShardInfo
from agentfleet.ingest.leases import Lease
from agentfleet.serve.model.base import GenerationRequest, GenerationResult

_CLAUSE_EXISTS = re.compile(r"attribute_(exists|not_exists)\((#?\w+)\)")
_CLAUSE_EQUALS = re.compile(r"(#?\w+) = (:\w+)")
FIRST_SEQUENCE = 49_600_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000  # 56 digits, like Kinesis


def _check_names(names: dict[str, str] | None, *expressions: str) -> None:
    """DynamoDB rejects a request naming an attribute placeholder that no expression uses."""
    unused = sorted(n for n in names or {} if not any(n in e for e in expressions))
    if unused:
        raise ClientError({"Error": {"Code": "ValidationException", "Message":
                                     f"Value provided in ExpressionAttributeNames unused in expressions: keys: {unused}"},
                           "ResponseMetadata": {"HTTPStatusCode": 400}}, "PutItem")


def _failed(operation: str) -> ClientError:
    return ClientError({"Error": {"Code": "ConditionalCheckFailedException", "Message": "The conditional request failed"},
                        "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)


class FakeKinesis:
    """GetRecords over precomputed records, one list per shard; iterators are 'shard:index'."""

    class exceptions:  # lower case: boto3 clients expose their error classes as `client.exceptions.X`
        class ExpiredIteratorException(Exception):
            pass

    def __init__(self, shards: dict[str, list[bytes]]) -> None:
        at = datetime.now(UTC)
        self.records = {
            shard: [{"SequenceNumber": str(FIRST_SEQUENCE + i), "Data": data, "PartitionKey": "k",
                     "ApproximateArrivalTimestamp": at} for i, data in enumerate(datas)]
            for shard, datas in shards.items()
        }
        self.calls: Counter[str] = Counter()

    def get_shard_iterator(self, *, StreamName: str, ShardId: str, ShardIteratorType: str,
                           StartingSequenceNumber: str = "") -> dict[str, str]:
        self.calls["get_shard_iterator"] += 1
        start = 0 if ShardIteratorType == "TRIM_HORIZON" else int(StartingSequenceNumber) - FIRST_SEQUENCE + 1
        return {"ShardIterator": f"{ShardId}:{start}"}

    def get_records(self, *, ShardIterator: str, Limit: int) -> dict[str, Any]:
        self.calls["get_records"] += 1
        shard, _, index = ShardIterator.rpartition(":")
        start = int(index)
        page = self.records[shard][start:start + Limit]
        left = len(self.records[shard]) - start - len(page)
        return {"Records": page, "NextShardIterator": f"{shard}:{start + len(page)}",
                "MillisBehindLatest": 1000 if left else 0}


class FakeDynamoDB:
    """GetItem / PutItem (with the two condition forms the runtime uses) / UpdateItem.

    Items of tables in `keys_only` are remembered by key alone (the audit table: 100,000
    full items would cost gigabytes and are never read back on this path).
    """

    def __init__(self, keys_only: Sequence[str] = ()) -> None:
        self.tables: dict[str, dict[str, dict[str, Any]]] = {}
        self.keys_only = set(keys_only)
        self.calls: Counter[str] = Counter()

    @staticmethod
    def _key(key_or_item: dict[str, Any]) -> str:
        return json.dumps(next(iter(key_or_item.values())) if len(key_or_item) == 1 else key_or_item, sort_keys=True)

    def _holds(self, condition: str, item: dict[str, Any] | None, names: dict[str, str],
               values: dict[str, Any]) -> bool:
        """`a OR b AND c` as DynamoDB reads it (AND binds tighter); clauses: attribute_(not_)exists, =."""
        return any(all(self._clause(c.strip(), item, names, values) for c in either.split(" AND "))
                   for either in condition.split(" OR "))

    @staticmethod
    def _clause(clause: str, item: dict[str, Any] | None, names: dict[str, str], values: dict[str, Any]) -> bool:
        if match := _CLAUSE_EXISTS.fullmatch(clause):
            present = item is not None and names.get(match.group(2), match.group(2)) in item
            return present if match.group(1) == "exists" else not present
        if match := _CLAUSE_EQUALS.fullmatch(clause):
            attribute = names.get(match.group(1), match.group(1))
            return item is not None and item.get(attribute) == values[match.group(2)]
        raise NotImplementedError(f"condition clause {clause!r}")

    def get_item(self, *, TableName: str, Key: dict[str, Any], ConsistentRead: bool = False) -> dict[str, Any]:
        self.calls["get_item"] += 1
        item = self.tables.get(TableName, {}).get(self._key(Key))
        return {"Item": item} if item else {}

    def put_item(self, *, TableName: str, Item: dict[str, Any], ConditionExpression: str = "",
                 ExpressionAttributeNames: dict[str, str] | None = None,
                 ExpressionAttributeValues: dict[str, Any] | None = None) -> dict[str, Any]:
        self.calls["put_item"] += 1
        _check_names(ExpressionAttributeNames, ConditionExpression)
        table = self.tables.setdefault(TableName, {})
        first = next(iter(Item))
        pk = self._key({first: Item[first]})
        if ConditionExpression and not self._holds(ConditionExpression, table.get(pk),
                                                   ExpressionAttributeNames or {}, ExpressionAttributeValues or {}):
            raise _failed("PutItem")
        table[pk] = {first: Item[first]} if TableName in self.keys_only else Item
        return {}

    def update_item(self, *, TableName: str, Key: dict[str, Any], UpdateExpression: str,
                    ConditionExpression: str = "", ExpressionAttributeNames: dict[str, str] | None = None,
                    **kwargs: Any) -> dict[str, Any]:
        self.calls["update_item"] += 1
        _check_names(ExpressionAttributeNames, UpdateExpression, ConditionExpression)
        return {"Attributes": {}}


class FakeStepFunctions:
    """StartExecution that refuses a repeated name, as Step Functions does."""

    class exceptions:  # as boto3's `client.exceptions`
        class ExecutionAlreadyExists(Exception):
            pass

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.calls: Counter[str] = Counter()

    def start_execution(self, *, stateMachineArn: str, name: str, input: str) -> dict[str, str]:
        self.calls["start_execution"] += 1
        arn = stateMachineArn.replace(":stateMachine:", ":execution:", 1) + ":" + name
        if name in self.names:
            raise self.exceptions.ExecutionAlreadyExists(f"Execution Already Exists: '{arn}'")
        self.names.add(name)
        return {"executionArn": arn}


class InstantModel:
    """A ModelBackend that answers every request at once with a precomputed valid decision.

    The decision takes the agent's first allowed action other than "ignore", so every decision
    goes the whole way (guardrails, audit, action start, memory): the costliest path per event.
    Tokens are counted as characters / 4, the usual rule of thumb for BPE vocabularies.
    """

    name = "bench-instant"
    model_id = "bench/instant"

    def __init__(self, *, batch_size: int, max_prompt_tokens: int) -> None:
        self.batch_size, self.max_prompt_tokens = batch_size, max_prompt_tokens
        self._texts: dict[tuple[str, ...], str] = {}
        self.calls = 0

    def _text(self, allowed: tuple[str, ...]) -> str:
        text = self._texts.get(allowed)
        if text is None:
            action = next((a for a in allowed if a != "ignore"), allowed[0])
            text = json.dumps({"action": action, "params": {"message": "build failed on main twice"},
                               "rationale": "a repeated failure on the main branch needs a human", "confidence": 0.8})
            self._texts[allowed] = text
        return text

    def count_tokens(self, text: str) -> int:
        return len(text) // 4 + 1

    def generate(self, requests: Sequence[GenerationRequest]) -> GenerationResult:
        self.calls += 1
        texts = [self._text(r.allowed_actions) for r in requests]
        return GenerationResult(texts, [self.count_tokens(r.prompt) for r in requests], [40] * len(requests), 0.01)

    def close(self) -> None:
        pass


@dataclass
class HeldLeases:
    """Stands in for the LeaseCoordinator: this worker holds every shard for the whole run.

    Lease renewal and balancing run every lease_seconds/3 in the worker, off the per-record path;
    checkpoints are counted.
    """

    shard_ids: Sequence[str]
    held: dict[str, Lease] = field(default_factory=dict)
    shards: dict[str, ShardInfo] = field(default_factory=dict)
    checkpoints: int = 0

    def __post_init__(self) -> None:
        self.held = {s: Lease(s, owner="bench") for s in self.shard_ids}
        self.shards = {s: ShardInfo(s, (), None) for s in self.shard_ids}

    def acquired(self) -> Changes:
        return Changes(acquired=list(self.held.values()))

    def valid(self, shard_id: str) -> bool:
        return shard_id in self.held

    def due(self) -> bool:
        return False

    def tick(self, *, taking: bool) -> Changes:
        return Changes()

    def checkpoint(self, shard_id: str, sequence_number: str) -> bool:
        self.checkpoints += 1
        return shard_id in self.held

    def release(self, shard_id: str) -> None:
        self.held.pop(shard_id, None)

    def release_all(self) -> None:
        self.held.clear()
