"""Test helpers over the session's server-mode emulator (tests/conftest.py `emulator`, `aws_env`)."""

from __future__ import annotations

from typing import Any

import boto3

from agentfleet.local import emulator as emulator_mod


def stream_and_secret(emulator: emulator_mod.Emulator, stream: str, shards: int,
                      secret: tuple[str, str] | None = None, absent: tuple[str, ...] = ()) -> dict[str, Any]:
    """One fresh Kinesis stream and, if given, one fresh Secrets Manager secret (name, value) in the
    session's emulator, replacing any a previous test left under those names (nothing else is touched:
    the emulator is shared), with the secrets named in `absent` removed (code under test creates them);
    boto3 clients for both, over loopback HTTP (use with the `aws_env` fixture)."""
    kinesis, secrets = boto3.client("kinesis"), boto3.client("secretsmanager")
    if stream in kinesis.list_streams()["StreamNames"]:
        kinesis.delete_stream(StreamName=stream, EnforceConsumerDeletion=True)
        kinesis.get_waiter("stream_not_exists").wait(StreamName=stream, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    kinesis.create_stream(StreamName=stream, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    existing = {s["Name"] for s in secrets.list_secrets()["SecretList"]}
    for name in {*absent, *([secret[0]] if secret else [])} & existing:
        secrets.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    if secret is not None:
        secrets.create_secret(Name=secret[0], SecretString=secret[1])
    return {"kinesis": kinesis, "secrets": secrets}
