"""`python -m stacks.preflight` against the emulator (moto answers DescribeInstanceTypeOfferings,
DescribeInstanceTypes, SSM and Secrets Manager; it does not serve Service Quotas, so the quota check
shows as WARN with the reason, never as a pass)."""

from __future__ import annotations

from typing import Any

import pytest

from agentfleet.ops.aws import client
from stacks import preflight
from tests.cdk.conftest import make_config

pytestmark = pytest.mark.integration


@pytest.fixture
def region(aws_env: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-2")
    monkeypatch.setenv("AWS_REGION", "us-east-2")
    return "us-east-2"


def _by_name(checks: list[preflight.Check]) -> dict[str, tuple[str, str]]:
    return {name: (status, detail) for status, name, detail in checks}


def test_offerings_by_az_id_and_configured_zones(region: str) -> None:
    config = make_config(instance_types=["trn2.48xlarge"])
    (status, detail) = _by_name(preflight.offerings(config, client))["offering trn2.48xlarge"]
    assert status == "OK" and "use2-az" in detail
    narrowed = make_config(instance_types=["trn2.48xlarge"], availability_zone_ids=["use2-az9"])
    assert _by_name(preflight.offerings(narrowed, client))["offering trn2.48xlarge"][0] == "FAIL"


def test_dlami_parameter_missing_fails_and_present_passes(region: str) -> None:
    config = make_config(dlami_ssm_parameter="/agentfleet-test/dlami/image_id")
    assert _by_name(preflight.dlami(config, client))["dlami_ssm_parameter"][0] == "FAIL"
    client("ssm").put_parameter(Name="/agentfleet-test/dlami/image_id", Value="ami-0123456789abcdef0", Type="String")
    assert _by_name(preflight.dlami(config, client))["dlami_ssm_parameter"] == (
        "OK", "/agentfleet-test/dlami/image_id = ami-0123456789abcdef0")


def test_hub_token_secret_must_exist_when_named(region: str) -> None:
    config = make_config(hf_token_secret_name="agentfleet-test/hf-token")
    assert _by_name(preflight.hub_token(config, client))["hf_token_secret_name"][0] == "FAIL"
    client("secretsmanager").create_secret(Name="agentfleet-test/hf-token", SecretString="hf_x")
    assert _by_name(preflight.hub_token(config, client))["hf_token_secret_name"][0] == "OK"


def test_run_never_passes_what_it_could_not_read(region: str) -> None:
    checks = preflight.run(make_config(instance_types=["trn2.48xlarge", "inf2.48xlarge"]), client)
    quota = [c for c in checks if c[1].startswith("quota")]
    assert quota and all(status in ("WARN", "OK", "FAIL") for status, _, _ in quota)
    assert not any(status == "OK" and "could not" in detail for status, _, detail in checks)


def test_cli_exit_status(region: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert preflight.main(["-c", "instance_types=trn2.48xlarge", "-c", "dlami_ssm_parameter=/agentfleet-test/none"]) == 1
    out = capsys.readouterr().out
    assert "FAIL dlami_ssm_parameter" in out and "OK   offering trn2.48xlarge" in out
    assert preflight.main(["-c", "tensor_parallel_degree=3"]) == 2


class _Quotas:
    """Service Quotas as the real API answers GetServiceQuota (moto does not serve it)."""

    def __init__(self, value: float) -> None:
        self.value = value
        self.asked: list[str] = []

    def get_service_quota(self, ServiceCode: str, QuotaCode: str) -> dict[str, Any]:
        self.asked.append(QuotaCode)
        return {"Quota": {"Value": self.value}}


@pytest.mark.parametrize(("value", "status"), [(256.0, "FAIL"), (1024.0, "OK")])
def test_quota_against_max_capacity(region: str, value: float, status: str) -> None:
    quotas = _Quotas(value)
    config = make_config(instance_types=["trn2.48xlarge"])  # max_capacity 4
    checks = preflight.quotas(config, lambda name: quotas if name == "service-quotas" else client(name))
    ((got, name, detail),) = checks
    assert (got, name, quotas.asked) == (status, "quota trn On-Demand", ["L-2C3B7624"])
    assert "max_capacity 4" in detail


def test_quota_unreadable_in_the_emulator_is_a_warning(region: str) -> None:
    ((status, _, detail),) = preflight.quotas(make_config(instance_types=["trn2.48xlarge"]), client)
    assert status == "WARN" and "could not read L-2C3B7624" in detail
