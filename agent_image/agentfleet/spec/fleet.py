"""FleetConfig: the one frozen, validated configuration, built from cdk.json context.

Every key in `FleetConfig` is a context key of the same name (defaults in cdk.json).
`cdk synth -c key=value` passes strings, so values are coerced here; a bad value fails
synth with a ConfigError naming the key and what is allowed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from agentfleet.spec import sizing
from agentfleet.spec.catalog import AgentSpec, ConfigError, parse_agents
from agentfleet.spec.chat import ChatConfig, parse_chat
from agentfleet.spec.sources import SourcesConfig, parse_sources
from agentfleet.spec.targets import TargetSpec, parse_targets

SPOT_STRATEGIES = ("price-capacity-optimized", "capacity-optimized", "capacity-optimized-prioritized", "lowest-price")
ENGINES = ("auto", "optimum-neuron", "vllm-neuron")
KINESIS_MODES = ("on-demand", "provisioned")
PREDICTIVE_MODES = ("on", "off", "forecast-only")  # on = ForecastAndScale (constructs/capacity.py)
# The repository root holds cdk.json (agent_image/agentfleet/spec/fleet.py -> parents[3]); only the CDK app reads it.
CDK_JSON = Path(__file__).resolve().parents[3] / "cdk.json"
_FLEET_NAME = re.compile(r"^[a-z][a-z0-9-]{1,23}$")
_AZ_ID = re.compile(r"^[a-z]{2,5}\d?-az\d+$")  # e.g. use2-az1 (AZ ids, not names: they are the same in every account)


@dataclass(frozen=True)
class FleetConfig:
    """The fleet's settings; see README "Configuration" for each key."""

    fleet_name: str
    model_id: str
    model_revision: str
    model_architecture: str
    serving_engine: str
    batch_size: int
    max_num_seqs: int
    sequence_length: int
    max_new_tokens: int
    tensor_parallel_degree: int
    tensor_parallel_by_family: tuple[tuple[str, int], ...]
    instance_types: tuple[str, ...]
    min_capacity: int
    max_capacity: int
    desired_capacity: int
    on_demand_base_capacity: int
    on_demand_percentage_above_base: int
    spot_allocation_strategy: str
    kinesis_mode: str
    kinesis_shard_count: int
    kinesis_retention_hours: int
    dlami_ssm_parameter: str
    root_volume_gib: int
    health_check_grace_minutes: int
    launch_hook_timeout_minutes: int
    default_instance_warmup_minutes: int
    capacity_reservation_id: str
    capacity_reservation_group_arn: str
    capacity_block: bool
    availability_zone_ids: tuple[str, ...]
    single_nat_gateway: bool
    backlog_target_per_instance: int
    predictive_scaling: str
    predictive_scheduling_buffer_minutes: int
    memory_ttl_days: int
    memory_max_items: int
    approval_timeout_minutes: int
    dry_run: bool
    alarm_iterator_age_ms: int
    alarm_action_failures: int
    alarm_quarantined_per_5min: int
    alarm_compile_cache_misses: int
    monthly_budget_usd: int
    cost_center: str
    cost_prices: str
    alarm_email: str
    weights_mirror_prefix: str
    hf_token_secret_name: str
    enable_pipeline: bool
    pipeline_repository: str
    pipeline_branch: str
    pipeline_connection_arn: str
    agents: tuple[AgentSpec, ...]
    sources: SourcesConfig
    targets: tuple[TargetSpec, ...]
    chat: ChatConfig

    @property
    def instance_families(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.split(".")[0] for t in self.instance_types))

    def tp_for(self, family: str) -> int:
        """The tensor-parallel degree of a family's launch template (override, else the default)."""
        return dict(self.tensor_parallel_by_family).get(family, self.tensor_parallel_degree)

    @property
    def uses_spot(self) -> bool:
        """A Spot share is configured (capacity above the On-Demand base that is not On-Demand)."""
        return self.on_demand_percentage_above_base < 100 and self.max_capacity > self.on_demand_base_capacity

    @property
    def warnings(self) -> tuple[str, ...]:
        """What the compatibility matrix could not check, and targets only the local sink can serve
        (app.py prints them; synth goes on)."""
        loopback = tuple(f"targets.{t.name}.url {t.url} is plain http on loopback: only the local fleet's sink "
                         "serves it; a deployed HTTP Task needs https" for t in self.targets
                         if t.enabled and t.url.startswith("http://"))
        return sizing.check(self) + loopback

    @classmethod
    def from_context(cls, get: Callable[[str], Any]) -> FleetConfig:
        """Build from a context getter (`app.node.try_get_context`); raises ConfigError."""
        values: dict[str, Any] = {}
        # targets before agents: every target name is an action agents may be allowed.
        for f in sorted(fields(cls), key=lambda f: f.name == "agents"):
            raw = get(f.name)
            if raw is None:
                raise ConfigError(f"context key {f.name!r} is missing (defaults live in cdk.json)")
            extra = [t.name for t in values["targets"]] if f.name == "agents" else []
            values[f.name] = _coerce(f.name, f.type, raw, extra)
        config = cls(**values)
        config._validate()
        return config

    def _validate(self) -> None:
        if not _FLEET_NAME.match(self.fleet_name):
            raise ConfigError(f"fleet_name must match {_FLEET_NAME.pattern}, got {self.fleet_name!r}")
        for key in ("batch_size", "max_num_seqs", "sequence_length", "max_new_tokens", "tensor_parallel_degree",
                    "root_volume_gib", "health_check_grace_minutes", "default_instance_warmup_minutes",
                    "backlog_target_per_instance",
                    "memory_ttl_days", "memory_max_items", "approval_timeout_minutes",
                    "monthly_budget_usd", "kinesis_shard_count"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key} must be a positive integer, got {getattr(self, key)}")
        if self.max_new_tokens >= self.sequence_length:
            raise ConfigError("max_new_tokens must be smaller than sequence_length")
        if not 0 <= self.on_demand_percentage_above_base <= 100:
            raise ConfigError(
                f"on_demand_percentage_above_base must be between 0 and 100, got {self.on_demand_percentage_above_base}")
        if min(self.min_capacity, self.on_demand_base_capacity) < 0:
            raise ConfigError("min_capacity and on_demand_base_capacity must be 0 or more")
        if self.min_capacity > self.max_capacity:
            raise ConfigError(f"min_capacity ({self.min_capacity}) must not exceed max_capacity ({self.max_capacity})")
        if not self.min_capacity <= self.desired_capacity <= self.max_capacity:
            raise ConfigError(
                f"desired_capacity ({self.desired_capacity}) must be between min_capacity and max_capacity")
        if self.on_demand_base_capacity > self.max_capacity:
            raise ConfigError("on_demand_base_capacity must not exceed max_capacity")
        _choice("spot_allocation_strategy", self.spot_allocation_strategy, SPOT_STRATEGIES)
        _choice("serving_engine", self.serving_engine, ENGINES)
        _choice("kinesis_mode", self.kinesis_mode, KINESIS_MODES)
        _choice("predictive_scaling", self.predictive_scaling, PREDICTIVE_MODES)
        # Auto Scaling API (botocore 1.44 autoscaling service-2.json, SchedulingBufferTime): "must be less
        # than the forecast interval duration of 3600 seconds".
        if not 0 <= self.predictive_scheduling_buffer_minutes <= 59:
            raise ConfigError(f"predictive_scheduling_buffer_minutes must be between 0 and 59 (SchedulingBufferTime "
                              f"is under 3600 s), got {self.predictive_scheduling_buffer_minutes}")
        if not 24 <= self.kinesis_retention_hours <= 8760:
            raise ConfigError(f"kinesis_retention_hours must be between 24 and 8760, got {self.kinesis_retention_hours}")
        if not self.dlami_ssm_parameter.startswith("/"):
            raise ConfigError(f"dlami_ssm_parameter must be an SSM parameter path starting with '/', "
                              f"got {self.dlami_ssm_parameter!r}")
        if self.enable_pipeline and not (self.pipeline_repository and self.pipeline_connection_arn):
            raise ConfigError("enable_pipeline needs pipeline_repository (owner/name) and pipeline_connection_arn")
        # Auto Scaling API (botocore autoscaling service-2.json, HeartbeatTimeout): 30 to 7200 seconds.
        if not 1 <= self.launch_hook_timeout_minutes <= 120:
            raise ConfigError(f"launch_hook_timeout_minutes must be between 1 and 120 (the lifecycle hook's "
                              f"HeartbeatTimeout is 30-7200 s), got {self.launch_hook_timeout_minutes}")
        for az in self.availability_zone_ids:
            if not _AZ_ID.match(az):
                raise ConfigError(f"availability_zone_ids has {az!r}, which is not an AZ id like 'use2-az1'")
        for family, tp in self.tensor_parallel_by_family:
            if family not in self.instance_families or tp <= 0:
                raise ConfigError(f"tensor_parallel_by_family has {family}={tp}: keys must be families in "
                                  f"instance_types ({', '.join(self.instance_families)}), values positive integers")
        if len(self.instance_types) != len(set(self.instance_types)):
            raise ConfigError("instance_types lists a type twice")
        sizing.validate(self)

    def runtime_document(self) -> dict[str, Any]:
        """The config-document fields the runtime reads (see agentfleet.spec.settings)."""
        return {
            "fleet_name": self.fleet_name,
            "model_id": self.model_id,
            "model_revision": self.model_revision,
            "batch_size": self.batch_size,
            "max_num_seqs": self.max_num_seqs,
            "sequence_length": self.sequence_length,
            "max_new_tokens": self.max_new_tokens,
            "tensor_parallel_degree": self.tensor_parallel_degree,
            "memory_ttl_days": self.memory_ttl_days,
            "memory_max_items": self.memory_max_items,
            "dry_run": self.dry_run,
            "agents": [a.to_json() for a in self.agents],
            "targets": {t.name: t.runtime_json() for t in self.targets},
        }


