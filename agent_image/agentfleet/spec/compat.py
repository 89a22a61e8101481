"""The compatibility matrix (compat.json beside this file) and the one family -> engine -> image
function that synth (FleetConfig validation, the launch templates) and the runtime (boot) share.

Vocabulary: an instance *type* is "trn3pd98.3xlarge"; its *family* is the part before the dot
("trn3pd98"); its *generation* is the accelerator generation the engines and compiled artifacts
are built for ("trn3"). Compiled NEFFs are per generation; launch templates are per family.
Every row in compat.json carries its source and date; add a row there, never a literal here.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

MATRIX_PATH = Path(__file__).with_name("compat.json")
# EC2 type names: family letters+digits(+suffix letters/digits), a dot, a size ("3xlarge", "48xlarge", "xlarge").
_TYPE = re.compile(r"^(?P<family>[a-z][a-z0-9-]*)\.(?P<size>[a-z0-9]+)$")
LOCAL_FAMILY = "cpu"  # local mode and tests: the small CPU model, no instance metadata


class UnknownInstance(ValueError):
    """An instance type or family the matrix has no row for (the message says how to add one)."""


@cache
def matrix() -> dict[str, Any]:
    return dict(json.loads(MATRIX_PATH.read_text(encoding="utf-8")))


def instance_family(instance_type: str) -> str:
    """'trn3pd98.3xlarge' -> 'trn3pd98', 'trn2.48xlarge' -> 'trn2'; ValueError for anything else."""
    match = _TYPE.match(instance_type.strip().lower())
    if not match:
        raise ValueError(f"not an EC2 instance type: {instance_type!r}")
    return match.group("family")


def generation(family: str) -> str:
    """The accelerator generation of a family: the longest generation name it starts with
    ('trn3pd98' -> 'trn3', 'trn2u' -> 'trn2', 'trn1n' -> 'trn1'); 'cpu' is the local family."""
    if family == LOCAL_FAMILY:
        return LOCAL_FAMILY
    known = sorted(matrix()["generations"], key=len, reverse=True)
    for name in known:
        if family.startswith(name):
            return name
    raise UnknownInstance(f"instance family {family!r} is in no generation of {MATRIX_PATH.name} "
                          f"(known: {', '.join(sorted(known))}); add a row under 'generations' with its source")


def engine_for(family: str) -> str:
    """The serving engine that runs on this family ('transformers-cpu' for the local family)."""
    if family == LOCAL_FAMILY:
        return "transformers-cpu"
    return str(matrix()["generations"][generation(family)]["engine"])


def families_of(engine: str) -> tuple[str, ...]:
    """The generations an engine serves, per the matrix."""
    if engine == "transformers-cpu":
        return (LOCAL_FAMILY,)
    return tuple(g for g, row in matrix()["generations"].items() if row["engine"] == engine)


_ADD_ROW = ("add a row under 'instances' in agent_image/agentfleet/spec/compat.json with chips, logical_cores, "
            "hbm_gib_per_chip, on_demand/spot/capacity_block (true, false or null = unknown), regions, "
            "source and date")


def instance(instance_type: str) -> dict[str, Any]:
    """The matrix row of an instance type (with its family and generation); UnknownInstance if none."""
    row = matrix()["instances"].get(instance_type.strip().lower())
    if row is None:
        raise UnknownInstance(f"instance type {instance_type!r} has no row in {MATRIX_PATH.name}; {_ADD_ROW}")
    family = instance_family(instance_type)
    return {**row, "type": instance_type, "family": family, "generation": generation(family)}


def engine_release(engine: str) -> dict[str, Any]:
    """The pinned release of an engine: image, Dockerfile, Python, served architectures, host driver."""
    return dict(matrix()["engines"][engine])


def image_for(family: str) -> dict[str, str]:
    """engine, base image and the Dockerfile (in agent_image/) that build the container for a family."""
    engine = engine_for(family)
    release = engine_release(engine)
    return {"engine": engine, "image": str(release["image"]), "dockerfile": str(release["dockerfile"])}


def has_spot(instance_type: str) -> bool | None:
    """Whether the type can be bought as Spot per the matrix; None when the matrix does not know."""
    spot = instance(instance_type)["spot"]
    return None if spot is None else bool(spot)


def model(model_id: str) -> dict[str, Any] | None:
    """The matrix row of a model (architecture and the shape the memory check needs), or None."""
    row = matrix().get("models", {}).get(model_id)
    return None if row is None else dict(row)
