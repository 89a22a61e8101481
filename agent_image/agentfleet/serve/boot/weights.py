"""Model weights onto local disk: from the S3 mirror when configured, else from the Hugging Face hub.

The hub token is read from Secrets Manager at the moment it is needed and passed to the
download call only: it never sits in user data, the environment or a log line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentfleet.ops import logs
from agentfleet.spec.settings import Settings

log = logs.get(__name__)


def hf_token(secrets_client: Any, secret_id: str) -> str:
    value = secrets_client.get_secret_value(SecretId=secret_id).get("SecretString") or ""
    token = value.strip()
    if not token:
        raise ValueError(f"secret {secret_id!r} holds no Hugging Face token (SecretString is empty)")
    return token


def from_s3_mirror(s3_client: Any, bucket: str, prefix: str, dest: Path) -> Path:
    """Copy every object under s3://bucket/prefix into dest, keeping relative paths."""
    prefix = prefix.rstrip("/") + "/"
    count = total = 0
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            relative = obj["Key"][len(prefix):]
            if not relative or relative.endswith("/"):
                continue
            if ".." in Path(relative).parts:
                raise ValueError(f"refusing weight object with unsafe key {obj['Key']!r}")
            target = dest / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            s3_client.download_file(bucket, obj["Key"], str(target))
            count, total = count + 1, total + int(obj.get("Size", 0))
    if count == 0:
        raise FileNotFoundError(f"weights mirror s3://{bucket}/{prefix} is empty")
    log.info("weights fetched from s3 mirror", extra={"objects": count, "bytes": total, "prefix": prefix})
    return dest


def from_hub(model_id: str, revision: str, dest: Path, token: str | None) -> Path:
    from huggingface_hub import snapshot_download

    snapshot_download(repo_id=model_id, revision=revision, local_dir=str(dest), token=token)
    log.info("weights fetched from the hub", extra={"model_id": model_id, "revision": revision})
    return dest


def fetch_weights(settings: Settings, dest: Path, *, s3_client: Any, secrets_client: Any | None) -> Path:
    """Weights of settings.model_id@model_revision in dest (reused when a previous fetch finished)."""
    done = dest / ".agentfleet-weights-complete"
    if done.is_file():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    if settings.weights_prefix:
        from_s3_mirror(s3_client, settings.cache_bucket, settings.weights_prefix, dest)
    else:
        token = None
        if settings.hf_token_secret_id:
            if secrets_client is None:
                raise ValueError("hf_token_secret_id is set but no Secrets Manager client was given")
            token = hf_token(secrets_client, settings.hf_token_secret_id)
        from_hub(settings.model_id, settings.model_revision, dest, token)
    done.write_text(f"{settings.model_id}@{settings.model_revision}\n", encoding="utf-8")
    return dest
