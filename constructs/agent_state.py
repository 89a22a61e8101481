"""AgentState: DynamoDB tables for agent memory, shard leases and the decision/audit log."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from agentfleet.spec import tables as keys

QUARANTINE_PREFIX = "quarantine/"  # Settings.quarantine_prefix's default; workers may write only under it


class AgentState(Construct):
    """Creates `key`, the tables `memory` (TTL), `leases` and `audit` (GSI by kind, time) and
    `quarantine` (bucket for the bytes of records the fleet could not handle).

    The quarantine bucket is its own bucket, encrypted with this key, not a prefix of the compile
    cache: a quarantined record is event data (the stream and the audit table that points at it
    use customer-managed keys; the cache is SSE-S3), and every worker may read the whole cache.

    `aws_dynamodb.Table`, not TableV2: the embedded emulator cannot create the GlobalTable
    resource TableV2 synthesizes. PITR and CMK encryption on; RETAIN by default.
    """

    def __init__(self, scope: Construct, construct_id: str, *, access_logs: s3.IBucket,
                 removal_policy: RemovalPolicy = RemovalPolicy.RETAIN) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(self, "Key", enable_key_rotation=True, removal_policy=removal_policy,
                           description="Agent Fleet Kit: agent state encryption")
        self.memory = self._table("Memory", keys.MEMORY_PK, removal_policy, ttl=True)
        self.leases = self._table("Leases", keys.LEASES_PK, removal_policy)
        self.audit = self._table("Audit", keys.AUDIT_PK, removal_policy)
        self.audit.add_global_secondary_index(
            index_name=keys.AUDIT_INDEX,
            partition_key=dynamodb.Attribute(name=keys.AUDIT_INDEX_PK, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=keys.AUDIT_INDEX_SK, type=dynamodb.AttributeType.STRING),
        )
        self.quarantine = s3.Bucket(
            self, "Quarantine", encryption=s3.BucketEncryption.KMS, encryption_key=self.key, bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL, enforce_ssl=True, versioned=True,
            server_access_logs_bucket=access_logs, server_access_logs_prefix="quarantine/",
            lifecycle_rules=[s3.LifecycleRule(abort_incomplete_multipart_upload_after=Duration.days(1))],
            removal_policy=removal_policy)

    def _table(self, construct_id: str, partition_key: str, removal_policy: RemovalPolicy,
               ttl: bool = False) -> dynamodb.Table:
        return dynamodb.Table(
            self, construct_id,
            partition_key=dynamodb.Attribute(name=partition_key, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=self.key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True),
            time_to_live_attribute=keys.TTL_ATTRIBUTE if ttl else None,
            removal_policy=removal_policy,
        )

    @property
    def tables(self) -> tuple[dynamodb.Table, ...]:
        return (self.memory, self.leases, self.audit)

    def runtime_statements(self) -> list[iam.PolicyStatement]:
        """What a worker needs: item reads/writes on the three tables, Scan on the leases table only
        (lease balancing reads every lease each tick: agentfleet/ingest/leases.py), and
        PutObject under the quarantine prefix (no read, no list, no delete)."""
        return [
            iam.PolicyStatement(actions=[f"dynamodb:{a}" for a in _WORKER_ACTIONS],
                                resources=[t.table_arn for t in self.tables]),
            iam.PolicyStatement(actions=["dynamodb:Scan"], resources=[self.leases.table_arn]),
            iam.PolicyStatement(actions=list(_KEY_ACTIONS), resources=[self.key.key_arn]),
            iam.PolicyStatement(actions=["s3:PutObject"],
                                resources=[self.quarantine.arn_for_objects(f"{QUARANTINE_PREFIX}*")]),
        ]

    def quarantine_finding(self) -> str:
        """cdk-nag's finding id for the prefix wildcard above (computed, so renaming never breaks it)."""
        stack = Stack.of(self)
        logical_id = stack.resolve(stack.get_logical_id(self.quarantine.node.default_child))
        return f"AwsSolutions::AwsSolutions-IAM5[Resource::<{logical_id}.Arn>/{QUARANTINE_PREFIX}*]"


_WORKER_ACTIONS = ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "ConditionCheckItem", "DescribeTable")
# Explicit, not grant_encrypt_decrypt: no ReEncrypt*/GenerateDataKey* wildcards are needed.
_KEY_ACTIONS = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey")
