"""The fleet config checked against the compatibility matrix (compat.json): engine, model, cores, memory,
purchase options. Errors name the config key; what the matrix does not know is a warning, never a guess.

Memory check (per TP group, i.e. one model replica):
    weights  = parameters x dtype_bytes
    kv_cache = 2 (K and V) x layers x kv_heads x head_dim x dtype_bytes x seqs x sequence_length
    hbm      = tp x hbm_gib_per_chip x chips / logical_cores   (GiB of the cores the replica spans)
    weights + kv_cache must stay within HBM_USABLE x hbm.
seqs = max_num_seqs for vllm-neuron (sequences one server runs at once), batch_size for optimum-neuron
(its compiled batch). Inputs: the model row (its config.json) and the instance row (arch pages) in
compat.json; those keys, sequence_length and the family's TP (tensor_parallel_by_family, else
tensor_parallel_degree) from the config.

Replicas per instance = logical_cores / TP vLLM servers (one replica on a single-chip type, and for
optimum-neuron, which serves in process); `replicas` gives None where the matrix does not know the cores
(the boot then counts them with neuron-ls).
"""

from __future__ import annotations

from typing import Any, Protocol

from agentfleet.spec import compat
from agentfleet.spec.catalog import ConfigError

# Our margin, not a Neuron figure: activations, the compiled program and runtime buffers live in HBM too.
HBM_USABLE = 0.9
GIB = 1024**3


class SizedConfig(Protocol):
    """The FleetConfig fields this module reads (FleetConfig satisfies it; no import, no circle)."""

    @property
    def model_id(self) -> str: ...
    @property
    def model_architecture(self) -> str: ...
    @property
    def serving_engine(self) -> str: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def max_num_seqs(self) -> int: ...
    @property
    def sequence_length(self) -> int: ...
    @property
    def tensor_parallel_degree(self) -> int: ...
    @property
    def instance_types(self) -> tuple[str, ...]: ...
    @property
    def on_demand_percentage_above_base(self) -> int: ...
    @property
    def capacity_reservation_id(self) -> str: ...
    @property
    def capacity_reservation_group_arn(self) -> str: ...
    @property
    def capacity_block(self) -> bool: ...
    @property
    def uses_spot(self) -> bool: ...
    def tp_for(self, family: str) -> int: ...


def validate(config: SizedConfig) -> None:
    """Raise ConfigError for the first problem found."""
    errors, _ = review(config)
    if errors:
        raise ConfigError(errors[0])


def check(config: SizedConfig) -> tuple[str, ...]:
    """The warnings: facts the matrix does not know, so synth could not check them."""
    return tuple(review(config)[1])


def review(config: SizedConfig) -> tuple[list[str], list[str]]:
    errors: list[str] = []
    warnings: list[str] = []
    rows = []
    for itype in config.instance_types:
        try:
            rows.append(compat.instance(itype))
        except (compat.UnknownInstance, ValueError) as exc:
            errors.append(f"instance_types has {itype!r}: {exc}")
    if not config.instance_types:
        errors.append("instance_types must list at least one instance type, e.g. ['trn2.48xlarge']")
    if errors:
        return errors, warnings
    _engines(config, rows, errors, warnings)
    for row in rows:
        _cores_and_memory(config, row, errors, warnings)
        if row["ultraserver_only"] is not False:
            warnings.append(f"{row['type']}: sold only as part of an UltraServer per compat.json (or unknown: "
                            f"{row['ultraserver_only']}); launching it in an Auto Scaling group is unverified")
    _purchase(config, rows, errors, warnings)
    return errors, warnings


def _engines(config: SizedConfig, rows: list[dict[str, Any]], errors: list[str], warnings: list[str]) -> None:
    known = compat.model(config.model_id)
    arch = config.model_architecture or (known or {}).get("architecture", "")
    if known and config.model_architecture and config.model_architecture != known["architecture"]:
        errors.append(f"model_architecture is {config.model_architecture!r} but compat.json says {config.model_id} "
                      f"is {known['architecture']!r}; leave model_architecture empty or fix it")
    if not arch:
        warnings.append(f"model_id {config.model_id!r} has no row under 'models' in compat.json and "
                        "model_architecture is empty: synth cannot check that the engine serves it")
    for family in dict.fromkeys(row["family"] for row in rows):
        engine = compat.engine_for(family)
        if config.serving_engine not in ("auto", engine):
            errors.append(f"serving_engine is {config.serving_engine!r}, but instance family {family!r} runs "
                          f"{engine!r} (compat.json); use 'auto' or drop {family} from instance_types")
        release = compat.engine_release(engine)
        served = release["architectures"]
        model_type = (known or {}).get("model_type")
        if served is None and release.get("model_types") and model_type:
            # optimum-neuron serves by config.json model_type (its auto_models.py registry)
            if model_type not in release["model_types"]:
                errors.append(f"model_id {config.model_id!r} has model_type {model_type!r}, which {engine} "
                              f"{release['release']} (the engine of {family} in instance_types) does not serve; "
                              f"it serves {', '.join(release['model_types'])}")
        elif arch and served is None:
            warnings.append(f"{engine} {release['release']}: compat.json lists no served architectures, "
                            f"so {arch} on {family} is unchecked")
        elif arch and arch not in served:
            errors.append(f"model_id {config.model_id!r} is a {arch}, which {engine} {release['release']} (the engine "
                          f"of {family} in instance_types) does not serve; it serves {', '.join(served)}")
        if str(release["host_driver"]).startswith("UNVERIFIED"):
            warnings.append(f"{family}: host driver for {engine} {release['release']} unverified: "
                            f"{release['host_driver']}")


