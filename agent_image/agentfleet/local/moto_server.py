"""moto's server with atomic DynamoDB writes and a record of refused calls:
`python -m agentfleet.local.moto_server -H HOST -p PORT`.

moto serves each request on its own thread, and its DynamoDB backend evaluates a write's
ConditionExpression and then applies it with no lock between, so two concurrent conditional
puts can both succeed. Real DynamoDB never allows that, and the fleet's shard leases and compile
lock depend on it. Serializing the backend's write methods restores the guarantee; reads stay
concurrent.

It also runs Step Functions HTTP Tasks (`arn:aws:states:::http:invoke`), which moto 5.2.5 does not:
agentfleet.local.sfn_http, always on, with the connection's credentials read as the state machine's
identity.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from moto.core.authorization import ActionAuthenticatorMixin
from moto.dynamodb.models import DynamoDBBackend
from moto.server import main

_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")
_LOCK = threading.RLock()


def _atomic(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return method(*args, **kwargs)

    return locked


def make_writes_atomic() -> None:
    """Idempotent: wraps each write method once."""
    for name in _WRITES:
        method = getattr(DynamoDBBackend, name)
        if not getattr(method, "_agentfleet_atomic", False):
            wrapped = _atomic(method)
            wrapped._agentfleet_atomic = True  # type: ignore[attr-defined]
            setattr(DynamoDBBackend, name, wrapped)


def record_refusals(path: str) -> None:
    """Wrap moto's one authorization entry point (moto/core/authorization.py, moto 5.2.5) so each
    refusal is written to `path` before it propagates unchanged. Idempotent."""
    method = ActionAuthenticatorMixin._authenticate_and_authorize_action
    if getattr(method, "_agentfleet_recorded", False):
        return

    @functools.wraps(method)
    def recorded(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            method(self, *args, **kwargs)
        except Exception as exc:
            target = self.headers.get("X-Amz-Target") or ""
            line = {"error": type(exc).__name__, "action": self._get_action(), "target": target,
                    "authorization": (self.headers.get("Authorization") or "")[:120]}
            with _LOCK, open(path, "a", encoding="utf-8") as out:
                out.write(json.dumps(line) + "\n")
            raise

    recorded._agentfleet_recorded = True  # type: ignore[attr-defined]
    ActionAuthenticatorMixin._authenticate_and_authorize_action = recorded  # type: ignore[method-assign]


def state_machines_run_as(path: str) -> None:
    """moto runs a state machine's service integrations (DynamoDB putItem, SNS publish, ...) through
    boto3 with the fixed key "ak" (moto/stepfunctions/parser/asl/utils/boto_client.py, moto 5.2.5), which
    an IAM-enforcing server refuses. On AWS they run as the state machine's role, so run them as the
    identity whose key the fleet driver writes to `path` (a user carrying that role's synthesized
    policies); until the file exists, the fixed key is used (and refused under IAM)."""
    from moto.stepfunctions.parser.asl.utils import boto_client

    real = boto_client.boto3

    class _Boto3:
        @staticmethod
        def client(**kwargs: Any) -> Any:
            try:
                key = json.loads(Path(path).read_text(encoding="utf-8"))
                kwargs.update(aws_access_key_id=key["access_key_id"], aws_secret_access_key=key["secret_access_key"])
            except (OSError, ValueError, KeyError):
                pass
            return real.client(**kwargs)

    boto_client.boto3 = _Boto3


if __name__ == "__main__":
    from agentfleet.local import sfn_http

    make_writes_atomic()
    sfn_http.install(os.environ.get("AGENTFLEET_STATE_MACHINE_KEY"), os.environ.get("AGENTFLEET_DENIED_LOG"))
    if os.environ.get("AGENTFLEET_STATE_MACHINE_KEY"):
        state_machines_run_as(os.environ["AGENTFLEET_STATE_MACHINE_KEY"])
    if os.environ.get("AGENTFLEET_DENIED_LOG"):
        record_refusals(os.environ["AGENTFLEET_DENIED_LOG"])
    main()
