"""This instance as EC2 and Auto Scaling see it: an IMDSv2 client and the Auto Scaling calls it makes
about itself (CompleteLifecycleAction, RecordLifecycleActionHeartbeat, SetInstanceHealth).

Parameter names and values are botocore 1.44's autoscaling 2011-01-01 service model: the heartbeat
takes AutoScalingGroupName + LifecycleHookName (required) and InstanceId, and "extends the timeout by
the length of time defined using the PutLifecycleHook API call" (HeartbeatTimeout, 30..7200 s);
SetInstanceHealth takes InstanceId + HealthStatus (required; "Unhealthy ... Amazon EC2 Auto Scaling
terminates and replaces the unhealthy instance") and ShouldRespectGracePeriod (boolean; False = act
even inside the group's HealthCheckGracePeriod).

IMDSv2 needs a session token (PUT /latest/api/token with a TTL header) on every read; the
token is cached and refreshed before it expires, and once more if IMDS answers 401.
Off EC2 (local mode, tests) IMDS does not answer: reads return None after one warning, so
callers treat "no metadata" like "not on EC2" instead of crashing.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from agentfleet.ops import logs

log = logs.get(__name__)

DEFAULT_BASE_URL = "http://169.254.169.254"
# The variable the AWS SDKs read for a non-default IMDS endpoint (tests, IMDS in containers).
ENV_ENDPOINT = "AWS_EC2_METADATA_SERVICE_ENDPOINT"
# IMDS protocol names, not secrets.
TOKEN_PATH = "/latest/api/token"  # noqa: S105
TOKEN_TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"  # noqa: S105
TOKEN_HEADER = "X-aws-ec2-metadata-token"  # noqa: S105
LIFECYCLE_RESULTS = ("CONTINUE", "ABANDON")
UNHEALTHY = "Unhealthy"
_ALREADY_DONE = "No active Lifecycle Action found"


class InstanceMetadataError(RuntimeError):
    """IMDS answered with something other than data or 404 (IMDS disabled, throttled, broken)."""


class InstanceMetadata:
    """IMDSv2 reads with a cached session token; the HTTP opener, clock and timeout are injectable."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        opener: urllib.request.OpenerDirector | None = None,
        timeout: float = 1.0,
        token_ttl_seconds: int = 21600,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 1 <= token_ttl_seconds <= 21600:
            raise ValueError(f"token_ttl_seconds must be 1..21600 (IMDS limit), got {token_ttl_seconds}")
        self.base_url = (base_url or os.environ.get(ENV_ENDPOINT) or DEFAULT_BASE_URL).rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"IMDS endpoint must be an http(s) URL, got {self.base_url!r}")
        # No proxy: a proxy from the environment must never see the link-local metadata address.
        self._opener = opener or urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._timeout = timeout
        self._ttl = token_ttl_seconds
        self._clock = clock
        self._token: str | None = None
        self._token_expires = 0.0
        self._warned_unreachable = False

    # -- public reads ---------------------------------------------------------------------------
    def instance_id(self) -> str | None:
        return self.get("meta-data/instance-id")

    def region(self) -> str | None:
        return self.get("meta-data/placement/region")

    def instance_type(self) -> str | None:
        return self.get("meta-data/instance-type")

    def target_lifecycle_state(self) -> str | None:
        """InService, Terminated, Warmed:*, ... as Auto Scaling wants this instance to become."""
        return self.get("meta-data/autoscaling/target-lifecycle-state")

    def spot_interruption(self) -> dict[str, Any] | None:
        """The Spot notice (`{"action": "terminate"|"stop"|"hibernate", "time": ISO-8601}`), None if none."""
        text = self.get("meta-data/spot/instance-action")
        if text is None:
            return None
        try:
            notice = json.loads(text)
        except json.JSONDecodeError:
            raise InstanceMetadataError(f"spot/instance-action is not JSON: {text[:200]!r}") from None
        if not isinstance(notice, dict) or "action" not in notice:
            raise InstanceMetadataError(f"spot/instance-action has no 'action': {text[:200]!r}")
        return notice

    def get(self, path: str) -> str | None:
        """GET /latest/<path>; None on 404 or when IMDS is unreachable."""
        for attempt in (1, 2):
            token = self._session_token()
            if token is None:
                return None
            status, body = self._request("GET", f"/latest/{path.lstrip('/')}", {TOKEN_HEADER: token})
            if status == 200:
                return body
            if status == 404:
                return None
            if status == 401 and attempt == 1:
                self._token = None  # revoked or expired early: one fresh token, then give up
                continue
            if status == -1:
                return None
            raise InstanceMetadataError(f"IMDS GET {path} answered HTTP {status}: {body[:200]!r}")
        raise InstanceMetadataError(f"IMDS GET {path} rejected a fresh token (HTTP 401)")

    # -- token and transport --------------------------------------------------------------------
    def _session_token(self) -> str | None:
        # Refresh a minute early (or at half-life for short TTLs) so a token never expires mid-read.
        margin = min(60.0, self._ttl / 2)
        if self._token is not None and self._clock() < self._token_expires - margin:
            return self._token
        now = self._clock()
        status, body = self._request("PUT", TOKEN_PATH, {TOKEN_TTL_HEADER: str(self._ttl)})
        if status == -1:
            return None
        if status != 200 or not body:
            raise InstanceMetadataError(f"IMDS token PUT answered HTTP {status}: {body[:200]!r}")
        self._token, self._token_expires = body.strip(), now + self._ttl
        return self._token

    def _request(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
        """(status, body); status -1 means IMDS did not answer at all (not on EC2, hop limit)."""
        # base_url is checked to be http(s) in __init__.
        request = urllib.request.Request(self.base_url + path, method=method, headers=headers)  # noqa: S310
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                return int(response.status), response.read().decode("utf-8")
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError) as exc:
            if not self._warned_unreachable:
                self._warned_unreachable = True
                log.warning("instance metadata unreachable; treating as not on EC2",
                            extra={"imds": self.base_url, "reason": str(exc)})
            return -1, ""


