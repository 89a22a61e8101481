"""Sources: the producers wired to the event stream (config `sources`, agentfleet.spec.sources).

CDK APIs as in aws-cdk-lib 2.275.0 (its jsii bundle, aws-cdk-lib@2.275.0.jsii.tgz):
- aws_events_targets.KinesisStream binds a role EventBridge assumes, made once per stream under the
  stream (events-targets/lib/util.js singletonEventRole) with stream.grantWrite (kinesis:ListShards,
  PutRecord, PutRecords and the stream key's encrypt actions; aws-kinesis/lib/stream.js).
- aws_logs_destinations.KinesisDestination: given no role it makes one per filter; given `role` it
  grants that role stream.grantWrite and iam:PassRole on itself (aws-logs-destinations/lib/kinesis.js).
- Function.add_function_url(auth_type=NONE) adds lambda:InvokeFunctionUrl and lambda:InvokeFunction
  (InvokedViaFunctionUrl) for any principal (aws-lambda/lib/function-url.js).
"""

from __future__ import annotations

import re
from pathlib import Path

from aws_cdk import Acknowledgment, Duration, IgnoreMode, RemovalPolicy, Stack, Validations
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_logs_destinations as destinations
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct, IConstruct

from agentfleet.spec.sources import SourcesConfig

WEBHOOK_HANDLER = "agentfleet.ingest.webhook.handler"
# The webhook needs only these modules and boto3, which the Lambda Python runtime includes
# (agentfleet/ingest/webhook.py, "Lambda package"). Gitignore-style: exclude all, re-include these.
WEBHOOK_FILES = ("agentfleet/__init__.py", "agentfleet/ops/__init__.py", "agentfleet/ops/logs.py",
                 "agentfleet/ops/aws.py", "agentfleet/ingest/__init__.py", "agentfleet/ingest/webhook.py")
_WEBHOOK_EXCLUDE = ["*", "!agentfleet/", "!agentfleet/ops/", "!agentfleet/ingest/",
                    *(f"!{name}" for name in WEBHOOK_FILES)]
# GitHub terminates a delivery whose response takes longer than 10 seconds (GitHub docs, "Handling
# webhook deliveries": "respond with a 2XX response within 10 seconds ... GitHub terminates the
# connection and considers the delivery a failure"; GitHub Enterprise Server's pages say 30 s).
WEBHOOK_TIMEOUT = Duration.seconds(10)


