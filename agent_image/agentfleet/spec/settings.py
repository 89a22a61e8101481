"""Runtime settings, resolved once at start: explicit argument > environment > config document > default.

The config document is the JSON the stack writes to an SSM parameter (agents, model,
resource names); `AGENTFLEET_CONFIG` points at it as `ssm:/name` or a file path. Local
mode and tests write the same document to a file. Environment names are constants here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from agentfleet.spec.catalog import AgentSpec, ConfigError, parse_agents

ENV_PREFIX = "AGENTFLEET_"
ENV_CONFIG = "AGENTFLEET_CONFIG"


@dataclass(frozen=True)
class Settings:
    """Everything a worker needs; one instance per process, built by `resolve`."""

    fleet_name: str = "agentfleet"
    stream_name: str = ""
    memory_table: str = ""
    leases_table: str = ""
    audit_table: str = ""
    state_machine_arn: str = ""
    cache_bucket: str = ""
    quarantine_bucket: str = ""  # where quarantined/failed records' bytes are kept; "" = cache_bucket
    quarantine_prefix: str = "quarantine/"
    image_uri: str = ""  # the running container image (with digest when known); part of the compile-cache key
    weights_prefix: str = ""  # s3 prefix of a model-weights mirror in cache_bucket; "" = use the hub
    hf_token_secret_id: str = ""  # Secrets Manager id of the Hugging Face token; "" = none
    asg_name: str = ""
    launch_hook_name: str = ""
    termination_hook_name: str = ""
    model_id: str = "local/tiny-llama"
    model_revision: str = "main"
    engine: str = "transformers-cpu"  # transformers-cpu | optimum-neuron | vllm-neuron | openai-http
    openai_base_url: str = ""  # for engine openai-http
    batch_size: int = 8
    # Per model replica: the most sequences one vLLM server runs at once (`vllm serve --max-num-seqs`).
    max_num_seqs: int = 8
    # vLLM servers per instance = logical NeuronCores / tensor_parallel_degree (agentfleet.spec.sizing.replicas).
    # 0 = not known yet: the boot fills it from the compatibility matrix (instance type via IMDS), else
    # counts the cores with neuron-ls.
    replicas: int = 0
    vllm_base_port: int = 8100  # replica i listens on 127.0.0.1:(vllm_base_port + i); 0 = any free port
    sequence_length: int = 1024
    max_new_tokens: int = 96
    tensor_parallel_degree: int = 1
    instance_family: str = "cpu"
    batch_max_wait_ms: int = 50
    worker_id: str = ""
    lease_seconds: int = 20
    poll_interval_ms: int = 200
    max_records_per_read: int = 100
    max_record_bytes: int = 1024 * 1024  # the stream's record limit (spec/events.py MAX_KINESIS_RECORD_BYTES)
    memory_max_items: int = 20
    memory_ttl_days: int = 14
    dry_run: bool = False
    http_port: int = 8080
    shutdown_deadline_seconds: int = 25
    metrics_mode: str = "emf"  # emf (stdout, CloudWatch agent/Logs) | put (PutMetricData) | off
    local_model_dir: str = ""  # transformers-cpu: where the built small model lives
    torch_threads: int = 1  # transformers-cpu: torch intra-op threads; 1 suits several workers per host
    compile_cache_dir: str = "/var/cache/agentfleet"
    # Boot (agentfleet.serve.boot): the longest a cold compile + server start may take; vLLM's own
    # VLLM_ENGINE_READY_TIMEOUT_S (600 s by default) and the Neuron compile timeouts are set from it.
    compile_timeout_seconds: int = 3 * 3600
    lifecycle_heartbeat_seconds: int = 60  # RecordLifecycleActionHeartbeat period while booting
    agents: tuple[AgentSpec, ...] = field(default_factory=tuple)


_INT_FIELDS = {f.name for f in fields(Settings) if f.type in ("int", int)}
_BOOL_FIELDS = {f.name for f in fields(Settings) if f.type in ("bool", bool)}


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def _coerce(name: str, value: Any, source: str) -> Any:
    if name in _BOOL_FIELDS:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{source} {name} must be true or false, got {value!r}")
    if name in _INT_FIELDS:
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{source} {name} must be an integer, got {value!r}") from None
    if name == "agents":
        raw = json.loads(value) if isinstance(value, str) else value
        return parse_agents(raw, key=f"{source} agents")
    return str(value)


def load_document(ref: str, ssm_get: Callable[[str], str] | None = None) -> dict[str, Any]:
    """Read the config document from `ssm:/name` or a file path."""
    if ref.startswith("ssm:"):
        if ssm_get is None:
            raise ConfigError(f"{ENV_CONFIG} {ref!r} names an SSM parameter, but no SSM reader was given")
        text = ssm_get(ref[4:])
    else:
        text = Path(ref).read_text(encoding="utf-8")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{ENV_CONFIG} {ref!r} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{ENV_CONFIG} {ref!r} must hold a JSON object")
    return doc


def resolve(
    explicit: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    document: Mapping[str, Any] | None = None,
    ssm_get: Callable[[str], str] | None = None,
) -> Settings:
    """Build Settings; unknown keys in the document or explicit arguments are errors."""
    env = os.environ if env is None else env
    if document is None and env.get(ENV_CONFIG):
        document = load_document(env[ENV_CONFIG], ssm_get)
    names = {f.name for f in fields(Settings)}
    values: dict[str, Any] = {}
    for source, mapping in (("config document", document or {}), ("argument", explicit or {})):
        unknown = sorted(set(mapping) - names)
        if unknown:
            raise ConfigError(f"{source} has unknown settings {unknown}")
    for name in names:
        if explicit and name in explicit:
            values[name] = _coerce(name, explicit[name], "argument")
        elif env_name(name) in env:
            values[name] = _coerce(name, env[env_name(name)], f"environment {env_name(name)}:")
        elif document and name in document:
            values[name] = _coerce(name, document[name], "config document")
    settings = Settings(**values)
    if not settings.worker_id:
        import socket

        settings = Settings(**{**values, "worker_id": f"{socket.gethostname()}-{os.getpid()}"})
    return settings
