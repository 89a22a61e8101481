"""Retries with exponential backoff and full jitter, for calls whose failure must not lose work.

botocore already retries inside each call (standard mode); this layer sits on top for the
calls where giving up is worse than waiting (starting an action, writing an audit record).
`sleep` and `rand` are injectable so tests do not wait.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from agentfleet.ops import logs

T = TypeVar("T")
log = logs.get(__name__)

THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException", "RequestLimitExceeded",
    "TransactionInProgressException", "SlowDown", "LimitExceededException", "RequestThrottled",
})


def is_retryable(exc: BaseException) -> bool:
    """Throttling, any 5xx, and connection-level failures; never a client error like validation."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return code in THROTTLING_CODES or status >= 500
    return isinstance(exc, BotoConnectionError | HTTPClientError)


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` tries in all; the n-th wait is uniform in [0, min(cap, base * 2**n)] (full jitter)."""

    attempts: int = 8
    base_seconds: float = 0.1
    cap_seconds: float = 10.0

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        return rand() * min(self.cap_seconds, self.base_seconds * (2 ** attempt))


DEFAULT_POLICY = RetryPolicy()


def call(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy = DEFAULT_POLICY,
    what: str = "call",
    sleep: Callable[[float], None] = time.sleep,
    rand: Callable[[], float] = random.random,
    retryable: Callable[[BaseException], bool] = is_retryable,
) -> T:
    """Run `fn`, retrying retryable failures; the last failure is re-raised."""
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            attempt += 1
            if attempt >= policy.attempts or not retryable(exc):
                raise
            wait = policy.delay(attempt - 1, rand)
            log.warning("retrying", extra={"what": what, "attempt": attempt, "wait_ms": round(wait * 1000, 1),
                                           "error": f"{type(exc).__name__}: {exc}"})
            sleep(wait)
