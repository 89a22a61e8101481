"""The Neuron fleet's template: one launch template and image per family in one group, hooks inline,
the container flags the DLC quickstart needs, On-Demand by default, Capacity Blocks single-type."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from tests.cdk.conftest import synth


def _fleet(**overrides: Any) -> Template:
    return synth(**overrides)["AgentFleet"]


@pytest.fixture(scope="module")
def mixed() -> Template:
    # a Spot family (trn1) beside the On-Demand trn2 base: two families, two images, Spot share
    return _fleet(instance_types=["trn2.48xlarge", "trn1.32xlarge"], on_demand_percentage_above_base=50,
                  tensor_parallel_by_family={"trn1": 8})


def _group(template: Template) -> dict[str, Any]:
    (group,) = template.find_resources("AWS::AutoScaling::AutoScalingGroup").values()
    return dict(group)


def _user_data(template: Template) -> list[str]:
    return [json.dumps(t["Properties"]["LaunchTemplateData"]["UserData"])
            for t in template.find_resources("AWS::EC2::LaunchTemplate").values()]


def test_hooks_are_inline_not_separate_resources(template_of: Any) -> None:
    fleet = template_of("AgentFleet")
    assert not fleet.find_resources("AWS::AutoScaling::LifecycleHook")
    hooks = _group(fleet)["Properties"]["LifecycleHookSpecificationList"]
    assert {(h["LifecycleHookName"], h["LifecycleTransition"], h["DefaultResult"]) for h in hooks} == {
        ("agentfleet-model-ready", "autoscaling:EC2_INSTANCE_LAUNCHING", "ABANDON"),
        ("agentfleet-drain", "autoscaling:EC2_INSTANCE_TERMINATING", "CONTINUE")}
    assert hooks[0]["HeartbeatTimeout"] == 3600


def test_trn_default_is_on_demand_with_short_grace_warmup_and_a_signalled_rolling_update(template_of: Any) -> None:
    group = _group(template_of("AgentFleet"))
    props = group["Properties"]
    distribution = props["MixedInstancesPolicy"]["InstancesDistribution"]
    assert distribution["OnDemandPercentageAboveBaseCapacity"] == 100
    assert "SpotAllocationStrategy" not in distribution and "CapacityRebalance" not in props
    assert props["HealthCheckGracePeriod"] == 300 and props["DefaultInstanceWarmup"] == 600
    update = group["UpdatePolicy"]["AutoScalingRollingUpdate"]
    assert update["WaitOnResourceSignals"] is True and update["PauseTime"] == "PT1H"


def test_user_data_runs_the_container_as_the_dlc_quickstart_needs(template_of: Any) -> None:
    for data in _user_data(template_of("AgentFleet")):
        for flag in ("--cap-add IPC_LOCK", "--ulimit memlock=-1", "--shm-size 10g", "--restart on-failure",
                     "NEURON_SKIP_EFA_AFFINITY=1", '--group-add \\"$NEURON_GID\\"', "groupadd --system neuron",
                     'AGENTFLEET_IMAGE_URI=\\"$IMAGE_REF\\"', "AGENTFLEET_ENGINE=vllm-neuron",
                     "AGENTFLEET_TENSOR_PARALLEL_DEGREE=4", "cloudformation signal-resource"):
            assert flag in data, flag
        for banned in ("unless-stopped", "SYS_ADMIN", "stat -c %g"):
            assert banned not in data, banned


def test_one_launch_template_and_image_per_family_in_one_group(mixed: Template) -> None:
    templates = mixed.find_resources("AWS::EC2::LaunchTemplate")
    assert len(templates) == 2
    data = _user_data(mixed)
    assert sum("AGENTFLEET_ENGINE=vllm-neuron" in d for d in data) == 1
    assert sum("AGENTFLEET_ENGINE=optimum-neuron" in d and "AGENTFLEET_TENSOR_PARALLEL_DEGREE=8" in d for d in data) == 1
    assert sum("AGENTFLEET_ENGINE=vllm-neuron" in d and "AGENTFLEET_TENSOR_PARALLEL_DEGREE=4" in d for d in data) == 1
    # two image assets: two different repository URIs in the user data
    assert len({d.split("IMAGE=")[1][:200] for d in data}) == 2
    overrides = _group(mixed)["Properties"]["MixedInstancesPolicy"]["LaunchTemplate"]["Overrides"]
    refs = {o["InstanceType"]: o["LaunchTemplateSpecification"]["LaunchTemplateId"]["Ref"] for o in overrides}
    assert set(refs) == {"trn2.48xlarge", "trn1.32xlarge"} and len(set(refs.values())) == 2


def test_spot_share_and_rebalance_only_with_a_spot_family(mixed: Template) -> None:
    props = _group(mixed)["Properties"]
    assert props["CapacityRebalance"] is True
    assert props["MixedInstancesPolicy"]["InstancesDistribution"]["SpotAllocationStrategy"] == "price-capacity-optimized"


def test_capacity_block_is_a_single_type_group_on_the_reservation() -> None:
    fleet = _fleet(instance_types=["trn2.48xlarge"], capacity_block=True, capacity_reservation_id="cr-0abc")
    props = _group(fleet)["Properties"]
    assert "MixedInstancesPolicy" not in props and "LaunchTemplate" in props
    fleet.has_resource_properties("AWS::EC2::LaunchTemplate", {"LaunchTemplateData": Match.object_like({
        "InstanceMarketOptions": {"MarketType": "capacity-block"},
        "CapacityReservationSpecification": {"CapacityReservationTarget": {"CapacityReservationId": "cr-0abc"}}})})


def test_subnets_in_the_configured_az_ids_and_one_nat() -> None:
    fleet = _fleet(availability_zone_ids=["use2-az1", "use2-az3"], single_nat_gateway=True)
    subnets = fleet.find_resources("AWS::EC2::Subnet")
    assert {s["Properties"]["AvailabilityZoneId"] for s in subnets.values()} == {"use2-az1", "use2-az3"}
    assert all("AvailabilityZone" not in s["Properties"] for s in subnets.values())
    assert len(fleet.find_resources("AWS::EC2::NatGateway")) == 1


def test_instance_role_may_set_instance_health_and_signal_the_stack(template_of: Any) -> None:
    template_of("AgentFleet").has_resource_properties("AWS::IAM::Policy", {"PolicyDocument": {
        "Statement": Match.array_with([
            Match.object_like({"Action": "cloudformation:SignalResource", "Resource": {"Ref": "AWS::StackId"}}),
            Match.object_like({"Action": Match.array_with(["autoscaling:SetInstanceHealth"]),
                               "Condition": {"StringEquals": {"autoscaling:ResourceTag/Fleet": "agentfleet"}}}),
        ])}})


def test_user_data_starts_one_replica_per_tp_group_where_the_matrix_knows_the_cores(
        template_of: Any, mixed: Template) -> None:
    default = _user_data(template_of("AgentFleet"))
    trn2 = [d for d in default if "AGENTFLEET_REPLICAS=" in d]
    # trn2.48xlarge: 64 logical cores / TP 4 = 16 replicas; trn3.48xlarge's cores are unknown: resolved at boot
    assert len(trn2) == 1 and "AGENTFLEET_REPLICAS=16 " in trn2[0] and len(default) == 2
    # optimum-neuron (trn1) serves one in-process model
    assert sum("AGENTFLEET_ENGINE=optimum-neuron" in d and "AGENTFLEET_REPLICAS=1 " in d for d in _user_data(mixed)) == 1
    for data in default:
        assert "--device=$dev" in data, "every Neuron device goes into the container"
