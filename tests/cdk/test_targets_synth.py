"""The app with all four target kinds enabled and chat channels configured: connections, the HTTP
Task IAM, the chat resources, and cdk-nag with zero unacknowledged findings."""

from __future__ import annotations

import copy
import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template

from agentfleet.spec.fleet import default_context
from stacks.fleet_app import build
from tests.cdk.conftest import ENV_KEYS, make_config

CHAT = {"slack": [{"workspace_id": "T0123ABCD", "channel_id": "C0123ABCD"}],
        "teams": [{"team_id": "11111111-2222-3333-4444-555555555555", "channel_id": "19%3Aabc%40thread.tacv2",
                   "tenant_id": "66666666-7777-8888-9999-000000000000"}]}


def _context() -> dict[str, Any]:
    context = copy.deepcopy(default_context())
    for target in context["targets"].values():
        target["enabled"] = True
    context["targets"]["post_webhook"]["auth"] = {
        "type": "oauth_client_credentials", "secret_name": "agentfleet/hook", "token_url": "https://auth.example.com/t"}
    context["chat"] = CHAT
    return context


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Template:
    import os

    saved = {key: os.environ.pop(key, None) for key in ENV_KEYS}
    try:
        context = _context()
        app = cdk.App(context=context, outdir=str(tmp_path_factory.mktemp("targets")))
        stacks = build(app, make_config(targets=context["targets"], chat=context["chat"]))
        app.synth()  # cdk-nag: raises on any unacknowledged finding
        return Template.from_stack(stacks["AgentFleet"])
    finally:
        os.environ.update({key: value for key, value in saved.items() if value is not None})


def test_one_connection_per_target_with_credentials_by_reference(fleet: Template) -> None:
    connections = fleet.find_resources("AWS::Events::Connection")
    assert len(connections) == 4
    text = json.dumps(connections)
    assert "{{resolve:secretsmanager:agentfleet/github:SecretString:api_key::}}" in text
    fleet.has_resource_properties("AWS::Events::Connection", {"AuthorizationType": "BASIC"})
    fleet.has_resource_properties("AWS::Events::Connection", {"AuthorizationType": "OAUTH_CLIENT_CREDENTIALS"})
    # PagerDuty's routing key rides in the connection's secret body parameters, not the definition.
    fleet.has_resource_properties("AWS::Events::Connection", {"AuthParameters": Match.object_like({
        "InvocationHttpParameters": {"BodyParameters": [{"Key": "routing_key", "IsValueSecret": True,
                                                         "Value": Match.string_like_regexp("routing_key")}]}})})


def test_state_machine_calls_each_target_and_may_do_nothing_else_over_http(fleet: Template) -> None:
    machine = next(iter(fleet.find_resources("AWS::StepFunctions::StateMachine").values()))["Properties"]
    substitutions = machine["DefinitionSubstitutions"]
    assert {f"ConnectionArn_{n}" for n in ("open_ticket", "file_jira", "page_oncall", "post_webhook")} <= set(
        substitutions)
    policies = json.dumps(fleet.find_resources("AWS::IAM::Policy"))
    invoke = [s for p in fleet.find_resources("AWS::IAM::Policy").values()
              for s in p["Properties"]["PolicyDocument"]["Statement"] if s["Action"] == "states:InvokeHTTPEndpoint"]
    assert len(invoke) == 4
    assert all(set(s["Condition"]["StringEquals"]) == {"states:HTTPEndpoint", "states:HTTPMethod"} for s in invoke)
    assert {s["Condition"]["StringEquals"]["states:HTTPEndpoint"] for s in invoke} == {
        t["url"] for t in _context()["targets"].values()}
    assert "events:RetrieveConnectionCredentials" in policies and '"SecretArn"' in policies
    assert "events:PutEvents" not in policies  # the ticket bus is gone


def test_chat_channels_subscribe_to_both_topics_with_a_deny_all_guardrail(fleet: Template) -> None:
    for kind in ("AWS::Chatbot::SlackChannelConfiguration", "AWS::Chatbot::MicrosoftTeamsChannelConfiguration"):
        (channel,) = fleet.find_resources(kind).values()
        topics = json.dumps(channel["Properties"]["SnsTopicArns"])
        assert "ActionsNotifyTopic" in topics and "ActionsApprovalTopic" in topics
        assert "ChatGuardrail" in json.dumps(channel["Properties"]["GuardrailPolicies"])
    fleet.has_resource_properties("AWS::IAM::ManagedPolicy", {"PolicyDocument": {
        "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}], "Version": "2012-10-17"}})


def test_default_config_has_no_connections_and_no_chat() -> None:
    from tests.cdk.conftest import synth

    fleet = synth()["AgentFleet"]
    assert not fleet.find_resources("AWS::Events::Connection")
    assert not fleet.find_resources("AWS::Chatbot::SlackChannelConfiguration")
