"""Poison records never stall a shard, and their bytes are kept (issue 12, runtime items 3 and 4).

Each kind of permanent failure becomes a recorded, explained outcome with the record's bytes in
S3, the checkpoint moves past it, and `python -m agentfleet.entrypoints.requeue` puts chosen
ones back on the stream under their original partition key."""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

import pytest
from botocore.exceptions import ClientError

from agentfleet.entrypoints.requeue import requeue
from agentfleet.entrypoints.worker import Clients, Worker
from agentfleet.ops.aws import client
from agentfleet.serve.model.base import GenerationRequest
from agentfleet.spec.tables import MEMORY_PK
from tests.runtime.fakes import ScriptedBackend, decision_text
from tests.runtime.support import Fleet, event, wait_until

pytestmark = pytest.mark.integration
NUM = re.compile(r'"num": "([^"]+)"')
# Numbers DynamoDB cannot store, as a model might write them in params (JSON number literals).
NUMBERS = {"overflow": "1e200", "underflow": "1e-200", "39 digits": "123456789012345678901234567890123456789",
           "infinity": "1e400"}


def script(request: GenerationRequest) -> str:
    """notify with params {"n": <the event's num literal>}, or a huge rationale for the "huge" event."""
    found = NUM.findall(request.prompt.split("### New events", 1)[-1])
    if found and found[-1] == "huge":
        return decision_text("notify", "HUGE-ITEM")
    if found:
        return json.dumps({"action": "notify", "params": {"n": "PLACEHOLDER"}, "rationale": "r",
                           "confidence": 0.5}).replace('"PLACEHOLDER"', found[-1])
    return decision_text("notify")


class Faults:
    """The real DynamoDB client, except: an audit item carrying "HUGE-ITEM" is refused as DynamoDB
    refuses an item over 400 KB, and the memory of subject "always-throttled" is always throttled."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def put_item(self, **kwargs: Any) -> Any:
        if "HUGE-ITEM" in json.dumps(kwargs.get("Item", {})):
            raise ClientError({"Error": {"Code": "ValidationException",
                                         "Message": "Item size has exceeded the maximum allowed size"},
                               "ResponseMetadata": {"HTTPStatusCode": 400}}, "PutItem")
        return self._real.put_item(**kwargs)

    def get_item(self, **kwargs: Any) -> Any:
        if kwargs["Key"].get(MEMORY_PK, {}).get("S", "").endswith("#always-throttled"):
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
                               "ResponseMetadata": {"HTTPStatusCode": 400}}, "GetItem")
        return self._real.get_item(**kwargs)


@pytest.mark.parametrize("fleet", [1], indirect=True)
def test_each_poison_kind_is_recorded_kept_and_passed(aws_env: Any, fleet: Fleet, running: Any) -> None:
    s3 = client("s3")  # the worker's identity: it may only put objects under the quarantine prefix
    bucket = fleet.names.quarantine_bucket
    admin = aws_env.emulator.admin  # the operator who reads quarantined bytes and requeues them

    def operator(name: str) -> Any:
        return client(name, aws_access_key_id=admin.access_key_id, aws_secret_access_key=admin.secret_access_key)
    events = {kind: event("cloudwatch.alarm", f"num-{i}", {"num": literal})
              for i, (kind, literal) in enumerate(NUMBERS.items())}
    events["item over 400 KB"] = event("cloudwatch.alarm", "huge", {"num": "huge"})
    events["attempts capped"] = event("cloudwatch.alarm", "always-throttled")
    events["key over 2048 bytes"] = event("cloudwatch.alarm", "\u20ac" * 400)  # 1200 bytes; memory key "<agent>#..."
    events["good"] = event("cloudwatch.alarm", "fine")  # last on the shard: the checkpoint must reach it
    raw = {kind: json.dumps(doc).encode() for kind, doc in events.items()}
    positions = {kind: fleet.put([data], partition_key=f"pk-{i}")[0] for i, (kind, data) in enumerate(raw.items())}

    clients = Clients(fleet.clients["kinesis"], Faults(fleet.clients["dynamodb"]), fleet.clients["stepfunctions"],
                      s3=s3)
    worker = Worker(fleet.settings(quarantine_bucket=bucket), ScriptedBackend(script),
                    clients=clients, sleep=lambda _: None)
    handle = running(worker)
    by_subject = wait_until(lambda: _settled(fleet, len(events) - 1), 90, "every record accounted for")
    assert handle.stop() == 0

    for kind in [*NUMBERS, "item over 400 KB", "attempts capped"]:
        decision = by_subject[events[kind]["subject"]]
        assert decision["outcome"] == "failed", (kind, decision)
        expected = {"item over 400 KB": "ValidationException: Item size has exceeded",
                    "attempts capped": "gave up after 5 attempts: ThrottlingException"}.get(kind, "unstorable_number")
        assert expected in decision["reason"], (kind, decision["reason"])
        assert _payload(operator("s3"), decision["payload_s3"]) == raw[kind], f"{kind}: bytes kept whole"
        assert decision["payload_s3"].startswith(f"s3://{bucket}/quarantine/")
    assert by_subject["fine"]["outcome"] == "acted"
    (quarantined,) = fleet.quarantined()
    assert (quarantined["reason"], quarantined["partition_key"]) == ("oversize", "pk-6")
    assert _payload(operator("s3"), quarantined["payload_s3"]) == raw["key over 2048 bytes"]
    (lease,) = fleet.leases()
    assert lease["checkpoint"] == positions["good"]["sequence_number"], "the checkpoint moved past every poison"

    # Requeue: a dry run changes nothing; --execute puts the chosen record back with its partition key.
    def run(**flags: Any) -> list[dict[str, Any]]:
        args = argparse.Namespace(id=[], reason="", since="", until="", execute=False, again=False)
        vars(args).update(flags)
        return requeue(worker.settings, operator, args)

    assert len(run()) == 7 and [r["id"] for r in run(reason="oversize")] == [quarantined["pk"]]
    (row,) = run(reason="Item size", execute=True)
    kinesis = fleet.clients["kinesis"]
    iterator = kinesis.get_shard_iterator(StreamName=fleet.names.stream, ShardId=row["shard_id"],
                                          ShardIteratorType="AT_SEQUENCE_NUMBER",
                                          StartingSequenceNumber=row["sequence_number"])["ShardIterator"]
    back = kinesis.get_records(ShardIterator=iterator, Limit=1)["Records"][0]
    assert (back["Data"], back["PartitionKey"]) == (raw["item over 400 KB"], "pk-4")
    assert run(reason="Item size") == [], "requeued once; --again to repeat"


def _settled(fleet: Fleet, decisions: int) -> dict[str, dict[str, Any]] | None:
    found = {d["subject"]: d for d in fleet.decisions()}
    return found if len(found) >= decisions and fleet.quarantined() else None


def _payload(s3: Any, uri: str) -> bytes:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
