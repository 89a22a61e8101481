"""Chat: optional Slack and Microsoft Teams channels (Amazon Q Developer in chat applications, formerly
AWS Chatbot) subscribed to the notify and approval topics."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Acknowledgment, Validations
from aws_cdk import aws_chatbot as chatbot
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from constructs import Construct

from agentfleet.spec.chat import ChatConfig


class ChatChannels(Construct):
    """Creates one channel configuration per configured Slack or Teams channel (`channels`), a shared
    role with no permissions (`role`) and a guardrail policy that denies every action (`guardrail`):
    the channels only show notifications; nobody runs AWS commands from them."""

    def __init__(self, scope: Construct, construct_id: str, *, chat: ChatConfig, topics: Sequence[sns.ITopic],
                 name_prefix: str) -> None:
        super().__init__(scope, construct_id)
        # aws-cdk-lib 2.275 aws-chatbot SlackChannelConfiguration: its role trusts chatbot.amazonaws.com
        # (slack-channel-configuration.js); the Teams L1 resource needs the role passed in.
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("chatbot.amazonaws.com"),
                             description="Agent Fleet Kit chat channels: notifications only, no permissions")
        # Guardrail policies cap what channel members may do (CfnSlackChannelConfiguration GuardrailPolicies).
        self.guardrail = iam.ManagedPolicy(
            self, "Guardrail", description="Agent Fleet Kit chat channels: no AWS actions from chat",
            statements=[iam.PolicyStatement(effect=iam.Effect.DENY, actions=["*"], resources=["*"])])
        Validations.of(self.guardrail).acknowledge(Acknowledgment(
            id="AwsSolutions::AwsSolutions-IAM5[Action::*]",
            reason="A Deny of every action: the chat channels' guardrail forbids all commands from chat."))
        self.channels: list[Construct] = []
        for i, (workspace_id, channel_id) in enumerate(chat.slack):
            self.channels.append(chatbot.SlackChannelConfiguration(
                self, f"Slack{i}", slack_channel_configuration_name=f"{name_prefix}-slack-{i}",
                slack_workspace_id=workspace_id, slack_channel_id=channel_id, role=self.role,
                notification_topics=list(topics), guardrail_policies=[self.guardrail],
                logging_level=chatbot.LoggingLevel.ERROR))
        for i, (team_id, channel_id, tenant_id) in enumerate(chat.teams):
            self.channels.append(chatbot.CfnMicrosoftTeamsChannelConfiguration(
                self, f"Teams{i}", configuration_name=f"{name_prefix}-teams-{i}", team_id=team_id,
                teams_channel_id=channel_id, teams_tenant_id=tenant_id, iam_role_arn=self.role.role_arn,
                sns_topic_arns=[t.topic_arn for t in topics], guardrail_policies=[self.guardrail.managed_policy_arn],
                logging_level="ERROR"))
