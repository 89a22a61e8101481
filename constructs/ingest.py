"""Ingest: the Kinesis stream every producer writes to, encrypted with a customer-managed key."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kms as kms
from constructs import Construct


class Ingest(Construct):
    """Creates `key` (CMK, rotated) and `stream` (on-demand, or provisioned with `shard_count`).

    Producers use the partition key = event subject so one subject's events stay ordered.
    """

    def __init__(self, scope: Construct, construct_id: str, *, mode: str, shard_count: int,
                 retention_hours: int, removal_policy: RemovalPolicy = RemovalPolicy.RETAIN) -> None:
        super().__init__(scope, construct_id)
        if mode not in ("on-demand", "provisioned"):
            raise ValueError(f"kinesis_mode must be on-demand or provisioned, got {mode!r}")
        self.key = kms.Key(self, "Key", enable_key_rotation=True, removal_policy=removal_policy,
                           description="Agent Fleet Kit: event stream encryption")
        provisioned = mode == "provisioned"
        self.stream = kinesis.Stream(
            self, "Stream",
            stream_mode=kinesis.StreamMode.PROVISIONED if provisioned else kinesis.StreamMode.ON_DEMAND,
            shard_count=shard_count if provisioned else None,
            encryption=kinesis.StreamEncryption.KMS,
            encryption_key=self.key,
            retention_period=Duration.hours(retention_hours),
            removal_policy=removal_policy,
        )
        Validations.of(self.stream).acknowledge(Acknowledgment(
            id="AwsSolutions::AwsSolutions-KDS3",
            reason="A customer-managed key instead of aws/kinesis, on purpose: rotation, key policy and grants "
                   "stay with the fleet owner."))

    def grant_write(self, grantee: iam.IGrantable) -> iam.Grant:
        """For producers: PutRecord(s) plus the key use that encryption needs."""
        return self.stream.grant_write(grantee)

    def consumer_statements(self) -> list[iam.PolicyStatement]:
        """What a worker needs to read the stream: shard listing and reads, and decrypting records."""
        return [
            iam.PolicyStatement(actions=["kinesis:DescribeStreamSummary", "kinesis:ListShards",
                                         "kinesis:GetShardIterator", "kinesis:GetRecords"],
                                resources=[self.stream.stream_arn]),
            iam.PolicyStatement(actions=["kms:Decrypt"], resources=[self.key.key_arn]),
        ]