def complete_lifecycle_action(
    asg_client: Any, *, asg_name: str, hook_name: str, instance_id: str, result: str
) -> None:
    """Tell Auto Scaling the pending lifecycle action is done: CONTINUE (in service / may
    terminate) or ABANDON (replace me). An action already completed or timed out is not an error."""
    if result not in LIFECYCLE_RESULTS:
        raise ValueError(f"lifecycle result must be one of {LIFECYCLE_RESULTS}, got {result!r}")
    missing = [name for name, value in (("asg_name", asg_name), ("hook_name", hook_name),
                                        ("instance_id", instance_id)) if not value]
    if missing:
        raise ValueError(f"complete_lifecycle_action needs {', '.join(missing)}")
    from botocore.exceptions import ClientError

    fields = {"asg": asg_name, "hook": hook_name, "instance_id": instance_id, "result": result}
    try:
        asg_client.complete_lifecycle_action(
            AutoScalingGroupName=asg_name, LifecycleHookName=hook_name,
            InstanceId=instance_id, LifecycleActionResult=result,
        )
    except ClientError as exc:
        message = str(exc.response.get("Error", {}).get("Message", ""))
        if _ALREADY_DONE in message:
            log.info("lifecycle action already completed or expired", extra={**fields, "aws_message": message})
            return
        raise
    log.info("lifecycle action completed", extra=fields)


def record_lifecycle_heartbeat(asg_client: Any, *, asg_name: str, hook_name: str, instance_id: str) -> bool:
    """Extend the pending lifecycle action by one HeartbeatTimeout. False when there is no action any
    more (completed, or timed out: then the hook's default result already decided)."""
    from botocore.exceptions import ClientError

    try:
        asg_client.record_lifecycle_action_heartbeat(
            AutoScalingGroupName=asg_name, LifecycleHookName=hook_name, InstanceId=instance_id)
    except ClientError as exc:
        message = str(exc.response.get("Error", {}).get("Message", ""))
        if _ALREADY_DONE in message:
            log.info("no lifecycle action to heartbeat", extra={"asg": asg_name, "hook": hook_name,
                                                                 "aws_message": message})
            return False
        raise
    return True


def set_unhealthy(asg_client: Any, *, instance_id: str, reason: str) -> None:
    """Ask Auto Scaling to replace this instance now (not after the health-check grace period)."""
    if not instance_id:
        raise ValueError("set_unhealthy needs instance_id")
    asg_client.set_instance_health(InstanceId=instance_id, HealthStatus=UNHEALTHY, ShouldRespectGracePeriod=False)
    log.error("instance marked unhealthy", extra={"instance_id": instance_id, "reason": reason})
