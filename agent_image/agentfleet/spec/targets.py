"""The `targets` config section: where agents' actions go out over HTTPS.

    {"open_ticket": {"kind": "github_issue", "url": "https://api.github.com/repos/o/r/issues",
                     "auth": {"type": "api_key", "secret_name": "agentfleet/github", "header": "Authorization"},
                     "enabled": true, "approval_required": false, "dry_run": false, "rate_limit_per_minute": 10}}

A target's name is an action agents may take (the decision schema's action pattern). Each enabled
target becomes one Step Functions HTTP Task (agentfleet.spec.actions_asl) with an EventBridge
connection holding its credentials (constructs/actions.py). The secret named by `auth.secret_name`
is one the user creates in Secrets Manager; its JSON fields by auth type:
  api_key: {"api_key": "..."}   basic: {"username": "...", "password": "..."}
  oauth_client_credentials: {"client_id": "...", "client_secret": "..."} (token URL: auth.token_url)
  pagerduty targets also: {"routing_key": "..."} (the Events API v2 integration key).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agentfleet.spec.catalog import ConfigError

KINDS = ("github_issue", "jira_issue", "pagerduty", "webhook")
AUTH_TYPES = ("api_key", "basic", "oauth_client_credentials")
BUILTIN_ACTIONS = ("notify", "ignore")
METHODS = ("POST", "PUT", "PATCH")
# The decision schema's action pattern (agentfleet.spec.decisions DECISION_SCHEMA "action").
ACTION_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# Secrets Manager secret names: 1-512 of letters, digits and /_+=.@- (Secrets Manager API Reference,
# CreateSecret "Name").
_SECRET_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")
# RFC 7230 token characters, the ones a header name may hold.
_HEADER = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")
# The HTTP Task calls https endpoints only ("Call HTTPS APIs", Step Functions guide); plain http is
# accepted for loopback alone, where the local fleet's sink plays the services (local/outbound.py) and
# the emulator's HTTP Task allows it (local/sfn_http.py). A deployed task would fail on it.
LOOPBACK_HTTP = re.compile(r"^http://(127\.0\.0\.1|localhost)(:\d{1,5})?/")
_PATH = re.compile(r"^\$(\.[A-Za-z0-9_-]+)+$")
# What each kind records from the response body by default (JSONPath into the body; none = status only).
RESPONSE_PRESETS: Mapping[str, tuple[str, ...]] = {
    # GitHub "Create an issue": 201 with the issue, html_url = its page (octokit/routes
    # routes/issues/create-an-issue.json, exampleResponse).
    "github_issue": ("$.html_url",),
    # Jira "Create issue": {"id", "key", "self"} (developer.atlassian.com, "JIRA REST API Example - Create Issue").
    "jira_issue": ("$.key", "$.self"),
    # PagerDuty Events API v2: 202 {"status", "message", "dedup_key"} (v2.developer.pagerduty.com,
    # "Send an Event - Events API v2", response example).
    "pagerduty": ("$.dedup_key",),
    "webhook": (),
}
_KEYS = {"kind", "url", "method", "enabled", "auth", "body", "response", "approval_required", "dry_run",
         "rate_limit_per_minute", "project_key", "issue_type", "labels", "severity"}


@dataclass(frozen=True)
class AuthSpec:
    """How the EventBridge connection authenticates: the auth type and the user's secret."""

    type: str
    secret_name: str
    header: str = ""  # api_key: the header that carries the key
    token_url: str = ""  # oauth_client_credentials: the token endpoint


@dataclass(frozen=True)
class TargetSpec:
    """One HTTP action target; `name` is the action agents use."""

    name: str
    kind: str
    url: str
    auth: AuthSpec
    method: str = "POST"
    enabled: bool = False
    body: Mapping[str, Any] | None = None  # None = the kind's preset (agentfleet.spec.actions_asl)
    response: tuple[str, ...] = ()
    approval_required: bool = False
    dry_run: bool = False
    rate_limit_per_minute: int = 0  # 0 = only the agent's own limit
    options: Mapping[str, Any] = field(default_factory=dict)  # kind-specific: project_key, issue_type, labels, severity

    def runtime_json(self) -> dict[str, Any]:
        """What a worker needs to know of this target (guardrails); no URL, no secret."""
        return {"enabled": self.enabled, "approval_required": self.approval_required, "dry_run": self.dry_run,
                "rate_limit_per_minute": self.rate_limit_per_minute}


