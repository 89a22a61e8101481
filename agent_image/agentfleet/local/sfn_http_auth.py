"""The credentials of an EventBridge connection, read the way a Step Functions HTTP Task reads them:
as the state machine's identity, refused where its policies do not allow it.

What the execution role needs, from aws-cdk-lib 2.275 aws-stepfunctions-tasks/lib/http/invoke.js
(HttpInvoke.buildTaskPolicyStatements, which implements the "IAM permissions to run an HTTP Task"
section of https://docs.aws.amazon.com/step-functions/latest/dg/call-https-apis.html):
  events:RetrieveConnectionCredentials on the connection ARN,
  secretsmanager:GetSecretValue and secretsmanager:DescribeSecret on the connection's secret,
  states:InvokeHTTPEndpoint on "*" with a StringLike condition on states:HTTPEndpoint.
The two secretsmanager actions are real API calls to the emulator made with the identity's key (so moto's
own IAM enforcement applies); the other two are not APIs, so they are evaluated here against the identity's
policies, resources and StringEquals/StringLike conditions included (moto's evaluator knows only
StringEquals: moto/iam/policy_conditions.py, moto 5.2.5).

moto keeps the connection's auth parameters in that secret with snake_case keys (moto/events/models.py
Connection.__init__, moto 5.2.5); AWS does not document its secret's layout, so only this emulator's is read.
"""

from __future__ import annotations

import fnmatch
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentfleet.local import sfn_http_oauth

_STATES_KEY: list[str] = []  # path of the identity key file moto_server writes (see install in sfn_http)
_DENIED_LOG: list[str] = []  # where moto_server records refused calls; refusals here go there too
_LOG_LOCK = threading.Lock()


class Refused(Exception):
    """An HTTP Task step that AWS would refuse: `error` is the state's error name, `cause` the reason."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(f"{error}: {cause}")
        self.error, self.cause = error, cause


def iam_enforced() -> bool:
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    return ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT


def identity_key() -> str | None:
    """The access key id state machines run as (moto_server.state_machines_run_as), if any."""
    if not _STATES_KEY:
        return None
    try:
        return str(json.loads(Path(_STATES_KEY[0]).read_text(encoding="utf-8"))["access_key_id"])
    except (OSError, ValueError, KeyError):
        return None


def _statements(account: str) -> list[dict[str, Any]]:
    from moto.iam.access_control import CreateAccessKeyFailure, IAMPolicy, IAMUserAccessKey

    key = identity_key()
    if key is None:
        return []
    try:
        access = IAMUserAccessKey(account_id=account, partition="aws", access_key_id=key, headers={})
    except CreateAccessKeyFailure:
        return []
    out: list[dict[str, Any]] = []
    for policy in access.collect_policies():
        statements = IAMPolicy(policy)._policy_json["Statement"]
        out += statements if isinstance(statements, list) else [statements]
    return out


def _matches(patterns: Any, value: str, *, ignore_case: bool = False) -> bool:
    values = patterns if isinstance(patterns, list) else [patterns]
    if ignore_case:
        return any(fnmatch.fnmatchcase(value.lower(), str(p).lower()) for p in values)
    return any(fnmatch.fnmatchcase(value, str(p)) for p in values)


def _conditions_hold(conditions: dict[str, Any], context: dict[str, str]) -> bool:
    """StringEquals / StringLike on the given keys; any other operator cannot be evaluated here, so
    the statement is not applied (an Allow then grants nothing: strict, never more lenient than AWS)."""
    for operator, keys in conditions.items():
        if operator not in ("StringEquals", "StringLike"):
            return False
        for key, expected in keys.items():
            actual = context.get(key)
            if actual is None:
                return False
            wanted = expected if isinstance(expected, list) else [expected]
            if operator == "StringEquals" and actual not in wanted:
                return False
            if operator == "StringLike" and not _matches(wanted, actual):
                return False
    return True


def authorize(account: str, action: str, resource: str, context: dict[str, str] | None = None) -> None:
    """Raise Refused unless the state machine identity's policies allow `action` on `resource`."""
    if not iam_enforced():
        return
    allowed = False
    for st in _statements(account):
        if not _matches(st.get("Action", []), action, ignore_case=True) or "NotAction" in st:
            continue
        if not _matches(st.get("Resource", []), resource):
            continue
        if not _conditions_hold(st.get("Condition", {}), context or {}):
            continue
        if st.get("Effect") == "Deny":
            allowed = False
            break
        allowed = True
    if not allowed:
        _record_refusal(action, resource)
        raise Refused("States.Runtime" if action.startswith("states:") else "Events.ConnectionResource.AccessDenied",
                      f"The state machine's role is not authorized to perform {action} on {resource}")