def default_context(path: Path = CDK_JSON) -> dict[str, Any]:
    """cdk.json's context: the defaults. The CLI's context (cdk.json plus `-c`) overrides them,
    so `python app.py` and tests synthesize the same app as `cdk synth`."""
    return dict(json.loads(path.read_text(encoding="utf-8"))["context"])


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key} must be one of {', '.join(allowed)}; got {value!r}")


def _coerce(key: str, annotation: Any, raw: Any, targets: list[str]) -> Any:
    """Context from cdk.json keeps JSON types; `-c key=value` gives strings."""
    kind = str(annotation)
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        if str(raw).lower() in ("true", "false"):
            return str(raw).lower() == "true"
        raise ConfigError(f"{key} must be true or false, got {raw!r}")
    if kind == "int":
        if isinstance(raw, bool):
            raise ConfigError(f"{key} must be an integer, got {raw!r}")
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be an integer, got {raw!r}") from None
    if kind == "str":
        if not isinstance(raw, (str, int, float)) or isinstance(raw, bool):
            raise ConfigError(f"{key} must be a string, got {raw!r}")
        return str(raw)
    if kind == "tuple[str, ...]":
        if isinstance(raw, str):
            raw = json.loads(raw) if raw.strip().startswith("[") else [s.strip() for s in raw.split(",") if s.strip()]
        if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
            raise ConfigError(f"{key} must be a list of strings, got {raw!r}")
        return tuple(raw)
    if kind == "tuple[tuple[str, int], ...]":  # {"trn1": 8} (JSON) or "trn1=8,inf2=4"
        if isinstance(raw, str):
            text = raw.strip()
            raw = json.loads(text) if text.startswith("{") else dict(p.split("=", 1) for p in text.split(",") if "=" in p)
        if not isinstance(raw, dict):
            raise ConfigError(f"{key} must map instance families to integers, e.g. {{\"trn1\": 8}}, got {raw!r}")
        try:
            return tuple((str(k), int(v)) for k, v in raw.items())
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must map instance families to integers, got {raw!r}") from None
    if kind == "tuple[AgentSpec, ...]":
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{key} must be a JSON list of agent definitions: {exc}") from None
        return parse_agents(raw, key=key, targets=targets)
    if kind == "SourcesConfig":
        return parse_sources(raw, key=key)
    if kind in ("tuple[TargetSpec, ...]", "ChatConfig"):
        if isinstance(raw, str):  # -c targets='{...}'
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{key} must be a JSON object: {exc}") from None
        return parse_targets(raw, key=key) if kind != "ChatConfig" else parse_chat(raw, key=key)
    raise ConfigError(f"{key}: unsupported type {kind}")  # pragma: no cover - a new field without a coercion
