"""HTTP action targets: config parsing (errors name the key), the generated ASL, per-target guardrails."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from agentfleet.decide.guardrails import Guardrails
from agentfleet.spec import actions_asl
from agentfleet.spec.catalog import ConfigError, parse_agents
from agentfleet.spec.chat import parse_chat
from agentfleet.spec.decisions import Decision
from agentfleet.spec.fleet import FleetConfig, default_context
from agentfleet.spec.settings import resolve
from agentfleet.spec.targets import parse_rules, parse_targets

GITHUB = {"kind": "github_issue", "url": "https://api.github.com/repos/o/r/issues", "enabled": True,
          "auth": {"type": "api_key", "secret_name": "agentfleet/github", "header": "Authorization"}}
ALL_KINDS = {
    "open_ticket": GITHUB,
    "file_jira": {"kind": "jira_issue", "url": "https://x.atlassian.net/rest/api/2/issue", "enabled": True,
                  "project_key": "OPS", "auth": {"type": "basic", "secret_name": "agentfleet/jira"}},
    "page_oncall": {"kind": "pagerduty", "url": "https://events.pagerduty.com/v2/enqueue", "enabled": True,
                    "auth": {"type": "api_key", "secret_name": "agentfleet/pd", "header": "X-Key"}},
    "post_webhook": {"kind": "webhook", "url": "https://hooks.example.com/in", "enabled": False,
                     "auth": {"type": "oauth_client_credentials", "secret_name": "agentfleet/hook",
                              "token_url": "https://auth.example.com/token"}},
}


@pytest.mark.parametrize("change, message", [
    ({"url": "http://api.github.com/x"}, "targets.open_ticket.url must be https://..."),
    ({"kind": "slack"}, "targets.open_ticket.kind must be one of github_issue, jira_issue, pagerduty, webhook"),
    ({"method": "DELETE"}, "targets.open_ticket.method must be one of POST, PUT, PATCH"),
    ({"enabled": "yes"}, "targets.open_ticket.enabled must be true or false"),
    ({"auth": {"type": "token", "secret_name": "s"}}, "targets.open_ticket.auth.type must be one of api_key"),
    ({"auth": {"type": "api_key", "secret_name": "has space"}}, "targets.open_ticket.auth.secret_name must name"),
    ({"auth": {"type": "oauth_client_credentials", "secret_name": "s"}}, "targets.open_ticket.auth.token_url must be"),
    ({"response": "html_url"}, "targets.open_ticket.response must be a JSONPath"),
    ({"rate_limit_per_minute": -1}, "targets.open_ticket.rate_limit_per_minute must be 0"),
    ({"body": {"title.$": "$.subject"}}, "targets.open_ticket.body has key 'title.$'"),
    ({"body": {"labels": ["$.agent"]}}, "targets.open_ticket.body.labels[0]: a path inside a list"),
    ({"color": "red"}, "targets.open_ticket has unknown keys ['color']"),
    ({"kind": "jira_issue"}, "targets.open_ticket.project_key is required for kind jira_issue"),
    ({"kind": "pagerduty", "severity": "high"}, "targets.open_ticket.severity must be one of critical"),
])
def test_bad_target_names_the_key(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_targets({"open_ticket": {**GITHUB, **change}})
    assert message in str(err.value)


@pytest.mark.parametrize("name, message", [
    ("notify", "targets.notify: 'notify' is a built-in action"),
    ("Open-Ticket", "must match ^[a-z][a-z0-9_]{0,39}$"),
])
def test_target_names_are_action_names(name: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("$", r"\$").replace("^", r"\^")
                       .replace("{", r"\{").replace("}", r"\}")):
        parse_targets({name: GITHUB})


def test_presets_and_defaults() -> None:
    targets = {t.name: t for t in parse_targets(ALL_KINDS)}
    assert targets["open_ticket"].response == ("$.html_url",)
    assert targets["file_jira"].response == ("$.key", "$.self")
    assert targets["post_webhook"].response == ()
    assert targets["post_webhook"].method == "POST" and not targets["post_webhook"].enabled
    assert targets["page_oncall"].auth.header == "X-Key"


def test_agents_may_use_configured_targets_only() -> None:
    agent = {"name": "a", "system_prompt": "p", "subscribes_to": ["x"], "allowed_actions": ["notify", "open_ticket"]}
    with pytest.raises(ConfigError, match="'open_ticket', neither a built-in action nor a configured target"):
        parse_agents([agent])
    assert parse_agents([agent], targets=["open_ticket"])[0].allowed_actions == ("notify", "open_ticket")


def test_fleet_config_carries_targets_to_the_runtime_document() -> None:
    context = default_context()
    config = FleetConfig.from_context(context.get)
    doc = config.runtime_document()
    assert set(doc["targets"]) == {"open_ticket", "file_jira", "page_oncall", "post_webhook"}
    assert not any(t["enabled"] for t in doc["targets"].values())
    settings = resolve(document={"agents": doc["agents"], "targets": doc["targets"]}, env={})
    assert settings.targets["page_oncall"].rate_limit_per_minute == 5
    broken = copy.deepcopy(context)
    broken["targets"]["open_ticket"]["url"] = "ftp://x"
    with pytest.raises(ConfigError, match=r"targets\.open_ticket\.url must be https://"):
        FleetConfig.from_context(broken.get)
    del broken["targets"]["open_ticket"]
    with pytest.raises(ConfigError, match=r"agents\[0\]\.allowed_actions has 'open_ticket'"):
        FleetConfig.from_context(broken.get)


def test_chat_config_errors_name_the_key() -> None:
    assert parse_chat({"slack": [{"workspace_id": "T1", "channel_id": "C1"}]}).slack == (("T1", "C1"),)
    with pytest.raises(ConfigError, match=r"chat.teams\[0\] must be an object with exactly team_id"):
        parse_chat({"teams": [{"team_id": "t"}]})
    with pytest.raises(ConfigError, match="chat has unknown keys \\['discord'\\]"):
        parse_chat({"discord": []})


def test_asl_has_one_http_task_per_enabled_target() -> None:
    asl = actions_asl.build(parse_targets(ALL_KINDS))
    states = asl["States"]
    routes = {c["StringEquals"]: c["Next"] for c in states["RouteAction"]["Choices"]}
    assert routes == {"notify": "Notify", "open_ticket": "Target open_ticket", "file_jira": "Target file_jira",
                      "page_oncall": "Target page_oncall", "post_webhook": "Target post_webhook"}
    assert states["Target post_webhook"]["Next"] == "MarkSkippedTargetDisabled"
    assert "Deliver post_webhook" not in states
    task = states["Deliver open_ticket"]
    assert task["Resource"] == "arn:aws:states:::http:invoke"
    assert task["Parameters"]["Authentication"] == {"ConnectionArn": "${ConnectionArn_open_ticket}"}
    assert task["Parameters"]["ApiEndpoint"] == "https://api.github.com/repos/o/r/issues"
    assert task["ResultSelector"]["response.$"] == "$.ResponseBody.html_url"
    assert "States.Http.StatusCode.429" in task["Retry"][0]["ErrorEquals"]
    assert task["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.delivery.failure", "Next": "MarkFailed"}]
    jira = states["Deliver file_jira"]
    assert jira["Parameters"]["RequestBody"]["fields"]["project"] == {"key": "OPS"}
    assert jira["ResultSelector"]["response.$"].startswith("States.Format('{} {}', $.ResponseBody.key")
    pd = states["Deliver page_oncall"]["Parameters"]["RequestBody"]
    assert pd["event_action"] == "trigger" and pd["dedup_key.$"] == "$.decision_id" and "routing_key" not in pd
    assert actions_asl.substitution_keys(parse_targets(ALL_KINDS)) == [
        "ConnectionArn_open_ticket", "ConnectionArn_file_jira", "ConnectionArn_page_oncall"]
    # Every Next names a state that exists.
    nexts = {s.get("Next") for s in states.values()} | {c["Next"] for s in states.values() for c in s.get("Catch", [])}
    assert nexts - {None} <= set(states)


def test_body_template_turns_paths_into_asl_paths() -> None:
    custom = {**GITHUB, "body": {"title": "$.subject", "meta": {"by": "States.Format('{}!', $.agent)", "n": 1},
                                 "labels": ["a", "b"], "note": "plain $ text"}}
    body = actions_asl.build(parse_targets({"open_ticket": custom}))["States"]["Deliver open_ticket"]
    assert body["Parameters"]["RequestBody"] == {
        "title.$": "$.subject", "meta": {"by.$": "States.Format('{}!', $.agent)", "n": 1},
        "labels": ["a", "b"], "note": "plain $ text"}


def _decision(action: str) -> Decision:
    return Decision(action, {"message": "m"}, "r", 0.9)


def test_guardrails_apply_per_target() -> None:
    agents = parse_agents([{"name": "a", "system_prompt": "p", "subscribes_to": ["x"], "rate_limit_per_minute": 100,
                            "allowed_actions": ["notify", "open_ticket", "page_oncall", "file_jira"]}],
                          targets=["open_ticket", "page_oncall", "file_jira"])
    rules = parse_rules({"open_ticket": {"enabled": True, "approval_required": True},
                         "page_oncall": {"enabled": True, "rate_limit_per_minute": 1},
                         "file_jira": {"enabled": True, "dry_run": True}}, "targets")
    now = [0.0]
    rails = Guardrails(agents, dry_run=False, targets=rules, clock=lambda: now[0])
    agent = agents[0]
    assert (rails.evaluate(agent, _decision("open_ticket")).outcome,
            rails.evaluate(agent, _decision("open_ticket")).approval_required) == ("approval_pending", True)
    assert rails.evaluate(agent, _decision("page_oncall")).outcome == "acted"
    limited = rails.evaluate(agent, _decision("page_oncall"))
    assert (limited.outcome, limited.dispatch) == ("rate_limited", False)
    assert "target 'page_oncall' exceeded 1" in limited.reason
    dry = rails.evaluate(agent, _decision("file_jira"))
    assert (dry.outcome, dry.dispatch) == ("dry_run", False) and "target 'file_jira' is in dry run" in dry.reason
    assert rails.evaluate(agent, _decision("notify")).outcome == "acted"  # other actions are untouched
    now[0] += 60.0
    assert rails.evaluate(agent, _decision("page_oncall")).outcome == "acted"


def test_targets_and_chat_as_cli_json_text() -> None:
    """`cdk synth -c targets='{...}'` passes strings; they parse like cdk.json's objects."""
    import json

    context = {**default_context(), "targets": json.dumps({"open_ticket": GITHUB}), "chat": '{"slack": []}'}
    context["agents"] = [{**a, "allowed_actions": [x for x in a["allowed_actions"] if x in ("notify", "ignore",
                                                                                            "open_ticket")],
                          "approval_required": [x for x in a.get("approval_required", []) if x == "open_ticket"]}
                         for a in context["agents"]]
    config = FleetConfig.from_context(context.get)
    assert [t.name for t in config.targets] == ["open_ticket"] and config.targets[0].enabled
    with pytest.raises(ConfigError, match="targets must be a JSON object"):
        FleetConfig.from_context({**context, "targets": "{not json"}.get)


@pytest.mark.parametrize(("url", "ok"), [
    ("http://127.0.0.1:8080/v2/enqueue", True), ("http://localhost/hooks/x", True),
    ("http://127.0.0.2:8080/v2/enqueue", False), ("http://127.0.0.1.example.com/x", False),
])
def test_plain_http_only_for_the_loopback_sink(url: str, ok: bool) -> None:
    raw = {"open_ticket": {**GITHUB, "url": url}}
    if ok:
        assert parse_targets(raw)[0].url == url
    else:
        with pytest.raises(ConfigError, match=r"targets\.open_ticket\.url must be https://"):
            parse_targets(raw)


def test_an_enabled_loopback_target_warns_at_synth() -> None:
    context = default_context()
    context["targets"] = {**context["targets"], "open_ticket": {**GITHUB, "url": "http://127.0.0.1:9/issues"}}
    config = FleetConfig.from_context(context.get)
    assert any("targets.open_ticket.url" in w and "https" in w for w in config.warnings)
    assert not any("targets." in w for w in FleetConfig.from_context(default_context().get).warnings)
