"""The one AWS client factory.

The endpoint comes from the standard `AWS_ENDPOINT_URL` setting (boto3 reads it), so the
same code talks to AWS or to the embedded emulator. Retries use botocore's standard
mode (exponential backoff with jitter on throttling and 5xx); callers that need their
own policy on top (dispatch) use `agentfleet.ops.retry`.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 8},
    connect_timeout=5,
    read_timeout=30,
    user_agent_extra="agentfleet/0.1",
)

def client(service: str, **overrides: Any) -> Any:
    """A boto3 client with the fleet's retry and timeout policy."""
    config = _CONFIG.merge(overrides.pop("config")) if "config" in overrides else _CONFIG
    # A fresh session per client: clients are made once at start, and a session
    # reads AWS_ENDPOINT_URL and credentials from the environment when it is created.
    return boto3.session.Session().client(service, config=config, **overrides)


def read_ssm_parameter(name: str) -> str:
    """The value of an SSM parameter (the runtime config document: `AGENTFLEET_CONFIG=ssm:/name`)."""
    return str(client("ssm").get_parameter(Name=name)["Parameter"]["Value"])
