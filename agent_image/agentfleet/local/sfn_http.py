"""The Step Functions HTTP Task (`arn:aws:states:::http:invoke`) for moto's state machine interpreter.

moto 5.2.5 has no such service: state_task_service_for (moto/stepfunctions/parser/asl/component/state/
exec/state_task/service/state_task_service_factory.py) raises "Unknown service 'http'". `install()`
wraps that factory (and the name state_task_factory.py imported from it) so "http" gets HttpTask.

Behaviour, from "Call HTTPS APIs in Step Functions workflows"
(https://docs.aws.amazon.com/step-functions/latest/dg/call-https-apis.html) and, where that page's
text could not be read in full, aws-cdk-lib 2.275 aws-stepfunctions-tasks/lib/http/invoke.js (the
HttpInvoke task that renders these Parameters):
- Parameters: ApiEndpoint, Method, Authentication.ConnectionArn (required); Headers, QueryParameters,
  RequestBody, Transform {RequestBodyEncoding: "NONE" | "URL_ENCODED",
  RequestEncodingOptions: {ArrayFormat: BRACKETS | COMMAS | INDICES (default) | REPEAT}} (optional).
- Output: {Headers, ResponseBody (JSON-decoded when the answer is JSON), StatusCode, StatusText}; that
  each header's value is a list follows moto's own API Gateway task (state_task_service_api_gateway.py),
  not a page we could read.
- A non-2xx answer fails the state with error "States.Http.StatusCode.<code>" (the name public state
  machines retry and catch on), cause = the response body.
- The connection's header, query string and body parameters are merged in, the connection's values
  taking precedence (stated for API destinations in the EventBridge API reference, HttpParameters).
- Only the request-response pattern (no .sync / .waitForTaskToken suffix).
Credentials and permissions: see sfn_http_auth.

Deviations (local only): plain http:// is accepted for 127.0.0.1 and localhost, so a loopback sink can
answer (AWS requires https); error names for connection problems (Events.ConnectionResource.*) and
socket failures (States.Http.Socket) could not be confirmed from AWS's page text we could read, nor
the list of headers a task may not set (none is refused here; the connection's win anyway). REPEAT
sends key=a&key=b (the CDK's doc comment shows the BRACKETS form for it, which looks like a copy slip).
"""

from __future__ import annotations

import http
import json
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

import requests

from agentfleet.local import sfn_http_auth
from agentfleet.local.sfn_http_auth import Refused

_METHODS: Final = {"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"}
_PARAMETERS: Final = {"ApiEndpoint", "Method", "Authentication", "Headers", "QueryParameters", "RequestBody",
                      "Transform"}
_ARRAY_FORMATS: Final = {"BRACKETS", "COMMAS", "INDICES", "REPEAT"}
TIMEOUT_SECONDS: Final = 60.0


def _form(body: dict[str, Any], array_format: str) -> str:
    """URL-encode a JSON object; arrays as the CDK's URLEncodingFormat documents each style."""
    pairs: list[tuple[str, str]] = []
    for key, value in body.items():
        if not isinstance(value, list):
            pairs.append((key, value if isinstance(value, str) else json.dumps(value)))
        elif array_format == "COMMAS":
            pairs.append((key, ",".join(str(v) for v in value)))
        else:
            for i, item in enumerate(value):
                name = {"BRACKETS": f"{key}[]", "REPEAT": key}.get(array_format, f"{key}[{i}]")
                pairs.append((name, str(item)))
    return urlencode(pairs)


