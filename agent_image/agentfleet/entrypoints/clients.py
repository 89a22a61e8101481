"""The worker's AWS clients and the settings it cannot run without (for entrypoints/worker.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentfleet.spec.catalog import ConfigError
from agentfleet.spec.settings import Settings

_REQUIRED = ("stream_name", "leases_table", "memory_table", "audit_table", "state_machine_arn")


@dataclass
class Clients:
    """The AWS clients a worker uses, made once at start (endpoint from AWS_ENDPOINT_URL).

    The main loop's clients (kinesis, leases_dynamodb, cloudwatch) make one attempt per call with
    short timeouts: the loop's own schedule is their retry, so no backoff sleep ever holds up lease
    renewal, reading or a stop. The batch and quarantine threads' clients (dynamodb, sfn, s3)
    retry as the factory does (agentfleet.ops.aws, plus agentfleet.ops.retry on top).
    """

    kinesis: Any
    dynamodb: Any
    sfn: Any
    cloudwatch: Any = None
    autoscaling: Any = None
    s3: Any = None  # where quarantined / failed records' bytes go
    leases_dynamodb: Any = None  # the loop's DynamoDB client (leases); None = `dynamodb`

    @classmethod
    def create(cls, settings: Settings) -> Clients:
        from botocore.config import Config

        from agentfleet.ops.aws import client

        loop = Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=2, read_timeout=5)
        return cls(client("kinesis", config=loop), client("dynamodb"), client("stepfunctions"),
                   client("cloudwatch", config=loop) if settings.metrics_mode == "put" else None,
                   client("autoscaling") if settings.termination_hook_name else None,
                   client("s3") if quarantine_bucket(settings) else None,
                   client("dynamodb", config=loop))


def quarantine_bucket(settings: Settings) -> str:
    return settings.quarantine_bucket or settings.cache_bucket


def check_settings(settings: Settings) -> None:
    missing = [name for name in _REQUIRED if not getattr(settings, name)]
    if missing:
        raise ConfigError(f"worker settings missing: {missing} (set AGENTFLEET_<NAME> or the config document)")
    if not settings.agents:
        raise ConfigError("worker settings define no agents")
