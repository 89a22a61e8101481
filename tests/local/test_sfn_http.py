"""The HTTP Task's request building, without an emulator: merging, encodings, refusals."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from agentfleet.local import sfn_http
from agentfleet.local.sfn_http_auth import Credentials, Refused, _conditions_hold

NO_CREDS = Credentials({}, {}, {})


def params(**extra: Any) -> dict[str, Any]:
    return {"ApiEndpoint": "https://api.example.com/x", "Method": "POST",
            "Authentication": {"ConnectionArn": "arn:aws:events:us-east-1:123456789012:connection/c/u"}, **extra}


def test_the_connections_parameters_win_over_the_tasks() -> None:
    creds = Credentials({"Authorization": "Bearer conn"}, {"team": "conn"}, {"routing_key": "conn"})
    built = sfn_http.build_request(params(Headers={"authorization": "Bearer task", "X-Task": "1"},
                                          QueryParameters={"team": "task", "env": "prod"},
                                          RequestBody={"routing_key": "task", "a": 1}), creds)
    assert built["headers"] == {"X-Task": "1", "Authorization": "Bearer conn", "Content-Type": "application/json"}
    assert built["params"] == {"team": "conn", "env": "prod"}
    assert built["data"] == b'{"routing_key": "conn", "a": 1}'


@pytest.mark.parametrize(("array_format", "encoded"), [
    ("BRACKETS", "a%5B%5D=x&a%5B%5D=y&n=1"), ("REPEAT", "a=x&a=y&n=1"), ("COMMAS", "a=x%2Cy&n=1"),
    ("INDICES", "a%5B0%5D=x&a%5B1%5D=y&n=1"),
])
def test_url_encoded_bodies_follow_the_array_format(array_format: str, encoded: str) -> None:
    transform = {"RequestBodyEncoding": "URL_ENCODED", "RequestEncodingOptions": {"ArrayFormat": array_format}}
    built = sfn_http.build_request(params(RequestBody={"a": ["x", "y"], "n": 1}, Transform=transform), NO_CREDS)
    assert built["data"] == encoded.encode()
    assert built["headers"]["Content-Type"] == "application/x-www-form-urlencoded"


def test_a_string_body_is_sent_as_is() -> None:
    built = sfn_http.build_request(params(RequestBody="raw text", Headers={"Content-Type": "text/plain"}), NO_CREDS)
    assert (built["data"], built["headers"]) == (b"raw text", {"Content-Type": "text/plain"})


@pytest.mark.parametrize(("bad", "says"), [
    ({"ApiEndpoint": "http://example.com/x"}, "https"),
    ({"Method": "FETCH"}, "Method"),
    ({"Authentication": {}}, "ConnectionArn"),
    ({"Url": "https://x"}, "not supported"),
])
def test_bad_parameters_are_refused_before_any_call(bad: dict[str, Any], says: str) -> None:
    with pytest.raises(Refused) as info:
        sfn_http.invoke(params(**bad), "us-east-1", "arn:aws:states:us-east-1:123456789012:stateMachine:m")
    assert info.value.error == "States.Runtime" and says in info.value.cause


def test_an_unknown_body_encoding_is_refused() -> None:
    with pytest.raises(Refused, match="RequestBodyEncoding"):
        sfn_http.build_request(params(Transform={"RequestBodyEncoding": "GZIP"}), NO_CREDS)


def test_the_output_decodes_json_and_lists_header_values() -> None:
    response = requests.Response()
    response.status_code, response._content = 201, b'{"id": 7}'
    response.headers.update({"Content-Type": "application/json"})
    assert sfn_http.output_of(response) == {"Headers": {"Content-Type": ["application/json"]},
                                            "ResponseBody": {"id": 7}, "StatusCode": 201, "StatusText": "Created"}
    response._content, response.headers["Content-Type"] = b"plain", "text/plain"
    assert sfn_http.output_of(response)["ResponseBody"] == "plain"


def test_conditions_are_evaluated_and_unknown_operators_never_allow() -> None:
    like = {"StringLike": {"states:HTTPEndpoint": "https://api.example.com/*"}}
    assert _conditions_hold(like, {"states:HTTPEndpoint": "https://api.example.com/x"})
    assert not _conditions_hold(like, {"states:HTTPEndpoint": "https://evil.example.com/x"})
    assert not _conditions_hold({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"aws:SourceIp": "10.0.0.1"})


def test_the_method_condition_aws_cdk_grants_needs_the_method_in_the_context() -> None:
    # aws-cdk-lib 2.275 HttpInvoke (and constructs/actions.py) conditions InvokeHTTPEndpoint on both keys.
    cdk = {"StringEquals": {"states:HTTPEndpoint": "https://api.example.com/x", "states:HTTPMethod": "POST"}}
    assert _conditions_hold(cdk, {"states:HTTPEndpoint": "https://api.example.com/x", "states:HTTPMethod": "POST"})
    assert not _conditions_hold(cdk, {"states:HTTPEndpoint": "https://api.example.com/x", "states:HTTPMethod": "PUT"})
    assert not _conditions_hold(cdk, {"states:HTTPEndpoint": "https://api.example.com/x"})
