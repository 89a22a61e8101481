"""Builds the cost report (one JSON-able document) and renders it as a text table and a PNG chart."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from agentfleet.spec.fleet import FleetConfig
from stacks import cost_model as cm
from stacks import cost_throughput as ct
from stacks.pricing import HOW_TO_SUPPLY, PriceTable

NOT_INCLUDED = ("data transfer", "NAT gateway / VPC endpoints", "KMS", "Secrets Manager", "ECR", "SNS",
                "Savings Plans / Reserved discounts", "taxes")


def build(config: FleetConfig, table: PriceTable, w: cm.Workload, *, region: str,
          gpus: tuple[str, ...] = cm.DEFAULT_GPUS, hours: float = cm.HOURS_PER_MONTH) -> dict[str, Any]:
    for gpu in gpus:  # an unknown GPU type is an error up front, like an unknown fleet type
        table.on_demand(gpu)
    levels = {"min": config.min_capacity, "desired": config.desired_capacity, "max": config.max_capacity}
    service_lines = cm.services(config, w, table, config.desired_capacity, hours)
    scenario_docs: list[dict[str, Any]] = []
    rate_ids = [rid for ln in service_lines for rid in ln.rate_ids]
    for s in cm.scenarios(config):
        est = {lvl: cm.fleet_estimate(config, s, table, w, n, lvl, hours) for lvl, n in levels.items()}
        gpu_rows = [cm.gpu_baseline(est["desired"], g, config, table, w, hours) for g in gpus]
        scenario_docs.append({"name": s.name, "od_types": list(s.od_types), "spot_types": list(s.spot_types),
                              "estimates": {k: asdict(v) for k, v in est.items()},
                              "gpu": [asdict(g) for g in gpu_rows]})
        rate_ids += [f"{kind}/{t}" for t in s.od_types + s.spot_types
                     for kind in ("ec2/on-demand", "ec2/spot", "throughput")]
    rate_ids += ["ec2/spot-discount", "ebs/gp3-gb-month"]
    rate_ids += [f"{kind}/{g}" for g in gpus for kind in ("ec2/on-demand", "throughput")]
    rate_ids += [ct.replica_id(t) for t in config.instance_types]
    used = table.used(rate_ids)
    missing = sorted({m for sd in scenario_docs for m in sd["estimates"]["desired"]["missing"]}
                     | {r.id for r in used if r.value is None})
    return {
        "fleet": config.fleet_name, "region": region, "hours_per_month": hours,
        "capacity": levels | {"on_demand_base": config.on_demand_base_capacity,
                              "on_demand_pct_above_base": config.on_demand_percentage_above_base},
        "instance_types": list(config.instance_types), "workload": asdict(w),
        "services": [asdict(ln) for ln in service_lines], "scenarios": scenario_docs,
        "missing": missing, "how_to_supply": HOW_TO_SUPPLY.format(id="<row id>") if missing else "",
        "prices": [r.to_json() for r in used], "not_included": list(NOT_INCLUDED),
        "throughput": _throughput(config, table, gpus), "agents": _agents(config, scenario_docs),
    }


def _throughput(config: FleetConfig, table: PriceTable, gpus: tuple[str, ...]) -> list[dict[str, Any]]:
    """Per type: replicas (logical cores / TP; None outside the matrix) and tokens/s per instance with its basis."""
    rows = []
    for t in [*config.instance_types, *gpus]:
        replicas = ct.replicas_for(config, t)
        tput, basis = ct.instance_throughput(config, table, t)
        rows.append({"type": t, "replicas": replicas, "tokens_per_second": tput, "basis": basis,
                     "tensor_parallel": config.tp_for(t.split(".")[0]) if replicas is not None else None})
    return rows


def _agents(config: FleetConfig, scenario_docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per agent: its estimated token share (by rate limit) of each scenario's tokens and $ at desired capacity."""
    out = []
    for name, share in ct.agent_shares(config).items():
        per = {}
        for sd in scenario_docs:
            est = sd["estimates"]["desired"]
            per[sd["name"]] = {
                "usd_month": None if est["total_month"] is None else est["total_month"] * share,
                "tokens_month": None if est["tokens_month"] is None else est["tokens_month"] * share}
        out.append({"agent": name, "share": share, "basis": "rate_limit_per_minute share (estimate)",
                    "scenarios": per})
    return out


