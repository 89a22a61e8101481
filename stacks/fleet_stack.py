"""FleetStack: the compute (Neuron fleet), the actions workflow and the runtime config that ties them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import Annotations, CfnOutput, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_ssm as ssm
from constructs import Construct
from constructs.actions import Actions
from constructs.agent_state import QUARANTINE_PREFIX
from constructs.capacity import PredictiveCapacity
from constructs.neuron_fleet import LAUNCH_HOOK, TERMINATION_HOOK, NeuronFleet
from constructs.sources import Sources

from agentfleet.spec import metric_names
from agentfleet.spec.fleet import FleetConfig
from stacks.state_stack import StateStack

IMAGE_DIRECTORY = str(Path(__file__).resolve().parent.parent / "agent_image")


class FleetStack(Stack):
    """Actions state machine, Trainium Auto Scaling group and the SSM parameter holding the
    runtime config document (agents, model, resource names) every worker reads at start."""

    def __init__(self, scope: Construct, construct_id: str, *, config: FleetConfig, state: StateStack,
                 **kwargs: Any) -> None:
        super().__init__(scope, construct_id, description=f"Agent Fleet Kit {config.fleet_name}: fleet and actions",
                         **kwargs)
        self.actions = Actions(self, "Actions", audit_table=state.state.audit, audit_key=state.state.key,
                               tickets_enabled=config.tickets_enabled,
                               approval_timeout=Duration.minutes(config.approval_timeout_minutes))
        # A fixed name: the launch template's user data names the parameter and the parameter's
        # value names the group, so a token here would be a dependency cycle.
        self.runtime_config_name = f"/agentfleet/{config.fleet_name}/runtime-config"
        self.fleet = NeuronFleet(self, "NeuronFleet", config=config, image_directory=IMAGE_DIRECTORY,
                                 runtime_config_parameter=self.runtime_config_name)
        # Predictive scaling beside the fleet's target tracking (constructs/capacity.py).
        self.capacity = PredictiveCapacity(self, "PredictiveCapacity", config=config,
                                           group_name=self.fleet.group.auto_scaling_group_name)
        self.sources = Sources(self, "Sources", config=config.sources, stream=state.ingest.stream,
                               image_directory=IMAGE_DIRECTORY)
        # Every log group of this stack (the container logs and the VPC flow logs NeuronFleet makes, the
        # workflow's own, the webhook function's) is KMS-encrypted with the workflow's key, whose policy lets CloudWatch Logs use
        # it for this account's log groups only (constructs/actions.py).
        for node in self.node.find_all():
            if isinstance(node, logs.CfnLogGroup) and node.kms_key_id is None:
                node.kms_key_id = self.actions.key.key_arn
        role = self.fleet.role
        # What the compatibility matrix could not check shows as a synth warning, never silently.
        for warning in config.warnings:
            Annotations.of(self.fleet).add_warning_v2("agentfleet:compat-matrix", warning)
        role.add_managed_policy(state.worker_policy)
        self.actions.grant_start(role)
        hf_secret_id = ""
        if config.hf_token_secret_name:
            secret = secretsmanager.Secret.from_secret_name_v2(self, "HfToken", config.hf_token_secret_name)
            secret.grant_read(role)
            hf_secret_id = config.hf_token_secret_name
        document = {
            **config.runtime_document(),
            "engine": config.serving_engine,
            "stream_name": state.ingest.stream.stream_name,
            "memory_table": state.state.memory.table_name,
            "leases_table": state.state.leases.table_name,
            "audit_table": state.state.audit.table_name,
            "cache_bucket": state.cache.bucket.bucket_name,
            "quarantine_bucket": state.state.quarantine.bucket_name,
            "quarantine_prefix": QUARANTINE_PREFIX,
            "weights_prefix": config.weights_mirror_prefix,
            "hf_token_secret_id": hf_secret_id,
            "state_machine_arn": self.actions.state_machine.state_machine_arn,
            "asg_name": self.fleet.group.auto_scaling_group_name,
            "launch_hook_name": LAUNCH_HOOK,
            "termination_hook_name": TERMINATION_HOOK,
            "metrics_mode": "emf",
        }
        self.runtime_config = ssm.StringParameter(
            self, "RuntimeConfig", parameter_name=self.runtime_config_name,
            string_value=self.to_json_string(document), tier=ssm.ParameterTier.INTELLIGENT_TIERING,
            description="Agent Fleet Kit runtime config document (read by every worker at start)")
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["ssm:GetParameter"],
            resources=[self.format_arn(service="ssm", resource="parameter",
                                       resource_name=self.runtime_config_name.lstrip("/"))]))
        # metrics_mode=put (any worker may be switched to it with AGENTFLEET_METRICS_MODE) calls
        # PutMetricData, which has no resource-level permission; the namespace condition key limits
        # it to the fleet's own namespace. Source: docs.aws.amazon.com/AmazonCloudWatch/latest/
        # monitoring/iam-cw-condition-keys-namespace.html (StringEquals cloudwatch:namespace).
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["cloudwatch:PutMetricData"], resources=["*"],
            conditions={"StringEquals": {"cloudwatch:namespace": metric_names.NAMESPACE}}))
        for name, value in (("StateMachineArn", self.actions.state_machine.state_machine_arn),
                            ("NotifyTopicArn", self.actions.notify_topic.topic_arn),
                            ("ApprovalTopicArn", self.actions.approval_topic.topic_arn),
                            ("ApproverPolicyArn", self.actions.approver_policy.managed_policy_arn),
                            ("AutoScalingGroupName", self.fleet.group.auto_scaling_group_name),
                            ("RuntimeConfigParameter", self.runtime_config_name)):
            CfnOutput(self, name, value=value)
        if self.sources.webhook_url is not None:
            CfnOutput(self, "GitHubWebhookUrl", value=self.sources.webhook_url.url,
                      description="Payload URL for the GitHub webhook (content type application/json)")
