"""OAuth client-credentials tokens for an EventBridge connection of type OAUTH_CLIENT_CREDENTIALS,
fetched from the connection's authorization endpoint and cached per connection until they expire."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

_TOKENS: dict[str, tuple[str, float]] = {}  # connection ARN -> (access token, expiry on time.monotonic)
_TOKEN_LOCK = threading.Lock()


class TokenRefused(Exception):
    """The authorization endpoint gave no token (the reason says why)."""


@dataclass(frozen=True)
class TokenRequest:
    """The connection's OAuthParameters, as read from its secret."""

    endpoint: str
    method: str
    client_id: str
    client_secret: str
    headers: dict[str, str]
    query: dict[str, str]
    body: dict[str, str]


def token(connection_arn: str, request: TokenRequest, timeout: float) -> str:
    """The client id/secret go as HTTP Basic (RFC 6749 section 2.3.1), the connection's
    OAuthHttpParameters as given; EventBridge's exact token request is not documented in what we could read."""
    with _TOKEN_LOCK:
        cached = _TOKENS.get(connection_arn)
        if cached and cached[1] > time.monotonic():
            return cached[0]
    where = urlsplit(request.endpoint)
    if where.scheme != "https" and not (where.scheme == "http" and where.hostname in ("127.0.0.1", "localhost")):
        raise TokenRefused("the authorization endpoint must be https (http only to loopback here)")
    response = requests.request(request.method, request.endpoint, auth=(request.client_id, request.client_secret),
                                headers=request.headers, params=request.query, data=request.body, timeout=timeout)
    try:
        answer = response.json()
        access = str(answer["access_token"])
    except (ValueError, KeyError, TypeError):
        raise TokenRefused(f"authorization endpoint answered {response.status_code}: {response.text[:200]}") from None
    if response.status_code // 100 != 2:
        raise TokenRefused(f"authorization endpoint answered {response.status_code}")
    expires = float(answer.get("expires_in", 3600))
    with _TOKEN_LOCK:
        _TOKENS[connection_arn] = (access, time.monotonic() + max(0.0, expires - 30))
    return access
