"""The cache key changes when any input changes, and only then."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from agentfleet.serve.boot.cache_key import CacheKeyInputs, instance_family
from agentfleet.spec.settings import Settings

BASE = CacheKeyInputs(
    model_id="meta-llama/Llama-3.2-1B-Instruct", model_revision="abc123", engine="vllm-neuron",
    engine_version="0.24.0.1.1.0", compiler_version="2.27.5334.0", batch_size=8, sequence_length=2048,
    tensor_parallel_degree=4, instance_family="trn3",
    image_uri="public.ecr.aws/neuron/pytorch-inference-vllm-neuronx:0.24.0.1.1.0-neuronx-py313-sdk2.32.0-ubuntu24.04",
    engine_config='{"serve_flags":"--max-num-seqs 8"}',
)

CHANGES: dict[str, Any] = {
    "model_id": "meta-llama/Llama-3.1-8B-Instruct",
    "model_revision": "def456",
    "engine": "optimum-neuron",
    "engine_version": "0.29.0.1.2.0",
    "compiler_version": "2.28.0.0",
    "batch_size": 16,
    "sequence_length": 4096,
    "tensor_parallel_degree": 8,
    "instance_family": "trn2",
    "image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/agentfleet@sha256:0f",
    "engine_config": '{"NEURON_CC_FLAGS":"-O1","serve_flags":"--max-num-seqs 8"}',
}


def test_key_is_stable_and_short() -> None:
    again = dataclasses.replace(BASE)
    assert BASE.key() == again.key()
    assert len(BASE.key()) == 24 and int(BASE.key(), 16) >= 0


def test_every_input_is_in_the_key() -> None:
    assert set(CHANGES) == {f.name for f in dataclasses.fields(CacheKeyInputs)}
    keys = {BASE.key()}
    for name, value in CHANGES.items():
        changed = dataclasses.replace(BASE, **{name: value})
        assert changed.key() != BASE.key(), f"changing {name} must change the key"
        keys.add(changed.key())
    assert len(keys) == len(CHANGES) + 1


def test_from_settings_reads_shape_model_image_and_engine_config() -> None:
    settings = Settings(model_id="m", model_revision="r", engine="vllm-neuron", batch_size=2, sequence_length=256,
                        tensor_parallel_degree=2, instance_family="trn2", image_uri="repo@sha256:aa")
    inputs = CacheKeyInputs.from_settings(settings, engine_version="1", compiler_version="2",
                                          engine_config={"b": "2", "a": "1"})
    assert (inputs.batch_size, inputs.sequence_length, inputs.tensor_parallel_degree) == (2, 256, 2)
    assert inputs.image_uri == "repo@sha256:aa" and inputs.engine_config == '{"a":"1","b":"2"}'
    with pytest.raises(ValueError, match="AGENTFLEET_IMAGE_URI"):
        CacheKeyInputs.from_settings(Settings(engine="vllm-neuron"), engine_version="1", compiler_version="2")
    assert CacheKeyInputs.from_settings(Settings(), engine_version="1", compiler_version="2").image_uri == ""
    assert CacheKeyInputs.from_settings(settings, engine_version="1", compiler_version="2",
                                        instance_family="trn3").key() != inputs.key()


@pytest.mark.parametrize("bad", [{"model_id": " "}, {"compiler_version": ""}, {"batch_size": 0},
                                 {"tensor_parallel_degree": -1}])
def test_bad_inputs_are_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        dataclasses.replace(BASE, **bad)


def test_instance_family() -> None:
    assert instance_family("trn3.48xlarge") == "trn3"
    assert instance_family("inf2.xlarge") == "inf2"
    assert instance_family("trn1n.32xlarge") == "trn1n"
    with pytest.raises(ValueError):
        instance_family("not-a-type")


def test_family_and_generation_of_every_neuron_name() -> None:
    from agentfleet.spec.compat import engine_for, generation

    # The names the Neuron driver knows for Trn3 (issue 10 lists them) all map to the trn3 generation.
    for itype in ("trn3.48xlarge", "trn3p.48xlarge", "trn3pd98.3xlarge", "trn3e.24xlarge"):
        assert generation(instance_family(itype)) == "trn3"
        assert engine_for(instance_family(itype)) == "vllm-neuron"
    assert generation(instance_family("trn2u.48xlarge")) == "trn2"
    assert generation(instance_family("trn1n.32xlarge")) == "trn1"
    assert instance_family("trn3pd98.3xlarge") == "trn3pd98"
