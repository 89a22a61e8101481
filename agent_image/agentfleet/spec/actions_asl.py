"""The actions workflow's definition: the base ASL file plus one state pair per HTTP target.

A pure function of the configured targets; constructs/actions.py (CDK) and agentfleet.local.resources
(emulator) both use it, so the deployed and the local workflow are the same. Per target:
  "Target <name>"  Pass: sets $.delivery.target (so a failure still records which target)
  "Deliver <name>" HTTP Task (enabled targets) -> MarkSucceeded, or Catch -> MarkFailed
A disabled target's Pass goes to MarkSkippedTargetDisabled. Each target's connection ARN is the
substitution ${ConnectionArn_<name>}.

HTTP Task fields as aws-cdk-lib 2.275 HttpInvoke renders them (aws-stepfunctions-tasks/lib/http/invoke.js:
Resource arn:aws:states:::http:invoke; Parameters ApiEndpoint, Method, Authentication.ConnectionArn,
Headers, RequestBody) and as the Step Functions Developer Guide "Call HTTPS APIs in Step Functions
workflows" shows them. Result: StatusCode and ResponseBody (same page). A non-2xx answer fails the
task with error States.Http.StatusCode.<code> (the name AWS samples and emulators use; the guide's
error section could not be read here).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from agentfleet.spec.targets import TargetSpec

BASE_PATH = Path(__file__).resolve().parent / "actions.asl.json"
RETRY_STATUS = ("429", "500", "502", "503", "504")
HTTP_TIMEOUT_SECONDS = 60  # our bound on one call; States.Timeout when exceeded (ASL spec, TimeoutSeconds)
_TITLE = "States.Format('[{}] {}', $.agent, $.subject)"
_TEXT = ("States.Format('{} (agent {}, decision {}, params {})', $.rationale, $.agent, $.decision_id, "
         "States.JsonToString($.params))")


def connection_key(name: str) -> str:
    """The substitution that carries target `name`'s EventBridge connection ARN."""
    return f"ConnectionArn_{name}"


def template(body: Any) -> Any:
    """A config body template -> ASL payload template: strings starting with "$." or "States."
    become paths/intrinsics (their key gets ".$"); everything else is literal."""
    if isinstance(body, Mapping):
        out = {}
        for key, value in body.items():
            if isinstance(value, str) and value.startswith(("$.", "States.")):
                out[f"{key}.$"] = value
            else:
                out[key] = template(value)
        return out
    if isinstance(body, list):
        return [template(v) for v in body]
    return body


def preset_body(target: TargetSpec) -> dict[str, Any]:
    """The request body of a kind, built from the decision (agent, subject, params, rationale, decision_id)."""
    opts = target.options
    if target.kind == "github_issue":
        # GitHub REST API "Create an issue" (POST /repos/{owner}/{repo}/issues): title (required), body,
        # labels (octokit/routes routes/issues/create-an-issue.json).
        return {"title.$": _TITLE, "body.$": _TEXT, "labels": list(opts.get("labels", ["agentfleet"]))}
    if target.kind == "jira_issue":
        # Jira REST API "Create issue" (POST /rest/api/2/issue): fields.project.key, summary,
        # issuetype.name, description (Atlassian developer docs, "JIRA REST API Example - Create Issue").
        return {"fields": {"project": {"key": opts.get("project_key", "")}, "summary.$": _TITLE,
                           "issuetype": {"name": opts.get("issue_type", "Task")}, "description.$": _TEXT}}
    if target.kind == "pagerduty":
        # PagerDuty Events API v2 (POST https://events.pagerduty.com/v2/enqueue): routing_key, event_action
        # trigger, dedup_key, payload.summary/source/severity (PagerDuty/api-schema reference/events-v2).
        # routing_key is a secret: the connection adds it as a body parameter (constructs/actions.py).
        # dedup_key = decision id: a retried call for one decision is one alert.
        return {"event_action": "trigger", "dedup_key.$": "$.decision_id",
                "payload": {"summary.$": _TITLE, "source.$": "$.agent", "severity": opts.get("severity", "error"),
                            "custom_details.$": "$.params"}}
    return {"decision_id.$": "$.decision_id", "agent.$": "$.agent", "subject.$": "$.subject",
            "action.$": "$.action", "params.$": "$.params", "rationale.$": "$.rationale"}


def _response(paths: tuple[str, ...]) -> dict[str, str]:
    if not paths:
        return {"response": ""}
    fields = [f"$.ResponseBody{p[1:]}" for p in paths]
    if len(fields) == 1:
        return {"response.$": fields[0]}
    return {"response.$": f"States.Format('{' '.join('{}' for _ in fields)}', {', '.join(fields)})"}


def http_task(target: TargetSpec) -> dict[str, Any]:
    """One target's HTTP Task state."""
    body = template(target.body) if target.body is not None else preset_body(target)
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::http:invoke",
        "Comment": f"{target.kind} target {target.name}: credentials from its EventBridge connection.",
        "Parameters": {
            "ApiEndpoint": target.url,
            "Method": target.method,
            "Authentication": {"ConnectionArn": "${" + connection_key(target.name) + "}"},
            "Headers": {"Content-Type": "application/json"},
            "RequestBody": body,
        },
        "TimeoutSeconds": HTTP_TIMEOUT_SECONDS,
        # Keep what the audit record needs; a missing response field fails the state (States.Runtime).
        "ResultSelector": {"target": target.name, "status_code.$": "$.StatusCode", **_response(target.response),
                           "failure": {"Error": "", "Cause": ""}},
        "ResultPath": "$.delivery",
        "Retry": [{"ErrorEquals": [f"States.Http.StatusCode.{c}" for c in RETRY_STATUS] + ["States.Timeout"],
                   "IntervalSeconds": 2, "MaxAttempts": 4, "BackoffRate": 2.0, "MaxDelaySeconds": 60,
                   "JitterStrategy": "FULL"}],
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.delivery.failure", "Next": "MarkFailed"}],
        "Next": "MarkSucceeded",
    }


def build(targets: Iterable[TargetSpec], base_path: Path = BASE_PATH) -> dict[str, Any]:
    """The full definition (a dict; json.dumps it) for these targets."""
    asl = json.loads(base_path.read_text(encoding="utf-8"))
    states = asl["States"]
    choices = states["RouteAction"]["Choices"]
    for target in targets:
        pass_name, task_name = f"Target {target.name}", f"Deliver {target.name}"
        choices.append({"Variable": "$.action", "StringEquals": target.name, "Next": pass_name})
        states[pass_name] = {
            "Type": "Pass", "ResultPath": "$.delivery",
            "Result": {"target": target.name, "status_code": 0, "response": "", "failure": {"Error": "", "Cause": ""}},
            "Next": task_name if target.enabled else "MarkSkippedTargetDisabled",
        }
        if target.enabled:
            states[task_name] = http_task(target)
    return copy.deepcopy(asl)


def substitution_keys(targets: Iterable[TargetSpec]) -> list[str]:
    """The ${...} keys the enabled targets add (besides the base file's own)."""
    return [connection_key(t.name) for t in targets if t.enabled]
