"""AgentState: DynamoDB tables for agent memory, shard leases and the decision/audit log."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from agentfleet.spec import tables as keys


class AgentState(Construct):
    """Creates `key` and the tables `memory` (TTL), `leases` and `audit` (GSI by kind, time).

    `aws_dynamodb.Table`, not TableV2: the embedded emulator cannot create the GlobalTable
    resource TableV2 synthesizes. PITR and CMK encryption on; RETAIN by default.
    """

    def __init__(self, scope: Construct, construct_id: str, *,
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
        """What a worker needs: item reads/writes on the three tables (no Scan, no index, no admin)."""
        return [
            iam.PolicyStatement(actions=[f"dynamodb:{a}" for a in _WORKER_ACTIONS],
                                resources=[t.table_arn for t in self.tables]),
            iam.PolicyStatement(actions=list(_KEY_ACTIONS), resources=[self.key.key_arn]),
        ]


_WORKER_ACTIONS = ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "ConditionCheckItem", "DescribeTable")
# Explicit, not grant_encrypt_decrypt: no ReEncrypt*/GenerateDataKey* wildcards are needed.
_KEY_ACTIONS = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey")
