"""FleetConfig against the compatibility matrix: each bad combination fails synth naming the key;
what the matrix does not know is a warning."""

from __future__ import annotations

from typing import Any

import pytest

from agentfleet.spec import compat, sizing
from agentfleet.spec.catalog import ConfigError
from tests.cdk.conftest import make_config


@pytest.mark.parametrize(("overrides", "expected"), [
    # the engine of the family must serve the model's architecture (vllm-neuron 0.24 has no Qwen2)
    ({"model_id": "Qwen/Qwen2.5-7B-Instruct", "model_architecture": "Qwen2ForCausalLM"},
     "is a Qwen2ForCausalLM, which vllm-neuron 0.24.0.1.1.0"),
    ({"model_architecture": "LlamaForCausalLM"}, "model_architecture is 'LlamaForCausalLM' but compat.json says"),
    ({"serving_engine": "optimum-neuron"}, "serving_engine is 'optimum-neuron', but instance family 'trn3' runs"),
    ({"tensor_parallel_degree": 3}, "tensor_parallel_degree 3 does not divide the 64 logical NeuronCores of trn2.48xlarge"),
    ({"tensor_parallel_degree": 128}, "tensor_parallel_degree 128 does not divide"),
    ({"instance_types": ["inf2.xlarge"], "tensor_parallel_degree": 1}, "needs 19.8 GiB (weights + KV cache"),
    ({"instance_types": ["trn2.48xlarge"], "tensor_parallel_degree": 1, "max_num_seqs": 64, "sequence_length": 32768},
     "raise tensor_parallel_degree or lower max_num_seqs/sequence_length"),
    # vLLM sizes the KV cache for max_num_seqs sequences per replica: 15.3 GiB weights + 160 x 0.56 GiB > 86.4 GiB
    ({"instance_types": ["trn2.48xlarge"], "max_num_seqs": 160},
     "(weights + KV cache for max_num_seqs 160 x sequence_length 4096) but tensor_parallel_degree 4 on trn2.48xlarge"),
    ({"max_num_seqs": 0}, "max_num_seqs must be a positive integer"),
    ({"tensor_parallel_by_family": {"trn2": 3}}, "tensor_parallel_by_family[trn2] 3 does not divide the 64"),
    ({"tensor_parallel_by_family": {"inf2": 4}}, "tensor_parallel_by_family has inf2=4: keys must be families in"),
    ({"tensor_parallel_by_family": "trn2=x"}, "tensor_parallel_by_family must map instance families to integers"),
    ({"instance_types": ["inf2.48xlarge"], "tensor_parallel_by_family": {"inf2": 1}},
     "but tensor_parallel_by_family[inf2] 1 on inf2.48xlarge spans 16 GiB"),
    ({"capacity_block": True}, "capacity_block needs capacity_reservation_id"),
    ({"capacity_block": True, "capacity_reservation_id": "cr-0123"}, "capacity_block needs exactly one type"),
    ({"capacity_reservation_id": "r-1"}, "capacity_reservation_id must look like 'cr-0123...'"),
    ({"capacity_reservation_id": "cr-1", "capacity_reservation_group_arn": "arn:aws:resource-groups:x"},
     "set capacity_reservation_id or capacity_reservation_group_arn, not both"),
])
def test_matrix_rejects(overrides: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        make_config(**overrides)
    assert expected in str(err.value)


def test_replicas_per_instance_are_cores_over_tp_one_on_a_single_chip_and_unknown_where_cores_are() -> None:
    assert sizing.replicas("trn2.48xlarge", 4) == 16 and sizing.replicas("trn2.48xlarge", 8) == 8
    assert sizing.replicas("trn3pd98.3xlarge", 1) == 1, "single-chip types get one replica"
    assert sizing.replicas("trn1.32xlarge", 8, engine="optimum-neuron") == 1
    assert sizing.replicas("trn3.48xlarge", 4) is None
    assert "replicas per instance counted at boot (neuron-ls)" in " ".join(make_config().warnings)


def test_spot_share_without_a_spot_family_names_both_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    # No row says spot=false today (trn3 is unknown, a warning); a row that does must stop synth.
    monkeypatch.setitem(compat.matrix()["instances"]["trn3pd98.3xlarge"], "spot", False)
    with pytest.raises(ConfigError) as err:
        make_config(instance_types=["trn3pd98.3xlarge"], on_demand_percentage_above_base=0)
    assert "on_demand_percentage_above_base is 0 (a Spot share), but no type in instance_types has Spot" in str(err.value)
    assert make_config(instance_types=["trn3pd98.3xlarge"]).uses_spot is False


def test_defaults_pass_with_on_demand_and_warn_only_where_the_matrix_does_not_know() -> None:
    config = make_config()
    assert config.model_id == "Qwen/Qwen3-8B" and config.on_demand_percentage_above_base == 100
    assert not config.uses_spot
    assert any("trn3.48xlarge: logical NeuronCores unknown" in w for w in config.warnings)
    assert not any("trn2.48xlarge" in w for w in config.warnings)


def test_spot_share_on_a_spot_family_passes_and_unknown_spot_warns() -> None:
    assert make_config(instance_types=["trn1.32xlarge"], on_demand_percentage_above_base=25).uses_spot
    config = make_config(instance_types=["trn3.48xlarge"], on_demand_percentage_above_base=25)
    assert any("does not know whether trn3.48xlarge" in w for w in config.warnings)


def test_capacity_block_single_type_passes() -> None:
    config = make_config(instance_types=["trn2.48xlarge"], capacity_block=True, capacity_reservation_id="cr-0abc")
    assert config.capacity_block and not config.warnings


def test_unknown_model_is_a_warning_and_optimum_families_warn_about_the_driver() -> None:
    config = make_config(model_id="someone/private-model", instance_types=["inf2.48xlarge"])
    assert any("has no row under 'models'" in w for w in config.warnings)
    assert any("host driver for optimum-neuron 0.4.5 unverified" in w for w in config.warnings)


def test_memory_formula() -> None:
    qwen = compat.model("Qwen/Qwen3-8B")
    assert qwen is not None
    kv_per_token = 2 * 36 * 8 * 128 * 2
    assert sizing.required_bytes(qwen, 8, 4096) == pytest.approx(8.19e9 * 2 + kv_per_token * 8 * 4096)


def test_optimum_families_check_the_model_type(monkeypatch: pytest.MonkeyPatch) -> None:
    # optimum-neuron 0.4.5 serves by config.json model_type (auto_models.py); qwen3 is one of them
    assert make_config(instance_types=["inf2.48xlarge"]).instance_families == ("inf2",)
    monkeypatch.setitem(compat.matrix()["models"]["Qwen/Qwen3-8B"], "model_type", "gemma3")
    with pytest.raises(ConfigError, match=r"has model_type 'gemma3', which optimum-neuron 0\.4\.5"):
        make_config(instance_types=["inf2.48xlarge"])


def test_tensor_parallel_per_family_from_the_cli() -> None:
    config = make_config(instance_types="trn2.48xlarge,trn1.32xlarge", tensor_parallel_by_family="trn1=8")
    assert (config.tp_for("trn1"), config.tp_for("trn2")) == (8, 4)
