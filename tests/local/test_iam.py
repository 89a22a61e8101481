"""The emulator really enforces IAM, and a worker under the synthesized instance-role policy can do its job.

One IAM-enforced emulator (the session's `iam_emulator`); each test makes its own resources and users.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from agentfleet.local import iam
from agentfleet.local.emulator import REGION, Emulator
from agentfleet.local.resources import ResourceNames, Resources, create_resources

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def role(app_assembly: Path) -> tuple[dict[str, Any], dict[str, dict[str, str]], iam.WorkerPolicies]:
    templates = iam.templates(app_assembly)
    return templates, iam.construct_paths(app_assembly), iam.worker_policies(templates)


@pytest.fixture
def admin(iam_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    for key, value in iam_emulator.env().items():
        monkeypatch.setenv(key, value)
    return iam_emulator


@pytest.fixture
def resources(admin: Emulator) -> Resources:
    return create_resources(ResourceNames.for_prefix(f"iam-{uuid.uuid4().hex[:6]}"), shard_count=1)


def resolved_policies(role: Any, resources: Resources) -> list[iam.PolicyDoc]:
    templates, paths, policies = role
    physical = iam.physical_from_paths(templates, paths, resources.by_construct_path())
    return iam.resolve(policies, iam.resolvers_for(templates, physical))


def session_of(identity: iam.Identity) -> boto3.session.Session:
    return boto3.session.Session(aws_access_key_id=identity.access_key_id,
                                 aws_secret_access_key=identity.secret_access_key, region_name=REGION)


def refused(call: Any) -> int:
    """The HTTP status of a refused call. moto answers JSON-protocol services' auth errors in XML,
    which botocore cannot parse into an error code (AWS would say AccessDeniedException), so the
    tests read the status here and the reason from the emulator's own record (`Emulator.denied`)."""
    with pytest.raises(ClientError) as info:
        call()
    return int(info.value.response["ResponseMetadata"]["HTTPStatusCode"])


def test_the_instance_role_policies_come_from_the_templates(role: Any) -> None:
    _, _, policies = role
    assert policies.role.endswith("/" + next(lid for lid in role[0][policies.role.split("/")[0]]["Resources"]
                                              if lid.startswith("NeuronFleetInstanceRole")))
    kinds = {(d.kind, d.name.rstrip("0123456789ABCDEF")) for d in policies.documents}
    assert ("managed", "WorkerPolicy") in kinds  # the state stack's, reached through Fn::ImportValue
    assert any(kind == "inline" for kind, _ in kinds)  # the role's default policy in the fleet stack
    assert policies.aws_managed == ["AmazonSSMManagedInstanceCore"]


def test_a_key_the_emulator_does_not_know_is_refused(admin: Emulator) -> None:
    stranger = boto3.client("sqs", endpoint_url=admin.endpoint, region_name=REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing")
    before = len(admin.denied())
    assert refused(stranger.list_queues) == 403
    assert [d["error"] for d in admin.denied()[before:]] == ["InvalidClientTokenIdError"]


def test_calls_outside_the_policy_are_denied_and_recorded(admin: Emulator, role: Any, resources: Resources) -> None:
    before = len(admin.denied())
    identity, widened = iam.create_worker(boto3.client("iam", endpoint_url=admin.endpoint, region_name=REGION),
                                          f"{resources.names.stream}-w", resolved_policies(role, resources))
    assert widened > 0  # moto checks those statements by action only (see agentfleet.local.iam)
    worker = session_of(identity)
    ddb = worker.client("dynamodb", endpoint_url=admin.endpoint)
    s3 = worker.client("s3", endpoint_url=admin.endpoint)
    sns = worker.client("sns", endpoint_url=admin.endpoint)
    bucket = resources.names.quarantine_bucket
    assert refused(lambda: ddb.delete_table(TableName=resources.names.leases_table)) == 403
    assert refused(lambda: sns.publish(TopicArn=resources.notify_topic_arn, Message="x")) == 403
    # S3 is checked by resource too: PutObject only under quarantine/, no reads.
    assert refused(lambda: s3.put_object(Bucket=bucket, Key="elsewhere/x", Body=b"x")) == 403
    assert refused(lambda: s3.get_object(Bucket=bucket, Key="quarantine/x")) == 403
    recorded = admin.denied()[before:]
    assert [(d["action"], d["error"]) for d in recorded] == [
        ("DeleteTable", "AccessDeniedError"), ("Publish", "AccessDeniedError"),
        ("PutObject", "S3AccessDeniedError"), ("GetObject", "S3AccessDeniedError")]
    assert all(identity.access_key_id in d["authorization"] for d in recorded)


def test_a_worker_under_the_policy_does_its_job(admin: Emulator, role: Any, resources: Resources) -> None:
    before = len(admin.denied())
    identity, _ = iam.create_worker(boto3.client("iam", endpoint_url=admin.endpoint, region_name=REGION),
                                    f"{resources.names.stream}-w", resolved_policies(role, resources))
    worker = session_of(identity)
    kinesis = worker.client("kinesis", endpoint_url=admin.endpoint)
    ddb = worker.client("dynamodb", endpoint_url=admin.endpoint)
    shards = kinesis.list_shards(StreamName=resources.names.stream)["Shards"]
    iterator = kinesis.get_shard_iterator(StreamName=resources.names.stream, ShardId=shards[0]["ShardId"],
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    kinesis.get_records(ShardIterator=iterator, Limit=10)
    # lease balancing's read (agentfleet/ingest/leases.py: a consistent Scan of the leases table)
    assert ddb.scan(TableName=resources.names.leases_table, ConsistentRead=True)["Items"] == []
    worker.client("s3", endpoint_url=admin.endpoint).put_object(
        Bucket=resources.names.quarantine_bucket, Key="quarantine/shard-0/1", Body=b"{}")
    worker.client("stepfunctions", endpoint_url=admin.endpoint).start_execution(
        stateMachineArn=resources.state_machine_arn, name=f"d-{uuid.uuid4().hex[:8]}",
        input='{"approval_required": false, "action": "ignore", "decision_id": "d", "agent": "a"}')
    assert admin.denied()[before:] == []


def test_without_the_scan_grant_lease_balancing_is_denied(admin: Emulator, role: Any, resources: Resources) -> None:
    """The outage the Scan grant fixes: the same policy minus dynamodb:Scan cannot balance leases."""
    docs = resolved_policies(role, resources)
    without = [iam.PolicyDoc(d.name, d.stack, d.kind, {**d.document, "Statement": [
        s for s in d.document["Statement"] if s["Action"] != "dynamodb:Scan"]}) for d in docs]
    assert without != docs, "the synthesized policy grants dynamodb:Scan (the fix)"
    identity, _ = iam.create_worker(boto3.client("iam", endpoint_url=admin.endpoint, region_name=REGION),
                                    f"{resources.names.stream}-noscan", without)
    ddb = session_of(identity).client("dynamodb", endpoint_url=admin.endpoint)
    before = len(admin.denied())
    assert refused(lambda: ddb.scan(TableName=resources.names.leases_table)) == 403
    assert [(d["action"], d["error"]) for d in admin.denied()[before:]] == [("Scan", "AccessDeniedError")]