@dataclass(frozen=True)
class TargetRules:
    """The runtime's view of a target (the config document's `targets`)."""

    enabled: bool = False
    approval_required: bool = False
    dry_run: bool = False
    rate_limit_per_minute: int = 0


def _bool(raw: Mapping[str, Any], name: str, key: str, default: bool) -> bool:
    value = raw.get(name, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{key}.{name} must be true or false, got {value!r}")
    return value


def _auth(raw: Any, key: str) -> AuthSpec:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{key} must be an object with type and secret_name")
    unknown = sorted(set(raw) - {"type", "secret_name", "header", "token_url"})
    if unknown:
        raise ConfigError(f"{key} has unknown keys {unknown}; allowed: header, secret_name, token_url, type")
    kind = raw.get("type")
    if kind not in AUTH_TYPES:
        raise ConfigError(f"{key}.type must be one of {', '.join(AUTH_TYPES)}, got {kind!r}")
    secret = raw.get("secret_name")
    if not isinstance(secret, str) or not _SECRET_NAME.match(secret):
        raise ConfigError(f"{key}.secret_name must name a Secrets Manager secret (letters, digits, /_+=.@-), "
                          f"got {secret!r}")
    header = raw.get("header", "Authorization" if kind == "api_key" else "")
    if kind == "api_key" and (not isinstance(header, str) or not _HEADER.match(header)):
        raise ConfigError(f"{key}.header must be an HTTP header name, got {header!r}")
    token_url = raw.get("token_url", "")
    if kind == "oauth_client_credentials" and (not isinstance(token_url, str) or not token_url.startswith("https://")):
        raise ConfigError(f"{key}.token_url must be https://... (the OAuth token endpoint), got {token_url!r}")
    return AuthSpec(kind, secret, header if kind == "api_key" else "",
                    token_url if kind == "oauth_client_credentials" else "")


def _check_template(value: Any, key: str) -> None:
    """A body template: JSON values; strings starting with "$." or "States." become ASL paths."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str) or not k or k.endswith(".$"):
                raise ConfigError(f"{key} has key {k!r}: keys are plain names (a value starting with '$.' "
                                  "or 'States.' is what makes a path)")
            _check_template(v, f"{key}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if isinstance(v, str) and v.startswith(("$.", "States.")):
                raise ConfigError(f"{key}[{i}]: a path inside a list is not evaluated; use States.Array(...)")
            _check_template(v, f"{key}[{i}]")
    elif not (value is None or isinstance(value, (str, int, float, bool))):
        raise ConfigError(f"{key} must hold JSON values, got {type(value).__name__}")


def parse_target(name: Any, raw: Any, key: str) -> TargetSpec:
    """Validate one target; every error names its key (e.g. targets.open_ticket.url)."""
    if not isinstance(name, str) or not ACTION_NAME.match(name):
        raise ConfigError(f"{key} has target name {name!r}: it is an action name and must match {ACTION_NAME.pattern}")
    key = f"{key}.{name}"
    if name in BUILTIN_ACTIONS:
        raise ConfigError(f"{key}: {name!r} is a built-in action; choose another target name")
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{key} must be an object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ConfigError(f"{key} has unknown keys {unknown}; allowed: {sorted(_KEYS)}")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"{key}.kind must be one of {', '.join(KINDS)}, got {kind!r}")
    url = raw.get("url")
    # The HTTP Task calls HTTPS endpoints only (Step Functions Developer Guide, "Call HTTPS APIs").
    if not isinstance(url, str) or not (_https(url) or LOOPBACK_HTTP.match(url)):
        raise ConfigError(f"{key}.url must be https://... (http:// only for 127.0.0.1 or localhost, the local "
                          f"fleet's sink), got {url!r}")
    method = raw.get("method", "POST")
    if method not in METHODS:
        raise ConfigError(f"{key}.method must be one of {', '.join(METHODS)}, got {method!r}")
    auth = _auth(raw.get("auth"), f"{key}.auth")
    body = raw.get("body")
    if body is not None:
        if not isinstance(body, Mapping) or not body:
            raise ConfigError(f"{key}.body must be a non-empty object (the request body template)")
        _check_template(body, f"{key}.body")
    response = raw.get("response", list(RESPONSE_PRESETS[kind]))
    if isinstance(response, str):
        response = [response] if response else []
    if not isinstance(response, list) or not all(isinstance(p, str) and _PATH.match(p) for p in response):
        raise ConfigError(f"{key}.response must be a JSONPath into the response body like '$.html_url' "
                          f"(or a list of them, or \"\" for status only), got {response!r}")
    rate = raw.get("rate_limit_per_minute", 0)
    if isinstance(rate, bool) or not isinstance(rate, int) or rate < 0:
        raise ConfigError(f"{key}.rate_limit_per_minute must be 0 (no limit of its own) or a positive integer, "
                          f"got {rate!r}")
    options = {k: raw[k] for k in ("project_key", "issue_type", "labels", "severity") if k in raw}
    _check_options(kind, options, body is not None, key)
    return TargetSpec(name, kind, url, auth, method, _bool(raw, "enabled", key, False), body, tuple(response),
                      _bool(raw, "approval_required", key, False), _bool(raw, "dry_run", key, False), rate, options)


def _check_options(kind: str, options: Mapping[str, Any], has_body: bool, key: str) -> None:
    if kind == "jira_issue" and not has_body and not isinstance(options.get("project_key"), str):
        raise ConfigError(f"{key}.project_key is required for kind jira_issue (the Jira project's key, e.g. \"OPS\")")
    for name in ("project_key", "issue_type"):
        if name in options and (not isinstance(options[name], str) or not options[name]):
            raise ConfigError(f"{key}.{name} must be a non-empty string")
    labels = options.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(v, str) and v for v in labels):
        raise ConfigError(f"{key}.labels must be a list of non-empty strings")
    # PagerDuty Events API v2: payload.severity is one of critical, error, warning, info.
    if options.get("severity", "error") not in ("critical", "error", "warning", "info"):
        raise ConfigError(f"{key}.severity must be one of critical, error, warning, info")


def parse_targets(raw: Any, key: str = "targets") -> tuple[TargetSpec, ...]:
    """Validate the whole section (a JSON object: name -> spec); {} means no HTTP targets."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{key} must be a JSON object mapping target names to target definitions")
    return tuple(parse_target(name, spec, key) for name, spec in raw.items())


def parse_rules(raw: Any, key: str) -> dict[str, TargetRules]:
    """The runtime document's `targets` (what runtime_json wrote) -> rules by target name."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{key} must be an object of target name -> rules")
    rules = {}
    for name, spec in raw.items():
        if not isinstance(name, str) or not ACTION_NAME.match(name) or not isinstance(spec, Mapping):
            raise ConfigError(f"{key} has an invalid entry {name!r}")
        rate = spec.get("rate_limit_per_minute", 0)
        if isinstance(rate, bool) or not isinstance(rate, int) or rate < 0:
            raise ConfigError(f"{key}.{name}.rate_limit_per_minute must be a non-negative integer, got {rate!r}")
        flags = {f: spec.get(f, False) for f in ("enabled", "approval_required", "dry_run")}
        for f, value in flags.items():
            if not isinstance(value, bool):
                raise ConfigError(f"{key}.{name}.{f} must be true or false, got {value!r}")
        rules[name] = TargetRules(rate_limit_per_minute=rate, **flags)
    return rules


def _https(url: str) -> bool:
    return url.startswith("https://") and len(url) > len("https://")
