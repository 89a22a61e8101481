"""Create the runtime's AWS resources directly (emulator tests and the local fallback), and the
config document workers read.

In AWS the CDK app creates these; this mirrors the keys and shapes the stack declares
(agentfleet.spec.tables) so a worker cannot tell the difference: Kinesis stream, memory table
(TTL on expires_at), leases table, audit table with GSI by_kind(kind, at), the notify and
approval topics, the quarantine bucket (records kept whole), one EventBridge connection per enabled
HTTP target, and the actions state machine (agentfleet.spec.actions_asl, the same definition the
stack deploys) with its ${...} substitutions filled in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentfleet.ops import logs
from agentfleet.spec import actions_asl
from agentfleet.spec.catalog import AgentSpec
from agentfleet.spec.tables import AUDIT_INDEX, AUDIT_INDEX_PK, AUDIT_INDEX_SK, AUDIT_PK, LEASES_PK, MEMORY_PK, TTL_ATTRIBUTE
from agentfleet.spec.targets import TargetSpec

log = logs.get(__name__)
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
_ROLE_ARN = "arn:aws:iam::123456789012:role/agentfleet-actions"  # the emulator does not check roles


@dataclass(frozen=True)
class ResourceNames:
    """Names of everything a fleet needs; `for_prefix("t1")` gives a disjoint set (tests run side by side)."""

    stream: str
    memory_table: str
    leases_table: str
    audit_table: str
    notify_topic: str
    approval_topic: str
    state_machine: str
    quarantine_bucket: str

    @classmethod
    def for_prefix(cls, prefix: str) -> ResourceNames:
        return cls(f"{prefix}-events", f"{prefix}-memory", f"{prefix}-leases", f"{prefix}-audit",
                   f"{prefix}-notify", f"{prefix}-approval", f"{prefix}-actions",
                   f"{prefix}-quarantine".lower())

    def by_construct_path(self) -> dict[str, str]:
        """Construct path suffix (as in the synthesized templates) -> this set's physical name, so the
        worker policy read from cdk.out resolves to these resources (agentfleet.local.iam)."""
        return {"Ingest/Stream/Resource": self.stream, "AgentState/Memory/Resource": self.memory_table,
                "AgentState/Leases/Resource": self.leases_table, "AgentState/Audit/Resource": self.audit_table,
                "AgentState/Quarantine/Resource": self.quarantine_bucket}


@dataclass(frozen=True)
class Resources:
    names: ResourceNames
    stream_arn: str
    state_machine_arn: str
    notify_topic_arn: str
    approval_topic_arn: str
    connection_arns: Mapping[str, str]  # enabled target name -> its EventBridge connection

    def settings(self) -> dict[str, str]:
        """The Settings fields that point a worker at these resources."""
        return {"stream_name": self.names.stream, "memory_table": self.names.memory_table,
                "leases_table": self.names.leases_table, "audit_table": self.names.audit_table,
                "state_machine_arn": self.state_machine_arn, "quarantine_bucket": self.names.quarantine_bucket}

    def by_construct_path(self) -> dict[str, str]:
        """Like ResourceNames.by_construct_path, plus the state machine (its Ref is its ARN)."""
        return {**self.names.by_construct_path(), "Actions/StateMachine/Resource": self.state_machine_arn}


def render_asl(values: Mapping[str, str], targets: Iterable[TargetSpec] = ()) -> str:
    """The ASL for `targets` with every ${Name} replaced; a placeholder without a value is an error."""
    text = json.dumps(actions_asl.build(targets))
    missing = sorted(set(_PLACEHOLDER.findall(text)) - set(values))
    if missing:
        raise ValueError(f"ASL placeholders without a value: {missing}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def _table(ddb: Any, name: str, pk: str, **extra: Any) -> None:
    attributes = [{"AttributeName": pk, "AttributeType": "S"}, *extra.pop("attributes", [])]
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", AttributeDefinitions=attributes,
                     KeySchema=[{"AttributeName": pk, "KeyType": "HASH"}], **extra)
    ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})


def create_resources(names: ResourceNames, *, shard_count: int = 4, targets: Iterable[TargetSpec] = (),
                     approval_timeout_seconds: int = 3600, clients: Mapping[str, Any] | None = None) -> Resources:
    """Create everything in the account the clients point at (the emulator: AWS_ENDPOINT_URL)."""
    from agentfleet.ops.aws import client

    c = dict(clients or {})
    kinesis, ddb = c.get("kinesis") or client("kinesis"), c.get("dynamodb") or client("dynamodb")
    sns, events = c.get("sns") or client("sns"), c.get("events") or client("events")
    sfn = c.get("stepfunctions") or client("stepfunctions")
    s3 = c.get("s3") or client("s3")
    s3.create_bucket(Bucket=names.quarantine_bucket)
    kinesis.create_stream(StreamName=names.stream, ShardCount=shard_count)
    kinesis.get_waiter("stream_exists").wait(StreamName=names.stream, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    stream_arn = kinesis.describe_stream_summary(StreamName=names.stream)["StreamDescriptionSummary"]["StreamARN"]
    _table(ddb, names.memory_table, MEMORY_PK)
    ddb.update_time_to_live(TableName=names.memory_table,
                            TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE})
    _table(ddb, names.leases_table, LEASES_PK)
    _table(ddb, names.audit_table, AUDIT_PK, attributes=[
        {"AttributeName": AUDIT_INDEX_PK, "AttributeType": "S"},
        {"AttributeName": AUDIT_INDEX_SK, "AttributeType": "S"}],
        GlobalSecondaryIndexes=[{
            "IndexName": AUDIT_INDEX, "Projection": {"ProjectionType": "ALL"},
            "KeySchema": [{"AttributeName": AUDIT_INDEX_PK, "KeyType": "HASH"},
                          {"AttributeName": AUDIT_INDEX_SK, "KeyType": "RANGE"}]}])
    notify = sns.create_topic(Name=names.notify_topic)["TopicArn"]
    approval = sns.create_topic(Name=names.approval_topic)["TopicArn"]
    targets = tuple(targets)
    connections = {t.name: _connection(events, f"{names.state_machine}-{t.name}", t) for t in targets if t.enabled}
    definition = render_asl({
        "ApprovalTimeoutSeconds": str(approval_timeout_seconds), "ApprovalTopicArn": approval,
        "NotifyTopicArn": notify, "AuditTableName": names.audit_table,
        **{actions_asl.connection_key(name): arn for name, arn in connections.items()},
    }, targets)
    machine = sfn.create_state_machine(name=names.state_machine, definition=definition, roleArn=_ROLE_ARN)
    log.info("resources created", extra={"stream": names.stream, "shards": shard_count,
                                         "state_machine": machine["stateMachineArn"]})
    return Resources(names, stream_arn, machine["stateMachineArn"], notify, approval, connections)


def _connection(events: Any, name: str, target: TargetSpec) -> str:
    """A local stand-in for the target's connection: the emulator has no user secrets, so the
    credentials are placeholders naming the secret the deployed connection reads."""
    placeholder = f"local-placeholder-for-{target.auth.secret_name}"
    auth: dict[str, Any]
    if target.auth.type == "basic":
        auth = {"BasicAuthParameters": {"Username": "local", "Password": placeholder}}
        kind = "BASIC"
    elif target.auth.type == "oauth_client_credentials":
        auth = {"OAuthParameters": {"ClientParameters": {"ClientID": "local", "ClientSecret": placeholder},
                                    "AuthorizationEndpoint": target.auth.token_url, "HttpMethod": "POST"}}
        kind = "OAUTH_CLIENT_CREDENTIALS"
    else:
        auth = {"ApiKeyAuthParameters": {"ApiKeyName": target.auth.header, "ApiKeyValue": placeholder}}
        kind = "API_KEY"
    return str(events.create_connection(Name=name[:64], AuthorizationType=kind, AuthParameters=auth)["ConnectionArn"])


def config_document(resources: Resources, agents: Iterable[AgentSpec], **settings: Any) -> dict[str, Any]:
    """The runtime config document (what the stack writes to SSM): resource names, agents, any other settings."""
    return {**resources.settings(), "agents": [agent.to_json() for agent in agents], **settings}


def write_config_document(path: str | Path, document: Mapping[str, Any]) -> Path:
    """Write the document where AGENTFLEET_CONFIG can point; returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(document, indent=2, sort_keys=True), encoding="utf-8")
    return target

