"""moto's server with atomic DynamoDB writes: `python -m agentfleet.local.moto_server -H HOST -p PORT`.

moto serves each request on its own thread, and its DynamoDB backend evaluates a write's
ConditionExpression and then applies it with no lock between, so two concurrent conditional
puts can both succeed. Real DynamoDB never allows that, and the fleet's shard leases and compile
lock depend on it. Serializing the backend's write methods restores the guarantee; reads stay
concurrent.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

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


if __name__ == "__main__":
    make_writes_atomic()
    main()
