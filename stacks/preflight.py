"""`python -m stacks.preflight` (`make preflight`): can this account and region run the configured fleet?

With AWS credentials, read-only: (1) which AZs offer each instance type (EC2 DescribeInstanceTypeOfferings
by AZ id) and whether `availability_zone_ids` has one that does, (2) the On-Demand vCPU quota of each
instance class against max_capacity instances (Service Quotas GetServiceQuota), (3) that the DLAMI SSM
parameter resolves, (4) that the hub-token secret exists when one is configured or the model is gated.
Prints one line per check: OK, WARN (could not check; says why) or FAIL. Exit status: 0 no FAIL, 1 a FAIL,
2 bad config. Synth never calls this: it needs credentials and the network (invariant 6).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from agentfleet.ops.aws import client as aws_client
from agentfleet.spec import compat
from agentfleet.spec.catalog import ConfigError
from agentfleet.spec.fleet import FleetConfig
from stacks.cost import load_context

ROOT = Path(__file__).resolve().parent.parent
# Service Quotas codes for "Running On-Demand Trn instances" / "... Inf instances" (vCPUs), as read with
# `aws service-quotas list-service-quotas --service-code ec2` in a third-party API reading (2026-10-03,
# search index doc 70891553229); not re-read here: a wrong code shows as WARN, never as a pass.
ON_DEMAND_QUOTA = {"trn": "L-2C3B7624", "inf": "L-1945791B"}
Check = tuple[str, str, str]  # (status, check, detail)
Client = Callable[[str], Any]


def offerings(config: FleetConfig, client: Client) -> list[Check]:
    ec2 = client("ec2")
    found = ec2.describe_instance_type_offerings(
        LocationType="availability-zone-id",
        Filters=[{"Name": "instance-type", "Values": list(config.instance_types)}])["InstanceTypeOfferings"]
    checks: list[Check] = []
    for itype in config.instance_types:
        zones = sorted(o["Location"] for o in found if o["InstanceType"] == itype)
        wanted = [z for z in zones if z in config.availability_zone_ids] if config.availability_zone_ids else zones
        if not zones:
            checks.append(("FAIL", f"offering {itype}", "not offered in any AZ of this region"))
        elif not wanted:
            checks.append(("FAIL", f"offering {itype}", f"offered in {', '.join(zones)}, none of "
                                                       f"availability_zone_ids {', '.join(config.availability_zone_ids)}"))
        else:
            checks.append(("OK", f"offering {itype}", f"AZ ids {', '.join(wanted)}"))
    return checks


def quotas(config: FleetConfig, client: Client) -> list[Check]:
    ec2, sq = client("ec2"), client("service-quotas")
    described = ec2.describe_instance_types(InstanceTypes=list(config.instance_types))["InstanceTypes"]
    vcpus = {t["InstanceType"]: t["VCpuInfo"]["DefaultVCpus"] for t in described}
    checks: list[Check] = []
    for kind, code in ON_DEMAND_QUOTA.items():
        types = [t for t in config.instance_types if t.startswith(kind)]
        if not types:
            continue
        need = config.max_capacity * max(vcpus.get(t, 0) for t in types)
        try:
            value = sq.get_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"]["Value"]
        except (ClientError, BotoCoreError) as exc:
            checks.append(("WARN", f"quota {kind} On-Demand", f"could not read {code}: {exc}"))
            continue
        status = "OK" if value >= need else "FAIL"
        checks.append((status, f"quota {kind} On-Demand", f"{code} = {value:g} vCPUs; max_capacity "
                                                          f"{config.max_capacity} x up to {need // config.max_capacity} "
                                                          f"vCPUs needs {need}"))
    return checks


def dlami(config: FleetConfig, client: Client) -> list[Check]:
    try:
        image = client("ssm").get_parameter(Name=config.dlami_ssm_parameter)["Parameter"]["Value"]
    except ClientError as exc:
        return [("FAIL", "dlami_ssm_parameter", f"{config.dlami_ssm_parameter}: {exc}")]
    return [("OK", "dlami_ssm_parameter", f"{config.dlami_ssm_parameter} = {image}")]


def hub_token(config: FleetConfig, client: Client) -> list[Check]:
    gated = (compat.model(config.model_id) or {}).get("gated")
    if not config.hf_token_secret_name:
        if gated:
            return [("FAIL", "hf_token_secret_name", f"{config.model_id} is gated; set hf_token_secret_name")]
        return [("OK", "hf_token_secret_name", f"none needed ({config.model_id} gated: {gated})")]
    try:
        client("secretsmanager").describe_secret(SecretId=config.hf_token_secret_name)
    except ClientError as exc:
        return [("FAIL", "hf_token_secret_name", f"{config.hf_token_secret_name}: {exc}")]
    return [("OK", "hf_token_secret_name", f"{config.hf_token_secret_name} exists")]


def run(config: FleetConfig, client: Client = aws_client) -> list[Check]:
    checks: list[Check] = []
    for step in (offerings, quotas, dlami, hub_token):
        try:
            checks += step(config, client)
        except (ClientError, BotoCoreError) as exc:
            checks.append(("WARN", step.__name__, f"could not check: {exc}"))
    return checks


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m stacks.preflight", description=__doc__.splitlines()[0])
    p.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE",
                   help="override a cdk.json context key, as with `cdk synth -c` (repeatable)")
    p.add_argument("--cdk-json", type=Path, default=ROOT / "cdk.json")
    args = p.parse_args(argv)
    try:
        config = FleetConfig.from_context(load_context(args.cdk_json, args.context).get)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    checks = run(config)
    for warning in config.warnings:
        checks.append(("WARN", "compat matrix", warning))
    for status, name, detail in checks:
        print(f"{status:<4} {name}: {detail}")
    return 1 if any(status == "FAIL" for status, _, _ in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
