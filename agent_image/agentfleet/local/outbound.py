"""The local fleet's way out: every configured target enabled and pointed at the loopback sink.

`make demo` synthesizes the app with cdk.json's `targets`, each switched on and its `url` replaced by
the sink's route for its kind (local/http_sink.py: GitHub, Jira v2, PagerDuty Events v2, webhooks),
creates the secrets those targets name in the emulator's Secrets Manager before the deploy (the
connections read them by dynamic reference, as on AWS), and subscribes the sink's Slack endpoint to
the notify topic. The sink accepts exactly the credentials written here, so a connection that sent
the wrong header would show as a rejected delivery. Everything else about a target (auth type, body
preset, approval, rate limit, dry run) stays as configured.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

from agentfleet.local import http_sink
from agentfleet.local.sink_targets import Credentials

# Demo credentials for the loopback sink only (never a real service).
GITHUB_TOKEN = "ghp-local-demo-token"  # noqa: S105
JIRA_USER, JIRA_TOKEN = "agent@example.com", "jira-local-token"
PAGERDUTY_ROUTING_KEY = "R0123456789ABCDEF0123456789ABCDE"  # Events API v2 integration keys are 32 characters
API_KEY = "local-demo-key"
ROUTES = {  # kind -> the sink's path for it
    "github_issue": "/repos/example/agentfleet/issues",
    "jira_issue": "/rest/api/2/issue",  # v2: the preset's description is a plain string (v3 wants ADF)
    "pagerduty": "/v2/enqueue",
    "webhook": "/hooks/{name}",
}


def credentials() -> Credentials:
    """What the sink accepts: only the values the secrets below hold."""
    return Credentials(github_tokens={GITHUB_TOKEN}, jira_basic={f"{JIRA_USER}:{JIRA_TOKEN}"},
                       pagerduty_routing_keys={PAGERDUTY_ROUTING_KEY})


def targets_context(targets: Mapping[str, Any], sink_url: str) -> dict[str, Any]:
    """cdk.json's `targets` with each one enabled and sent to the sink."""
    local = copy.deepcopy(dict(targets))
    for name, target in local.items():
        target["enabled"] = True
        target["url"] = sink_url + ROUTES[target["kind"]].format(name=name)
    return local


def secret_value(target: Mapping[str, Any]) -> dict[str, str]:
    """The secret's JSON fields by auth type (agentfleet/spec/targets.py docstring)."""
    auth = target["auth"]
    if auth["type"] == "basic":
        value = {"username": JIRA_USER, "password": JIRA_TOKEN}
    elif auth["type"] == "oauth_client_credentials":
        value = {"client_id": "local-client", "client_secret": API_KEY}
    elif target["kind"] == "github_issue" and auth.get("header", "").lower() == "authorization":
        value = {"api_key": f"Bearer {GITHUB_TOKEN}"}
    else:
        value = {"api_key": API_KEY}
    if target["kind"] == "pagerduty":
        value["routing_key"] = PAGERDUTY_ROUTING_KEY
    return value


def create_secrets(secretsmanager: Any, targets: Mapping[str, Any]) -> list[str]:
    """Create each secret the targets name (once per name); returns the names."""
    made: dict[str, dict[str, str]] = {}
    for target in targets.values():
        made.setdefault(target["auth"]["secret_name"], {}).update(secret_value(target))
    for name, value in made.items():
        secretsmanager.create_secret(Name=name, SecretString=json.dumps(value))
    return sorted(made)


def start_sink(out_dir: Any) -> http_sink.HttpSink:
    return http_sink.start(jsonl=out_dir / "sink.jsonl", credentials=credentials())


def responses_by_target(outcomes: list[dict[str, Any]]) -> dict[str, int]:
    """Outcome items whose delivery recorded a response (issue URL, Jira key, PagerDuty dedup key)."""
    return dict(Counter(str(o.get("target")) for o in outcomes if o.get("target") and o.get("response")))


def succeeded_by_target(outcomes: list[dict[str, Any]]) -> dict[str, int]:
    """Outcome items of actions that went out and succeeded, by target ("notify" for the chat topic)."""
    return dict(Counter(str(o.get("target") or o.get("action")) for o in outcomes if o.get("outcome") == "succeeded"))