class Sources(Construct):
    """Creates `rules` (one EventBridge rule per configured event source, targeting the stream with
    the source's partition key path), `subscriptions` (one CloudWatch Logs subscription filter per
    named log group, sharing `logs_role`), and, when enabled, `webhook` (the GitHub webhook function
    behind a function URL, `webhook_url`) with its log group `webhook_logs`."""

    def __init__(self, scope: Construct, construct_id: str, *, config: SourcesConfig, stream: kinesis.IStream,
                 image_directory: str | Path) -> None:
        super().__init__(scope, construct_id)
        self.rules: list[events.Rule] = []
        for rule in config.rules:
            self.rules.append(events.Rule(
                self, _pascal(f"{rule.source} {rule.detail_type}"),
                description=f"{rule.source} / {rule.detail_type} to the agent event stream",
                event_pattern=events.EventPattern(source=[rule.source], detail_type=[rule.detail_type]),
                targets=[targets.KinesisStream(stream, partition_key_path=rule.partition_key_path)]))
        if self.rules:
            # The role lives under the stream (see the module docstring); acknowledged here, where it is made.
            _acknowledge_stream_write(stream.node.find_child("EventsRole"), "EventBridge")

        self.logs_role: iam.Role | None = None
        self.subscriptions: list[logs.SubscriptionFilter] = []
        if config.log_groups:
            # CloudWatch Logs assumes this role to PutRecord; the condition keeps it to this account's
            # log groups in this region (CloudWatch Logs User Guide, "Confused deputy prevention":
            # aws:SourceArn, with wildcards for the unknown parts of the ARN).
            stack = Stack.of(self)
            self.logs_role = iam.Role(self, "LogsRole", assumed_by=iam.ServicePrincipal("logs.amazonaws.com").with_conditions(
                {"StringLike": {"aws:SourceArn": f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:*"}}))
            _acknowledge_stream_write(self.logs_role, "CloudWatch Logs")
            destination = destinations.KinesisDestination(stream, role=self.logs_role)
            for group in config.log_groups:
                name = _pascal(group.name)
                source = logs.LogGroup.from_log_group_name(self, f"LogGroup{name}", group.name)
                self.subscriptions.append(logs.SubscriptionFilter(
                    self, f"Subscription{name}", log_group=source, destination=destination,
                    filter_pattern=(logs.FilterPattern.literal(group.filter_pattern) if group.filter_pattern
                                    else logs.FilterPattern.all_events()),
                    # ByLogStream (the API's default, botocore logs PutSubscriptionFilter distribution):
                    # one log stream's batches share a partition key, so they stay in order.
                    distribution=logs.Distribution.BY_LOG_STREAM))

        self.webhook: lambda_.Function | None = None
        self.webhook_logs: logs.LogGroup | None = None
        self.webhook_url: lambda_.FunctionUrl | None = None
        if config.github_webhook.enabled:
            self._webhook(config, stream, image_directory)

    def _webhook(self, config: SourcesConfig, stream: kinesis.IStream, image_directory: str | Path) -> None:
        settings = config.github_webhook
        self.webhook_logs = logs.LogGroup(self, "WebhookLogs", retention=logs.RetentionDays.ONE_MONTH,
                                          removal_policy=RemovalPolicy.DESTROY)
        # Its own role with only what the handler calls: no AWSLambdaBasicExecutionRole, whose logs
        # permissions reach every log group; this one writes to its own group only.
        role = iam.Role(self, "WebhookRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                        description="Agent Fleet Kit GitHub webhook: read its secret, write the event stream")
        self.webhook_logs.grant_write(role)
        # The newest Python runtime aws-cdk-lib 2.275 knows, which is what cdk-nag's AwsSolutions-L1
        # asks for (cdk-nag 3.0.2 rules/lambda/LambdaLatestVersion.js: latest of Runtime.ALL per family);
        # Lambda Developer Guide, "Lambda runtimes", lists python3.14.
        self.webhook = lambda_.Function(
            self, "Webhook", runtime=lambda_.Runtime.PYTHON_3_14, handler=WEBHOOK_HANDLER, role=role,
            code=lambda_.Code.from_asset(str(image_directory), exclude=_WEBHOOK_EXCLUDE, ignore_mode=IgnoreMode.GIT),
            timeout=WEBHOOK_TIMEOUT, memory_size=256, log_group=self.webhook_logs,
            # A cap on what unsigned requests (which the handler refuses) can cost; 0 = no reservation.
            # Lambda keeps 100 executions unreserved per account (Lambda Developer Guide, "Configuring
            # reserved concurrency"), so an account with a concurrency quota below 100 + this needs 0.
            reserved_concurrent_executions=settings.reserved_concurrency or None,
            environment={"AGENTFLEET_WEBHOOK_SECRET_ID": settings.secret_name,
                         "AGENTFLEET_STREAM_NAME": stream.stream_name},
            description="Agent Fleet Kit: GitHub webhook deliveries, signature verified, to the event stream")
        secretsmanager.Secret.from_secret_name_v2(self, "WebhookSecret", settings.secret_name).grant_read(role)
        stream.grant_write(role)
        _acknowledge_stream_write(role, "The GitHub webhook function")
        # GitHub signs deliveries with an HMAC (X-Hub-Signature-256), not SigV4, so the URL cannot
        # use AWS_IAM auth; the handler verifies the HMAC over the raw body and refuses with 401.
        self.webhook_url = self.webhook.add_function_url(auth_type=lambda_.FunctionUrlAuthType.NONE)
        # checkov's findings that do not apply, suppressed on the resource (checkov 3.3.30
        # checkov/cloudformation/context_parser.py: Metadata.checkov.skip[].id/comment).
        _checkov_skip(self.webhook_url, CKV_AWS_258="GitHub signs deliveries with an HMAC (X-Hub-Signature-256), not "
                      "SigV4; the handler verifies it over the raw body and answers 401 without writing.")
        _checkov_skip(self.webhook,
                      CKV_AWS_116="Invoked only synchronously through its function URL; a DLQ receives only failed "
                                  "asynchronous invocations. A failed delivery stays in GitHub's delivery log for redelivery.",
                      CKV_AWS_117="Calls only the Secrets Manager and Kinesis APIs (TLS, IAM); a VPC would add NAT "
                                  "or endpoints and isolate nothing it reaches.",
                      CKV_AWS_173="The environment holds the secret's name and the stream's name, no secret; the "
                                  "secret is read from Secrets Manager at run time.")


def _acknowledge_stream_write(role: IConstruct, writer: str) -> None:
    """stream.grant_write adds the stream key's encrypt actions (kms:Encrypt, kms:ReEncrypt*,
    kms:GenerateDataKey*) on that one key: wildcards in the action names only."""
    Validations.of(role).acknowledge(
        Acknowledgment(id="AwsSolutions::AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
                       reason=f"{writer} writes to the event stream, whose records are encrypted with the "
                              f"stream's own KMS key: data keys from that key only (grant_write)."),
        Acknowledgment(id="AwsSolutions::AwsSolutions-IAM5[Action::kms:ReEncrypt*]",
                       reason=f"{writer} writes to the event stream: kms:ReEncrypt* comes with grant_write's "
                              f"encrypt grant and is limited to the stream's own KMS key."))


def _checkov_skip(construct: IConstruct, **reasons: str) -> None:
    construct.node.default_child.add_metadata(  # type: ignore[union-attr]
        "checkov", {"skip": [{"id": rule, "comment": reason} for rule, reason in reasons.items()]})


def _pascal(text: str) -> str:
    """A stable construct id from a name: "aws.cloudwatch CloudWatch Alarm State Change" ->
    "AwsCloudwatchCloudWatchAlarmStateChange" (ids never shift when another source is added)."""
    return "".join(word[:1].upper() + word[1:] for word in re.split(r"[^A-Za-z0-9]+", text) if word)
