"""Model weights onto local disk: from the S3 mirror when configured, else from the Hugging Face hub.

The hub token is read from Secrets Manager at the moment it is needed and passed to the
download call only: it never sits in user data, the environment or a log line.

Only what a server loads is fetched (SERVED_FILES): safetensors shards and their index, the configs
(config.json, generation_config.json), the tokenizer files. Model repositories often also carry
`original/` PyTorch checkpoints, GGUF or ONNX copies that would double the download. The same
patterns filter the hub (huggingface_hub 2.4 `snapshot_download(allow_patterns=...)`: "only files
matching at least one pattern are downloaded", `utils/_paths.py filter_repo_objects`: fnmatchcase
on the whole path) and the S3 mirror (the same match on the key below the prefix), so both fetch
the same files.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from agentfleet.ops import logs
from agentfleet.spec.settings import Settings

log = logs.get(__name__)

SERVED_FILES = (
    "*.safetensors", "*.safetensors.index.json",  # weights (vLLM and transformers load safetensors)
    "config.json", "generation_config.json",
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "tokenizer.model", "vocab.json", "merges.txt", "*.tiktoken", "chat_template.jinja", "chat_template.json",
)
SKIPPED_DIRS = ("original/",)  # Meta's consolidated .pth checkpoints and their duplicate tokenizer


def served(relative: str) -> bool:
    """Does a server need this repository file? (relative path, "/" separated)"""
    if relative.startswith(SKIPPED_DIRS):
        return False
    return any(fnmatchcase(relative, pattern) for pattern in SERVED_FILES)  # as the hub's filter matches


def hf_token(secrets_client: Any, secret_id: str) -> str:
    value = secrets_client.get_secret_value(SecretId=secret_id).get("SecretString") or ""
    token = value.strip()
    if not token:
        raise ValueError(f"secret {secret_id!r} holds no Hugging Face token (SecretString is empty)")
    return token


def from_s3_mirror(s3_client: Any, bucket: str, prefix: str, dest: Path) -> Path:
    """Copy the objects under s3://bucket/prefix that a server needs (`served`) into dest."""
    prefix = prefix.rstrip("/") + "/"
    count = total = skipped = 0
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            relative = obj["Key"][len(prefix):]
            if not relative or relative.endswith("/"):
                continue
            if ".." in Path(relative).parts:
                raise ValueError(f"refusing weight object with unsafe key {obj['Key']!r}")
            if not served(relative):
                skipped += 1
                continue
            target = dest / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            s3_client.download_file(bucket, obj["Key"], str(target))
            count, total = count + 1, total + int(obj.get("Size", 0))
    if count == 0:
        raise FileNotFoundError(f"weights mirror s3://{bucket}/{prefix} is empty (or holds no "
                                f"{', '.join(SERVED_FILES[:2])} / config files)")
    if not any(dest.rglob("*.safetensors")):
        raise FileNotFoundError(f"weights mirror s3://{bucket}/{prefix} has no *.safetensors file")
    log.info("weights fetched from s3 mirror", extra={"objects": count, "bytes": total, "prefix": prefix,
                                                       "skipped_objects": skipped})
    return dest


def from_hub(model_id: str, revision: str, dest: Path, token: str | None) -> Path:
    from huggingface_hub import snapshot_download

    snapshot_download(repo_id=model_id, revision=revision, local_dir=str(dest), token=token,
                      allow_patterns=list(SERVED_FILES), ignore_patterns=[d + "*" for d in SKIPPED_DIRS])
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
