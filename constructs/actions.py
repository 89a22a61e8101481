"""Actions: the Step Functions state machine that carries out agents' decisions."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

# The one definition of the actions workflow; local mode loads the same file.
ASL_PATH = Path(__file__).resolve().parent / "actions.asl.json"


class Actions(Construct):
    """Creates `notify_topic` and `approval_topic` (KMS-encrypted SNS), `bus` (EventBridge bus for
    tickets/webhooks), `log_group` (KMS-encrypted) and `state_machine` (Standard, JSONPath,
    logging ALL, X-Ray on) from actions.asl.json.

    Routing by action type, retries with backoff and jitter, approval by task token and the
    outcome record in the audit table all live in the ASL file.
    """

    def __init__(self, scope: Construct, construct_id: str, *, audit_table: dynamodb.ITable, audit_key: kms.IKey,
                 tickets_enabled: bool, approval_timeout: Duration,
                 log_retention: logs.RetentionDays = logs.RetentionDays.THREE_MONTHS) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(self, "Key", enable_key_rotation=True, removal_policy=RemovalPolicy.DESTROY,
                           description="Agent Fleet Kit: action topics and logs")
        # SNS (for the state machine's publish) and CloudWatch Logs use this key. Logs only for this
        # account's log groups: CloudWatch Logs passes the log group ARN as encryption context
        # (docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html). A pattern, not
        # the group's ARN: the group names the key, so the key policy cannot name the group.
        stack = Stack.of(self)
        self.key.add_to_resource_policy(iam.PolicyStatement(
            principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
            actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
            resources=["*"], conditions={"ArnLike": {
                "kms:EncryptionContext:aws:logs:arn": f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:*"}}))
        self.notify_topic = sns.Topic(self, "NotifyTopic", master_key=self.key, enforce_ssl=True,
                                      display_name="Agent Fleet Kit notifications")
        self.approval_topic = sns.Topic(self, "ApprovalTopic", master_key=self.key, enforce_ssl=True,
                                        display_name="Agent Fleet Kit approval requests")
        self.bus = events.EventBus(self, "TicketBus")
        self.log_group = logs.LogGroup(self, "Logs", encryption_key=self.key, retention=log_retention,
                                       removal_policy=RemovalPolicy.DESTROY)
        self.state_machine = sfn.StateMachine(
            self, "StateMachine",
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_file(str(ASL_PATH)),
            definition_substitutions={
                "TicketsEnabled": "true" if tickets_enabled else "false",
                "ApprovalTimeoutSeconds": str(int(approval_timeout.to_seconds())),
                "ApprovalTopicArn": self.approval_topic.topic_arn,
                "NotifyTopicArn": self.notify_topic.topic_arn,
                "EventBusName": self.bus.event_bus_name,
                "AuditTableName": audit_table.table_name,
            },
            # An approval may wait its whole timeout; anything longer is stuck.
            timeout=approval_timeout.plus(Duration.hours(1)),
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            tracing_enabled=True,
        )
        role = self.state_machine.role
        self.notify_topic.grant_publish(role)
        self.approval_topic.grant_publish(role)
        self.bus.grant_put_events_to(role)
        # PutItem on the audit table only (grant_write_data would add index/* and KMS wildcards).
        iam.Grant.add_to_principal(grantee=role, actions=["dynamodb:PutItem"], resource_arns=[audit_table.table_arn])
        audit_key.grant(role, "kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt", "kms:DescribeKey")
        Validations.of(role).acknowledge(
            Acknowledgment(id="AwsSolutions::AwsSolutions-IAM5[Resource::*]",
                           reason="X-Ray and CloudWatch Logs delivery have no resource-level permissions."),
            Acknowledgment(id="AwsSolutions::AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
                           reason="Publishing to this workflow's KMS-encrypted topics (grant_publish on its own key)."))

        # For the humans who answer approval requests: attach to their role or group. The actions are
        # those CDK's grant_task_response gives (aws-cdk-lib 2.275 state-machine-grants.js).
        self.approver_policy = iam.ManagedPolicy(
            self, "ApproverPolicy", description="Agent Fleet Kit approvers: answer approval requests (task tokens)",
            statements=[iam.PolicyStatement(
                actions=["states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"],
                resources=[self.state_machine.state_machine_arn])])

    def grant_start(self, grantee: iam.IGrantable) -> iam.Grant:
        """For workers: StartExecution only (execution name = decision id gives idempotency)."""
        return self.state_machine.grant_start_execution(grantee)

    def grant_approve(self, grantee: iam.IGrantable) -> iam.Grant:
        """For approvers: answer a pending approval with its task token."""
        return self.state_machine.grant_task_response(grantee)