def _record_refusal(action: str, resource: str) -> None:
    """The line moto_server.record_refusals writes for a refused API call, for a refused permission check."""
    if not _DENIED_LOG:
        return
    line = {"error": "AccessDeniedError", "action": action.split(":", 1)[1], "target": action,
            "resource": resource, "authorization": f"Credential={identity_key() or 'none'} (state machine)"}
    with _LOG_LOCK, open(_DENIED_LOG[0], "a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")


@dataclass(frozen=True)
class Credentials:
    """What a connection adds to a request: auth header and its invocation parameters."""

    headers: dict[str, str]
    query: dict[str, str]
    body: dict[str, str]


def params_of(items: Any) -> dict[str, str]:
    return {str(p["key"]): str(p["value"]) for p in items or [] if "key" in p}


def credentials(connection_arn: str, client: Callable[[str], Any], timeout: float = 30.0) -> Credentials:
    """Read the connection (authorized first) and its secret as the state machine identity."""
    from botocore.exceptions import ClientError
    from moto.events.models import events_backends

    parts = connection_arn.split(":")
    if len(parts) < 6 or parts[2] != "events" or not parts[5].startswith("connection/"):
        raise Refused("States.Runtime", f"Authentication.ConnectionArn is not a connection ARN: {connection_arn!r}")
    region, account, name = parts[3], parts[4], parts[5].split("/")[1]
    authorize(account, "events:RetrieveConnectionCredentials", connection_arn)
    connection = events_backends[account][region].connections.get(name)
    # A connection created through the local CloudFormation is referenced by an ARN without its uuid
    # (cfn_prep cannot know it before creation); any other ARN must match exactly, as on AWS.
    if connection is None or connection_arn not in (connection.arn, connection.arn.rsplit("/", 1)[0]):
        raise Refused("Events.ConnectionResource.ResourceNotFound", f"Connection {connection_arn} does not exist")
    sm = client("secretsmanager")
    try:
        sm.describe_secret(SecretId=connection.secret_arn)
        secret = json.loads(sm.get_secret_value(SecretId=connection.secret_arn)["SecretString"])
    except ClientError as exc:
        raise Refused("Events.ConnectionResource.AccessDenied",
                      f"Reading the connection's secret {connection.secret_arn} was refused: {exc}") from exc
    invocation = secret.get("invocation_http_parameters") or {}
    headers = params_of(invocation.get("header_parameters"))
    kind = connection.authorization_type
    if kind == "API_KEY":
        headers[secret["api_key_name"]] = secret["api_key_value"]
    elif kind == "BASIC":
        import base64

        pair = f"{secret['username']}:{secret['password']}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    elif kind == "OAUTH_CLIENT_CREDENTIALS":
        headers["Authorization"] = "Bearer " + _oauth(connection_arn, secret, timeout)
    else:
        raise Refused("Events.ConnectionResource.InvalidConnectionState", f"authorization type {kind!r}")
    return Credentials(headers, params_of(invocation.get("query_string_parameters")),
                       params_of(invocation.get("body_parameters")))


def _oauth(connection_arn: str, secret: dict[str, Any], timeout: float) -> str:
    client = secret.get("client_parameters") or {}
    extra = secret.get("o_auth_http_parameters") or {}
    request = sfn_http_oauth.TokenRequest(
        str(secret.get("authorization_endpoint", "")), str(secret.get("http_method", "POST")),
        str(client.get("client_id", "")), str(client.get("client_secret", "")),
        params_of(extra.get("header_parameters")), params_of(extra.get("query_string_parameters")),
        params_of(extra.get("body_parameters")))
    try:
        return sfn_http_oauth.token(connection_arn, request, timeout)
    except sfn_http_oauth.TokenRefused as exc:
        raise Refused("Events.ConnectionResource.AuthorizationFailed", str(exc)) from exc
