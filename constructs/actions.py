"""Actions: the Step Functions state machine that carries out agents' decisions."""

from __future__ import annotations

import json
from collections.abc import Sequence

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, SecretValue, Stack, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from agentfleet.spec import actions_asl
from agentfleet.spec.targets import TargetSpec


class Actions(Construct):
    """Creates `notify_topic` and `approval_topic` (KMS-encrypted SNS), `connections` (one EventBridge
    connection per enabled HTTP target), `log_group` (KMS-encrypted) and `state_machine` (Standard,
    JSONPath, logging ALL, X-Ray on) from agentfleet.spec.actions_asl.

    Routing by action, HTTP Tasks with retries (backoff and jitter), approval by task token and the
    outcome record in the audit table all live in the ASL.
    """

    def __init__(self, scope: Construct, construct_id: str, *, audit_table: dynamodb.ITable, audit_key: kms.IKey,
                 approval_timeout: Duration, targets: Sequence[TargetSpec] = (),
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
        self.connections = {t.name: _connection(self, t) for t in targets if t.enabled}
        self.log_group = logs.LogGroup(self, "Logs", encryption_key=self.key, retention=log_retention,
                                       removal_policy=RemovalPolicy.DESTROY)
        self.state_machine = sfn.StateMachine(
            self, "StateMachine",
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string(json.dumps(actions_asl.build(targets), indent=1)),
            definition_substitutions={
                "ApprovalTimeoutSeconds": str(int(approval_timeout.to_seconds())),
                "ApprovalTopicArn": self.approval_topic.topic_arn,
                "NotifyTopicArn": self.notify_topic.topic_arn,
                "AuditTableName": audit_table.table_name,
                **{actions_asl.connection_key(name): c.connection_arn for name, c in self.connections.items()},
            },
            # An approval may wait its whole timeout; anything longer is stuck.
            timeout=approval_timeout.plus(Duration.hours(1)),
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            tracing_enabled=True,
        )
        role = self.state_machine.role
        self.notify_topic.grant_publish(role)
        self.approval_topic.grant_publish(role)
        for target in targets:
            if target.enabled:
                _grant_http(role, target, self.connections[target.name])
        # PutItem on the audit table only (grant_write_data would add index/* and KMS wildcards).
        iam.Grant.add_to_principal(grantee=role, actions=["dynamodb:PutItem"], resource_arns=[audit_table.table_arn])
        audit_key.grant(role, "kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt", "kms:DescribeKey")
        Validations.of(role).acknowledge(
            Acknowledgment(id="AwsSolutions::AwsSolutions-IAM5[Resource::*]",
                           reason="X-Ray and CloudWatch Logs delivery have no resource-level permissions; "
                                  "states:InvokeHTTPEndpoint is scoped by its endpoint and method conditions."),
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


def _connection(scope: Construct, target: TargetSpec) -> events.Connection:
    """The target's EventBridge connection; credentials come from the user's secret by dynamic
    reference (never in the template). JSON fields per auth type: agentfleet.spec.targets."""
    secret = target.auth.secret_name
    auth = target.auth
    if auth.type == "basic":
        authorization = events.Authorization.basic(
            SecretValue.secrets_manager(secret, json_field="username").unsafe_unwrap(),
            SecretValue.secrets_manager(secret, json_field="password"))
    elif auth.type == "oauth_client_credentials":
        # The client id is not secret to EventBridge (a string prop), but it lives in the same secret.
        authorization = events.Authorization.oauth(
            authorization_endpoint=auth.token_url, http_method=events.HttpMethod.POST,
            client_id=SecretValue.secrets_manager(secret, json_field="client_id").unsafe_unwrap(),
            client_secret=SecretValue.secrets_manager(secret, json_field="client_secret"),
            body_parameters={"grant_type": events.HttpParameter.from_string("client_credentials")})
    else:
        authorization = events.Authorization.api_key(auth.header, SecretValue.secrets_manager(secret, json_field="api_key"))
    body = {}
    if target.kind == "pagerduty":
        # The Events API v2 routing key authenticates the event inside the body. The Step Functions
        # Developer Guide ("Call HTTPS APIs", section "Merging EventBridge connection and HTTP Task
        # definition data") merges a connection's body parameters into the HTTP Task's request body;
        # only that section's title could be read here, not its precedence rules. As a secret parameter
        # the key stays in the connection's managed secret, out of the definition and execution input.
        body["routing_key"] = events.HttpParameter.from_secret(SecretValue.secrets_manager(secret, json_field="routing_key"))
    return events.Connection(scope, f"Connection{target.name.title().replace('_', '')}", authorization=authorization,
                             description=f"Agent Fleet Kit target {target.name} ({target.kind})",
                             body_parameters=body or None)


def _grant_http(role: iam.IRole, target: TargetSpec, connection: events.Connection) -> None:
    """What an HTTP Task needs, as aws-cdk-lib 2.275 HttpInvoke grants it (aws-stepfunctions-tasks/lib/http/
    invoke.js buildTaskPolicyStatements), narrowed to this target's exact URL and method."""
    iam.Grant.add_to_principal(grantee=role, actions=["events:RetrieveConnectionCredentials"],
                               resource_arns=[connection.connection_arn])
    iam.Grant.add_to_principal(grantee=role, actions=["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                               resource_arns=[connection.connection_secret_arn])
    role.add_to_principal_policy(iam.PolicyStatement(
        actions=["states:InvokeHTTPEndpoint"], resources=["*"],
        conditions={"StringEquals": {"states:HTTPEndpoint": target.url, "states:HTTPMethod": target.method}}))
