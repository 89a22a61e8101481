"""Retries with exponential backoff and full jitter, for calls whose failure must not lose work.

botocore already retries inside each call (standard mode); this layer sits on top for the
calls where giving up is worse than waiting (starting an action, writing an audit record).
`sleep` and `rand` are injectable so tests do not wait.
"""

from __future__ import annotations

import decimal
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


# Errors a retry cannot fix: the request itself is wrong for the service. DynamoDB answers
# ValidationException for an item over 400 KB, a key over 2048 bytes (partition) / 1024 bytes
# (sort), or a number outside its range (DynamoDB developer guide, "Constraints in Amazon
# DynamoDB", Constraints.html: Items, Partition keys and sort keys, Data types); boto3 refuses
# before sending a number DynamoDB cannot hold
# (boto3/dynamodb/types.py DYNAMODB_CONTEXT: prec=38, Emin=-128, Emax=126, trapping Inexact,
# Rounded, Overflow, Underflow, Clamped; TypeError for Infinity and NaN; boto3 1.44.5).
PERMANENT_CODES = frozenset({"ValidationException", "SerializationException", "InvalidExecutionInput",
                             "InvalidParameterValueException", "ItemCollectionSizeLimitExceededException"})


def is_permanent(exc: BaseException) -> bool:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "")) in PERMANENT_CODES
    return isinstance(exc, decimal.DecimalException | TypeError)


def explain(exc: BaseException) -> str:
    """A short, readable reason for a recorded failure."""
    if isinstance(exc, decimal.DecimalException):
        return ("unstorable_number: DynamoDB numbers hold at most 38 significant digits with magnitude "
                f"1E-130 to 9.99E+125 (decimal.{type(exc).__name__})")
    if isinstance(exc, TypeError) and "Infinity" in str(exc):
        return "unstorable_number: DynamoDB cannot store Infinity or NaN"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'ClientError')}: {error.get('Message', '')}"[:400]
    return f"{type(exc).__name__}: {exc}"[:400]


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