def headline(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The scenario the chart compares with GPUs: `mix` if priced, else the first priced type."""
    ordered = sorted(doc["scenarios"], key=lambda s: s["name"] != "mix")
    return next((s for s in ordered if s["estimates"]["desired"]["usd_per_m_tokens"] is not None), None)


def _m(x: float | None, digits: int = 2) -> str:
    return "missing" if x is None else f"{x:,.{digits}f}"


def _dash(x: int | None) -> str:
    return "-" if x is None else str(x)


def _ratio(x: float | None) -> str:
    return "missing" if x is None else f"{x:.2f}x"


def render_text(doc: dict[str, Any]) -> str:
    cap, w = doc["capacity"], doc["workload"]
    od, spot = cm.market_split(cap["desired"], cap["on_demand_base"], cap["on_demand_pct_above_base"])
    out = [f"Agent Fleet cost estimate - fleet {doc['fleet']}, {doc['region']}, {doc['hours_per_month']:g} h/month",
           f"Capacity {cap['min']}..{cap['max']} (desired {cap['desired']}); On-Demand base {cap['on_demand_base']} "
           f"+ {cap['on_demand_pct_above_base']}% above base -> at desired {od:g} On-Demand + {spot:g} Spot",
           f"Workload {w['events_per_second']:.2f} events/s, {w['event_kb']:g} KB/event, "
           f"{w['action_fraction']:.0%} act; utilization {w['utilization']:.0%}", ""]
    names = [s["name"] for s in doc["scenarios"]]
    width = max(20, *(len(n) + 2 for n in names))
    rows: list[tuple[str, list[str]]] = []
    for label, key, fmt in (
        ("On-Demand $/h per instance", "od_price", _m), ("Spot $/h per instance", "spot_price", _m),
        ("Compute $/month", "compute_month", _m), ("Root volumes $/month", "ebs_month", _m),
        ("Services $/month", "services_month", _m), ("Total $/month", "total_month", _m),
        ("Total $/hour", "total_hour", _m), ("Tokens/month (millions)", "tokens_month", None),
        ("$ per million tokens", "usd_per_m_tokens", lambda x: _m(x, 4)),
    ):
        cells = []
        for s in doc["scenarios"]:
            v = s["estimates"]["desired"][key]
            if key == "spot_price" and not s["estimates"]["desired"]["spot"]:
                cells.append("no Spot")  # the matrix shows no Spot for its types: all On-Demand
                continue
            cells.append(("missing" if v is None else f"{v / 1e6:,.0f}") if fmt is None else fmt(v))
        rows.append((label, cells))
    rows.append(("Total $/month at min..max", [
        f"{_m(s['estimates']['min']['total_month'], 0)}..{_m(s['estimates']['max']['total_month'], 0)}"
        for s in doc["scenarios"]]))
    out.append(f"{'Fleet at desired capacity':<30}" + "".join(f"{n:>{width}}" for n in names))
    out += [f"{label:<30}" + "".join(f"{c:>{width}}" for c in cells) for label, cells in rows]
    out += ["", f"{'GPU baseline, same tokens':<30}{'GPU':>16}{'instances':>11}{'$/month':>14}{'$/M tokens':>12}"
            f"{'GPU/fleet':>11}"]
    for s in doc["scenarios"]:
        for g in s["gpu"]:
            out.append(f"{'  vs ' + s['name']:<30}{g['itype']:>16}{_m(g['instances'], 0):>11}"
                       f"{_m(g['total_month']):>14}{_m(g['usd_per_m_tokens'], 4):>12}"
                       f"{_ratio(g['ratio']):>11}")
    out += ["", f"{'Throughput per instance':<30}{'replicas':>9}{'TP':>5}{'tokens/s':>11}  basis "
                "(replicas = logical cores / TP; '-' = not in compat.json or cores unknown)"]
    out += [f"{'  ' + r['type']:<30}{_dash(r['replicas']):>9}{_dash(r['tensor_parallel']):>5}"
            f"{_m(r['tokens_per_second'], 0):>11}  {r['basis']}" for r in doc["throughput"]]
    out += ["", f"{'Per agent, $/month at desired':<30}{'share':>7}" + "".join(f"{n:>{width}}" for n in names)]
    out += [f"{'  ' + a['agent']:<30}{a['share']:>7.1%}"
            + "".join(f"{_m(a['scenarios'][n]['usd_month']):>{width}}" for n in names) for a in doc["agents"]]
    out += ["  (share = the agent's rate_limit_per_minute / their sum: an estimate, no config key gives "
            "expected events per agent)"]
    out += ["", f"{'Services (every scenario)':<30}{'$/month':>12}  basis"]
    out += [f"{ln['component']:<30}{_m(ln['usd_month']):>12}  {ln['basis']}" for ln in doc["services"]]
    out += ["", "Prices used (status: see stacks/prices.json)"]
    out += [f"  {p['id']:<44}{_m(p['value'], 5):>12}  {p['region'] or '-':<10}{p['status']:<14}{p['unit']}\n"
            f"  {'':<44}{'':>12}  source: {p['source']}" for p in doc["prices"]]
    if doc["missing"]:
        out += ["", "MISSING (shown as 'missing', never estimated): " + ", ".join(doc["missing"]),
                "  To supply: " + doc["how_to_supply"]]
    out += ["", "Not included: " + ", ".join(doc["not_included"])]
    return "\n".join(out) + "\n"


def write_chart(doc: dict[str, Any], path: Path) -> None:
    """Two panels: $/month and $/M tokens for each fleet scenario and the GPU baselines of the headline one."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never a display
    import matplotlib.pyplot as plt

    bars = [(s["name"], s["estimates"]["desired"]["total_month"], s["estimates"]["desired"]["usd_per_m_tokens"],
             "tab:green") for s in doc["scenarios"]]
    head = headline(doc)
    if head:
        bars += [(f"{g['itype']}\n(vs {head['name']})", g["total_month"], g["usd_per_m_tokens"], "tab:gray")
                 for g in head["gpu"]]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, idx, title in ((axes[0], 1, "$ per month"), (axes[1], 2, "$ per million tokens")):
        labels = [b[0] for b in bars]
        values = [b[idx] or 0.0 for b in bars]
        ax.bar(labels, values, color=[b[3] for b in bars])
        for x, b in enumerate(bars):
            ax.annotate("missing" if b[idx] is None else f"{b[idx]:,.2f}", (x, values[x]), ha="center",
                        va="bottom", fontsize=8)
        ax.set_title(title)
        ax.tick_params(axis="x", labelsize=8)
    fig.suptitle(f"Fleet {doc['fleet']} ({doc['region']}): Trainium/Inferentia vs GPU, same token volume")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