def _check_endpoint(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost"):
        return  # the documented local deviation
    raise Refused("States.Runtime", f"ApiEndpoint must be an https URL (http only to loopback here): {url!r}")


def build_request(params: dict[str, Any], creds: sfn_http_auth.Credentials) -> dict[str, Any]:
    """The `requests` arguments for one invocation (merging the connection's parameters in)."""
    headers = {str(k): str(v) for k, v in (params.get("Headers") or {}).items()}
    for key, value in creds.headers.items():  # the connection wins, whatever the case of the name
        for existing in [k for k in headers if k.lower() == key.lower()]:
            del headers[existing]
        headers[key] = value
    query = {str(k): v for k, v in (params.get("QueryParameters") or {}).items()}
    query.update(creds.query)
    transform = params.get("Transform") or {}
    encoding = transform.get("RequestBodyEncoding", "NONE")
    if encoding not in ("NONE", "URL_ENCODED"):
        raise Refused("States.Runtime", f"Transform.RequestBodyEncoding must be NONE or URL_ENCODED: {encoding!r}")
    array_format = (transform.get("RequestEncodingOptions") or {}).get("ArrayFormat", "INDICES")
    if array_format not in _ARRAY_FORMATS:
        raise Refused("States.Runtime", f"Transform.RequestEncodingOptions.ArrayFormat {array_format!r}")
    body = params.get("RequestBody")
    data: str | None = None
    if body is not None or creds.body:
        if isinstance(body, dict) or body is None:
            merged = {**(body or {}), **creds.body}
            if encoding == "URL_ENCODED":
                data = _form(merged, array_format)
                headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
            else:
                data = json.dumps(merged)
                headers.setdefault("Content-Type", "application/json")
        else:
            data = body if isinstance(body, str) else json.dumps(body)
    return {"method": params["Method"], "url": params["ApiEndpoint"], "headers": headers,
            "params": {k: v if isinstance(v, str) else json.dumps(v) for k, v in query.items()},
            "data": data.encode() if data is not None else None}


def output_of(response: requests.Response) -> dict[str, Any]:
    body: Any = response.text
    if "json" in response.headers.get("Content-Type", "") and body:
        try:
            body = response.json()
        except ValueError:
            pass  # a body that claims JSON but is not stays text
    try:
        text = http.HTTPStatus(response.status_code).phrase
    except ValueError:
        text = response.reason or ""
    return {"Headers": {k: [v] for k, v in response.headers.items()}, "ResponseBody": body,
            "StatusCode": response.status_code, "StatusText": text}


def invoke(params: dict[str, Any], region: str, state_machine_arn: str) -> dict[str, Any]:
    """Validate, authorize, call; returns the task output or raises Refused."""
    from moto.stepfunctions.parser.asl.utils.boto_client import boto_client_for

    unknown = set(params) - _PARAMETERS
    if unknown:
        raise Refused("States.Runtime", f"The field(s) {sorted(unknown)} are not supported by the HTTP Task")
    for name in ("ApiEndpoint", "Method"):
        if not isinstance(params.get(name), str) or not params[name]:
            raise Refused("States.Runtime", f"Parameters.{name} is required (a string)")
    if params["Method"] not in _METHODS:
        raise Refused("States.Runtime", f"Parameters.Method {params['Method']!r} is not one of {sorted(_METHODS)}")
    arn = (params.get("Authentication") or {}).get("ConnectionArn")
    if not isinstance(arn, str) or not arn:
        raise Refused("States.Runtime", "Parameters.Authentication.ConnectionArn is required")
    _check_endpoint(params["ApiEndpoint"])
    account = state_machine_arn.split(":")[4] if state_machine_arn.count(":") >= 5 else arn.split(":")[4]
    sfn_http_auth.authorize(account, "states:InvokeHTTPEndpoint", state_machine_arn or "*",
                            {"states:HTTPEndpoint": params["ApiEndpoint"], "states:HTTPMethod": str(params["Method"])})
    creds = sfn_http_auth.credentials(arn, lambda service: boto_client_for(region=region, service=service),
                                      TIMEOUT_SECONDS)
    try:
        response = requests.request(timeout=TIMEOUT_SECONDS, **build_request(params, creds))
    except requests.RequestException as exc:
        raise Refused("States.Http.Socket", str(exc)) from exc
    if response.status_code // 100 != 2:
        raise Refused(f"States.Http.StatusCode.{response.status_code}", response.text)
    return output_of(response)


def install(states_key: str | None = None, denied_log: str | None = None) -> None:
    """Register "http" in moto's state task factory. Idempotent. `states_key`: the file naming the
    identity state machines run as (moto_server.state_machines_run_as), for the IAM checks;
    `denied_log`: where a refused permission is recorded, as moto_server records refused calls."""
    if states_key:
        sfn_http_auth._STATES_KEY[:] = [states_key]
    if denied_log:
        sfn_http_auth._DENIED_LOG[:] = [denied_log]
    from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.error_name import ErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent, FailureEventException
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_factory
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
        StateTaskServiceCallback,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    if getattr(state_task_service_factory.state_task_service_for, "_agentfleet_http", False):
        return
    real = state_task_service_factory.state_task_service_for
    # moto parses any "States."-prefixed name outside its own list as a custom name and refuses it
    # (custom_error_name.py), so Retry/Catch on "States.Http.StatusCode.429" would not even parse.
    custom_init = CustomErrorName.__init__

    def allow_http_names(self: Any, error_name: str | None) -> None:
        if error_name is not None and error_name.startswith("States.Http."):
            ErrorName.__init__(self, error_name=error_name)
        else:
            custom_init(self, error_name)

    CustomErrorName.__init__ = allow_http_names  # type: ignore[method-assign]

    def error_name(name: str) -> Any:
        return StatesErrorName(StatesErrorNameType.StatesRuntime) if name == "States.Runtime" \
            else CustomErrorName(name)

    class HttpTask(StateTaskServiceCallback):
        """arn:aws:states:::http:invoke, request-response only."""

        def __init__(self) -> None:
            super().__init__(supported_integration_patterns=set())

        def _get_supported_parameters(self) -> set[str] | None:
            return set(_PARAMETERS) if self.resource.api_action == "invoke" else None

        def _eval_service_task(self, env: Any, resource_runtime_part: Any, normalised_parameters: dict[str, Any],
                               state_credentials: Any) -> None:
            machine = env.states.context_object.context_object_data.get("StateMachine", {}).get("Id", "")
            try:
                env.stack.append(invoke(normalised_parameters, resource_runtime_part.region, machine))
            except Refused as exc:
                raise FailureEventException(failure_event=FailureEvent(
                    env=env, error_name=error_name(exc.error), event_type=HistoryEventType.TaskFailed,
                    event_details=EventDetails(taskFailedEventDetails=TaskFailedEventDetails(  # type: ignore[typeddict-item]
                        error=exc.error, cause=exc.cause, resource=self._get_sfn_resource(),
                        resourceType=self._get_sfn_resource_type())))) from exc

    def service_for(service_name: str) -> Any:
        return HttpTask() if service_name == "http" else real(service_name)

    service_for._agentfleet_http = True  # type: ignore[attr-defined]
    state_task_service_factory.state_task_service_for = service_for
    state_task_factory.state_task_service_for = service_for  # it imported the name
