"""What each service played by the local HTTP sink accepts and answers, copied from its documentation.

Each handler takes (path match, headers, parsed JSON body or None) and returns a Verdict: the HTTP
status and JSON answer the real service documents, and whether the delivery counts as accepted.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_DOCS_ISSUES = "https://docs.github.com/rest/issues/issues#create-an-issue"


@dataclass
class Verdict:
    """One answer: status + JSON body, accepted or rejected (with the reason), and the target name."""

    target: str
    status: int
    body: Any
    accepted: bool
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Credentials:
    """The credentials each played service accepts; None accepts any well-formed one."""

    github_tokens: set[str] | None = None
    jira_basic: set[str] | None = None  # "user:token" pairs
    pagerduty_routing_keys: set[str] | None = None


def _bearer(headers: dict[str, str]) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token if scheme.lower() in ("bearer", "token") and token else None


def github_issue(match: re.Match[str], headers: dict[str, str], body: Any, creds: Credentials,
                 number: int) -> Verdict:
    """GitHub REST "Create an issue" (POST /repos/{owner}/{repo}/issues, docs.github.com/rest/issues/issues):
    201 with the issue; 401 {"message": "Requires authentication"} without a token (and "Bad credentials"
    for an unknown one); 422 "Validation Failed" with {resource, field, code: "missing_field"} when title
    is missing (error shape: GitHub REST "client errors"; the 401 message texts are not confirmed here)."""
    token = _bearer(headers)
    if token is None:
        return Verdict("github", 401, {"message": "Requires authentication", "documentation_url": _DOCS_ISSUES},
                       False, "no Authorization token")
    if creds.github_tokens is not None and token not in creds.github_tokens:
        return Verdict("github", 401, {"message": "Bad credentials", "documentation_url": _DOCS_ISSUES},
                       False, "unknown token")
    if not isinstance(body, dict):
        return Verdict("github", 400, {"message": "Body should be a JSON object"}, False, "body is not an object")
    if not isinstance(body.get("title"), (str, int)) or body.get("title") == "":
        return Verdict("github", 422, {"message": "Validation Failed", "errors": [
            {"resource": "Issue", "field": "title", "code": "missing_field"}], "documentation_url": _DOCS_ISSUES},
            False, "title missing")
    owner, repo = match.group("owner"), match.group("repo")
    api = f"https://api.github.com/repos/{owner}/{repo}/issues/{number}"
    issue = {"id": 1000 + number, "node_id": f"I_local{number}", "url": api, "number": number,
             "html_url": f"https://github.com/{owner}/{repo}/issues/{number}", "state": "open",
             "title": str(body["title"]), "body": body.get("body"), "labels": [
                 {"name": label} for label in body.get("labels", []) if isinstance(label, str)],
             "repository_url": f"https://api.github.com/repos/{owner}/{repo}"}
    return Verdict("github", 201, issue, True, extra={"created": issue["html_url"]})


def jira_issue(match: re.Match[str], headers: dict[str, str], body: Any, creds: Credentials,
               number: int) -> Verdict:
    """Jira Cloud REST "Create issue" (POST /rest/api/{2,3}/issue, developer.atlassian.com/cloud/jira/platform/
    rest/v3/api-group-issues): Basic auth (email:API token); 201 {"id", "key", "self"}. v3 takes `description`
    in Atlassian Document Format only ("the description, environment, and any textarea type custom fields
    take Atlassian Document Format content", same page), v2 a plain string, so a string description on v3
    answers 400 (this message is the sink's wording). A missing field
    answers 400 {"errorMessages": [], "errors": {field: message}} (the summary message as Jira words it;
    the project/issuetype messages and the 401 text are this sink's wording, not confirmed)."""
    import base64

    scheme, _, value = headers.get("authorization", "").partition(" ")
    try:
        pair = base64.b64decode(value, validate=True).decode() if scheme.lower() == "basic" else ""
    except ValueError:
        pair = ""
    if ":" not in pair or (creds.jira_basic is not None and pair not in creds.jira_basic):
        return Verdict("jira", 401, {"errorMessages": ["You are not authenticated. Authentication required to "
                                                       "perform this operation."], "errors": {}},
                       False, "missing or wrong Basic credentials")
    fields = body.get("fields") if isinstance(body, dict) else None
    fields = fields if isinstance(fields, dict) else {}
    errors: dict[str, str] = {}
    project = fields.get("project")
    if not isinstance(project, dict) or not (project.get("key") or project.get("id")):
        errors["project"] = "Specify a valid project ID or key"
    if not isinstance(fields.get("summary"), str) or not fields["summary"].strip():
        errors["summary"] = "You must specify a summary of the issue."
    kind = fields.get("issuetype")
    if not isinstance(kind, dict) or not (kind.get("name") or kind.get("id")):
        errors["issuetype"] = "Specify an issue type"
    version = match.group("version")
    if version == "3" and isinstance(fields.get("description"), str):
        errors["description"] = "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
    if errors:
        return Verdict("jira", 400, {"errorMessages": [], "errors": errors}, False,
                       "missing " + ", ".join(sorted(errors)))
    key = f"{project.get('key') or 'PRJ'}-{number}"  # type: ignore[union-attr]
    issue_id = str(10000 + number)
    created = {"id": issue_id, "key": key, "self": f"https://local.atlassian.net/rest/api/{version}/issue/{issue_id}"}
    return Verdict("jira", 201, created, True, extra={"created": key})


_SEVERITIES = {"critical", "error", "warning", "info"}
_ACTIONS = {"trigger", "acknowledge", "resolve"}


def pagerduty_event(match: re.Match[str], headers: dict[str, str], body: Any, creds: Credentials,
                    number: int) -> Verdict:
    """PagerDuty Events API v2 (POST /v2/enqueue; developer.pagerduty.com "Send an Alert Event" and
    PagerDuty/api-schema reference/events-v2/openapiv3.json): 202 {"status": "success", "message":
    "Event processed", "dedup_key"}; invalid -> 400 {"status": "invalid event", "message": "Event object
    is invalid", "errors": [...]}, e.g. "Length of 'routing_key' is incorrect (should be 32 characters)"
    (that sample is PagerDuty's; the other error strings are this sink's own wording)."""
    errors: list[str] = []
    event = body if isinstance(body, dict) else {}
    key = event.get("routing_key")
    if not isinstance(key, str) or len(key) != 32:
        errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    elif creds.pagerduty_routing_keys is not None and key not in creds.pagerduty_routing_keys:
        errors.append("'routing_key' is not an integration key of this account")
    action = event.get("event_action")
    if action not in _ACTIONS:
        errors.append("'event_action' is invalid (must be one of: trigger, acknowledge, resolve)")
    payload = event.get("payload")
    if action == "trigger":
        payload = payload if isinstance(payload, dict) else {}
        for name in ("summary", "source"):
            if not isinstance(payload.get(name), str) or not payload[name]:
                errors.append(f"'payload.{name}' is missing or blank")
        if payload.get("severity") not in _SEVERITIES:
            errors.append("'payload.severity' is invalid (must be one of: critical, error, warning, info)")
    elif action in ("acknowledge", "resolve") and not event.get("dedup_key"):
        errors.append("'dedup_key' is required for acknowledge and resolve events")
    if errors:
        return Verdict("pagerduty", 400, {"status": "invalid event", "message": "Event object is invalid",
                                          "errors": errors}, False, "; ".join(errors))
    dedup = str(event.get("dedup_key") or hashlib.sha256(json.dumps(event, sort_keys=True).encode()).hexdigest()[:32])
    return Verdict("pagerduty", 202, {"status": "success", "message": "Event processed", "dedup_key": dedup},
                   True, extra={"dedup_key": dedup})


def chatbot_problems(message: Any) -> list[str]:
    """Why Amazon Q Developer in chat applications (AWS Chatbot) would not render `message` as a custom
    notification ("Custom notifications", docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html:
    version must be "1.0", source must be "custom", content.description required, textType only
    "client-markdown", nextSteps/keywords/relatedResources string lists, additionalContext string map)."""
    if not isinstance(message, dict):
        return ["message is not a JSON object"]
    problems = []
    if message.get("version") != "1.0":
        problems.append('version must be "1.0"')
    if message.get("source") != "custom":
        problems.append('source must be "custom"')
    content = message.get("content")
    if not isinstance(content, dict):
        return [*problems, "content (an object) is required"]
    if not isinstance(content.get("description"), str) or not content["description"]:
        problems.append("content.description is required")
    if "textType" in content and content["textType"] != "client-markdown":
        problems.append('content.textType must be "client-markdown"')
    for name in ("title", "id"):
        holder = content if name == "title" else message
        if name in holder and not isinstance(holder[name], str):
            problems.append(f"{name} must be a string")
    for name in ("nextSteps", "keywords"):
        if name in content and not _strings(content[name]):
            problems.append(f"content.{name} must be a list of strings")
    metadata = message.get("metadata", {})
    if not isinstance(metadata, dict):
        return [*problems, "metadata must be an object"]
    if "relatedResources" in metadata and not _strings(metadata["relatedResources"]):
        problems.append("metadata.relatedResources must be a list of strings")
    extra = metadata.get("additionalContext", {})
    if not isinstance(extra, dict) or not all(isinstance(v, str) for v in extra.values()):
        problems.append("metadata.additionalContext must map names to strings")
    return problems


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


Handler = Callable[[re.Match[str], dict[str, str], Any, Credentials, int], Verdict]
ROUTES: list[tuple[re.Pattern[str], str, Handler]] = [  # (POST path, target name, handler)
    (re.compile(r"^/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/issues$"), "github", github_issue),
    (re.compile(r"^/rest/api/(?P<version>[23])/issue$"), "jira", jira_issue),
    (re.compile(r"^/v2/enqueue$"), "pagerduty", pagerduty_event),
]
