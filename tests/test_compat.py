"""The compatibility matrix: rows are sourced, lookups answer, and the images the fleet builds are the
images the matrix names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agentfleet.spec import compat

IMAGE_DIR = Path(__file__).resolve().parent.parent / "agent_image"


def test_every_row_has_a_source_and_a_date() -> None:
    matrix = compat.matrix()
    for section in ("generations", "instances", "engines", "models"):
        for key, row in matrix[section].items():
            assert row.get("source") and re.match(r"^\d{4}-\d{2}-\d{2}$", row.get("date", "")), (section, key)


def test_every_instance_row_resolves_to_a_generation_with_an_engine() -> None:
    for itype in compat.matrix()["instances"]:
        row = compat.instance(itype)
        assert row["generation"] in compat.matrix()["generations"]
        assert compat.engine_for(row["family"]) in compat.matrix()["engines"]


def test_driver_names_for_trn3_are_rows() -> None:
    # aws-neuron/aws-neuron-driver v4/neuron_dhal_v4.c: the names the driver maps
    for itype in ("trn3.48xlarge", "trn3p.48xlarge", "trn3e.24xlarge", "trn3pd98.3xlarge"):
        assert compat.instance(itype)["generation"] == "trn3"
    assert compat.instance("trn3pd98.3xlarge")["logical_cores"] == 4


def test_instance_lookup_and_unknown_type_says_how_to_add_a_row() -> None:
    row = compat.instance("trn2.48xlarge")
    assert (row["family"], row["chips"], row["logical_cores"], row["hbm_gib_per_chip"]) == ("trn2", 16, 64, 96)
    with pytest.raises(compat.UnknownInstance, match=r"add a row under 'instances' in agent_image/agentfleet/spec/compat\.json"):
        compat.instance("trn9.48xlarge")


def test_has_spot_is_true_false_or_unknown() -> None:
    assert compat.has_spot("trn1.32xlarge") is True
    assert compat.has_spot("trn3.48xlarge") is None


@pytest.mark.parametrize(("family", "engine", "dockerfile"), [
    ("trn3", "vllm-neuron", "Dockerfile"), ("trn2u", "vllm-neuron", "Dockerfile"),
    ("trn1n", "optimum-neuron", "Dockerfile.optimum"), ("inf2", "optimum-neuron", "Dockerfile.optimum"),
])
def test_image_for_names_the_engine_and_a_dockerfile_built_from_the_matrix_image(family: str, engine: str,
                                                                                  dockerfile: str) -> None:
    built = compat.image_for(family)
    assert (built["engine"], built["dockerfile"]) == (engine, dockerfile)
    text = (IMAGE_DIR / dockerfile).read_text()
    assert re.findall(r"^FROM (\S+)", text, re.M) == [built["image"]]


def test_the_vllm_image_carries_no_optimum_neuron() -> None:
    # optimum-neuron registers its own vLLM platform plugin; vLLM activates only one (issue 10, blocker 1)
    assert "optimum" not in (IMAGE_DIR / "Dockerfile").read_text().split("FROM", 1)[1].lower()


def test_served_architectures_of_the_pinned_vllm_neuron() -> None:
    # vllm-project/vllm-neuron vllm_neuron/model/registry.py: no Qwen2
    served = compat.engine_release("vllm-neuron")["architectures"]
    assert "Qwen3ForCausalLM" in served and "LlamaForCausalLM" in served and "Qwen2ForCausalLM" not in served