def _cores_and_memory(config: SizedConfig, row: dict[str, Any], errors: list[str], warnings: list[str]) -> None:
    tp, cores = config.tp_for(row["family"]), row["logical_cores"]
    key = (f"tensor_parallel_by_family[{row['family']}]" if tp != config.tensor_parallel_degree
           else "tensor_parallel_degree")
    if cores is None:
        warnings.append(f"{row['type']}: logical NeuronCores unknown in compat.json; {key} "
                        f"{tp} and memory unchecked, replicas per instance counted at boot (neuron-ls)")
        return
    if tp > cores or cores % tp:
        errors.append(f"{key} {tp} does not divide the {cores} logical NeuronCores of "
                      f"{row['type']} (compat.json); pick a divisor of {cores}")
        return
    known = compat.model(config.model_id)
    if known is None or row["hbm_gib_per_chip"] is None or row["chips"] is None:
        warnings.append(f"{row['type']}: model or HBM size unknown in compat.json; memory fit unchecked")
        return
    seqs_key = "max_num_seqs" if compat.engine_for(row["family"]) == "vllm-neuron" else "batch_size"
    seqs = getattr(config, seqs_key)
    need = required_bytes(known, seqs, config.sequence_length)
    hbm = tp * row["hbm_gib_per_chip"] * row["chips"] / cores * GIB
    if need > HBM_USABLE * hbm:
        errors.append(f"{config.model_id} needs {need / GIB:.1f} GiB (weights + KV cache for {seqs_key} "
                      f"{seqs} x sequence_length {config.sequence_length}) but {key} "
                      f"{tp} on {row['type']} spans {hbm / GIB:.0f} GiB of HBM ({HBM_USABLE:.0%} usable); raise "
                      f"{key} or lower {seqs_key}/sequence_length")


def required_bytes(model: dict[str, Any], seqs: int, sequence_length: int) -> float:
    """Weights plus the KV cache of one replica, in bytes (formula in the module docstring)."""
    width = model["dtype_bytes"]
    weights = model["parameters_billion"] * 1e9 * width
    kv_cache = 2 * model["layers"] * model["kv_heads"] * model["head_dim"] * width * seqs * sequence_length
    return float(weights + kv_cache)


def replicas(instance_type: str, tp: int, engine: str = "vllm-neuron") -> int | None:
    """Model replicas one instance of `instance_type` runs: logical cores // TP; 1 on a single-chip type
    (issue 11) and for optimum-neuron (one in-process model); None when the matrix does not know the cores."""
    row = compat.instance(instance_type)
    if engine != "vllm-neuron" or row["chips"] == 1:
        return 1
    if row["logical_cores"] is None:
        return None
    return max(1, int(row["logical_cores"]) // tp)


def _purchase(config: SizedConfig, rows: list[dict[str, Any]], errors: list[str], warnings: list[str]) -> None:
    if config.uses_spot:
        spot = {row["type"]: row["spot"] for row in rows}
        if not any(spot.values()) and all(v is False for v in spot.values()):
            errors.append(f"on_demand_percentage_above_base is {config.on_demand_percentage_above_base} (a Spot "
                          f"share), but no type in instance_types has Spot per compat.json "
                          f"({', '.join(spot)}); set it to 100 or add a Spot family")
        elif not any(spot.values()):
            warnings.append(f"on_demand_percentage_above_base {config.on_demand_percentage_above_base} asks for "
                            f"Spot, and compat.json does not know whether {', '.join(spot)} offer it")
    if config.capacity_reservation_id and config.capacity_reservation_group_arn:
        errors.append("set capacity_reservation_id or capacity_reservation_group_arn, not both")
    if config.capacity_reservation_id and not config.capacity_reservation_id.startswith("cr-"):
        errors.append(f"capacity_reservation_id must look like 'cr-0123...', got {config.capacity_reservation_id!r}")
    if not config.capacity_block:
        return
    if not config.capacity_reservation_id:
        errors.append("capacity_block needs capacity_reservation_id (the Capacity Block's reservation id)")
    if len(rows) != 1:
        errors.append(f"capacity_block needs exactly one type in instance_types (Capacity Blocks do not support "
                      f"mixed-instances groups), got {len(rows)}")
    if config.uses_spot:
        errors.append("capacity_block runs the whole group on the block: set on_demand_percentage_above_base to 100")
    for row in rows:
        if row["capacity_block"] is False:
            errors.append(f"capacity_block: {row['type']} is not offered as a Capacity Block per compat.json")
        elif row["capacity_block"] is None:
            warnings.append(f"capacity_block: compat.json does not know whether {row['type']} is offered as one")
