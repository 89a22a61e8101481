"""The local fleet's summary (summary.json), its terminal text and its picture, from the emulator's records.

The invariant figures come from local/invariants.py: lost_events counts (record, subscribed
agent) pairs read back from the stream with no decision at that position, plus rejected
records with no quarantine record; duplicate_actions counts executions beyond the first per
pair (matched through their inputs, not names) plus executions that match no pair;
duplicate_decisions and misplaced_decisions name the pairs/decisions that break "exactly one
decision at that position". Pass the workers' agent catalog (`agents`); without it the
subscriptions are inferred from the decisions (`subscriptions: "inferred"`), which is weaker.
Every record read back is decoded as the workers decode it (agentfleet.ingest.adapters):
records_by_adapter counts them by wire format, `dropped` counts the ones the adapters drop on
purpose (CloudWatch Logs control messages: neither decided nor quarantined, never lost).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from agentfleet.decide.guardrails import DISPATCHED_OUTCOMES
from agentfleet.local.invariants import detect
from agentfleet.local.records import Snapshot
from agentfleet.spec.catalog import AgentSpec
from agentfleet.spec.events import MAX_KINESIS_RECORD_BYTES


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no numpy needed); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return round(ordered[rank - 1], 1)


def summarize(snap: Snapshot, *, events_sent: int, workers: int, killed_workers: list[str], wall_s: float,
              approvals_answered: int, scenario: str, agents: Sequence[AgentSpec] | None = None,
              max_record_bytes: int = MAX_KINESIS_RECORD_BYTES) -> dict[str, Any]:
    decisions, quarantines = snap.audit.decisions, snap.audit.quarantines
    arrival = {(r.shard_id, r.sequence_number): r.arrival for r in snap.stream}
    found = detect(snap, agents, max_record_bytes)
    by_adapter = Counter(r.decoded(max_record_bytes)[0] for r in snap.stream)
    lost_positions = {position for position, _ in found.lost} | set(found.unquarantined)
    decided_positions = {(d.get("shard_id"), d.get("sequence_number"), d.get("sub_sequence_number"))
                         for d in decisions}
    decided_records = [r for r in snap.stream if r.position in decided_positions]
    duplicates = found.duplicate_actions + len(found.unmatched_executions)
    runs = Counter(ex["name"] for ex in snap.executions)
    dispatched = [d for d in decisions if d.get("outcome") in DISPATCHED_OUTCOMES]
    missing_actions = [d["decision_id"] for d in dispatched if d["decision_id"] not in runs]
    status = Counter(ex["status"] for ex in snap.executions)

    latencies = [(_epoch(d["at"]) - arrival[(d["shard_id"], d["sequence_number"])]) * 1000 for d in decisions
                 if (d.get("shard_id"), d.get("sequence_number")) in arrival and d.get("at")]
    tokens = sum(int(d.get("completion_tokens", 0)) for d in decisions)
    window = (max(_epoch(d["at"]) for d in decisions) - min(arrival.values())) if decisions and arrival else 0.0
    return {
        "scenario": scenario,
        "events_sent": events_sent,
        "stream_records": len(snap.stream),
        "records_by_adapter": dict(by_adapter.most_common()),
        "dropped": len(found.dropped),
        "quarantined_dropped": [_name(position) for position in found.quarantined_dropped][:20],
        "events_decided": len(decided_records),
        "subscriptions": "catalog" if agents is not None else "inferred",
        "pairs": found.pairs,
        "lost_events": len(found.lost) + len(found.unquarantined),
        "lost_pairs": [_name(position, agent) for position, agent in found.lost][:20],
        "unquarantined": [_name(position) for position in found.unquarantined][:20],
        "lost_records": len(lost_positions),
        "duplicate_decisions": [_name(position, agent) for position, agent in found.duplicate_decisions][:20],
        "misplaced_decisions": found.misplaced[:20],
        "unmatched_executions": found.unmatched_executions[:20],
        "decisions": len(decisions),
        "decisions_by_outcome": dict(Counter(str(d.get("outcome")) for d in decisions).most_common()),
        "decisions_by_action": dict(Counter(str(d.get("action") or "(none)") for d in decisions).most_common()),
        "duplicate_actions": duplicates,
        "missing_actions": len(missing_actions),
        "actions_started": len(snap.executions),
        "actions_succeeded": status.get("SUCCEEDED", 0),
        "actions_failed": sum(n for s, n in status.items() if s not in ("SUCCEEDED", "RUNNING")),
        "actions_running": status.get("RUNNING", 0),
        "action_outcomes": dict(Counter(str(o.get("outcome")) for o in snap.audit.outcomes).most_common()),
        "approvals_requested": sum(1 for d in dispatched if d.get("approval_required")),
        "approvals_answered": approvals_answered,
        "quarantined": dict(Counter(str(q.get("reason")) for q in quarantines).most_common()),
        "latency_ms": {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
                       "max": round(max(latencies), 1) if latencies else 0.0},
        "inference_ms": {"p50": percentile([float(d.get("latency_ms", 0)) for d in decisions], 50)},
        "generated_tokens": tokens,
        "tokens_per_s": round(tokens / window, 1) if window > 0 else 0.0,
        "memory_items": snap.memory_items,
        "workers": workers,
        "killed_workers": killed_workers,
        "wall_s": round(wall_s, 1),
        "series": _series(snap, arrival, latencies),
    }


def _name(position: tuple[str, str, int | None], agent: str = "") -> str:
    shard, seq, sub = position
    return f"{shard}:{seq}" + ("" if sub is None else f":{sub}") + (f" {agent}" if agent else "")


def _series(snap: Snapshot, arrival: dict[tuple[str, str], float], latencies: list[float]) -> dict[str, Any]:
    """Seconds since the first arrival, for the picture (kept in summary.json so it can be redrawn)."""
    start = min(arrival.values()) if arrival else 0.0
    return {
        "arrived_s": sorted(round(t - start, 2) for t in arrival.values()),
        "decided_s": sorted(round(_epoch(d["at"]) - start, 2) for d in snap.audit.decisions if d.get("at")),
        "quarantined_s": sorted(round(_epoch(q["at"]) - start, 2) for q in snap.audit.quarantines if q.get("at")),
        "actions_done_s": sorted(round(ex["stopDate"] - start, 2) for ex in snap.executions if ex["stopDate"]),
        "latency_ms": [round(v, 1) for v in latencies],
    }


def text(summary: dict[str, Any]) -> str:
    """The human summary printed at the end of a run."""
    lat, q = summary["latency_ms"], summary["quarantined"]
    lines = [
        f"scenario {summary['scenario']}: {summary['events_sent']} events sent, {summary['stream_records']} read "
        f"back from the stream, {summary['workers']} workers"
        + (f" ({', '.join(summary['killed_workers'])} killed mid-run)" if summary["killed_workers"] else ""),
        f"records     by adapter {_fmt(summary.get('records_by_adapter', {}))}; dropped {summary.get('dropped', 0)}"
        + (f" ({len(summary['quarantined_dropped'])} of them quarantined by mistake)"
           if summary.get("quarantined_dropped") else ""),
        f"decided     {summary['events_decided']} events -> {summary['decisions']} decisions "
        f"{_fmt(summary['decisions_by_outcome'])}",
        f"by action   {_fmt(summary['decisions_by_action'])}",
        f"quarantined {sum(q.values())} {_fmt(q)}",
        f"actions     {summary['actions_started']} started, {summary['actions_succeeded']} succeeded, "
        f"{summary['actions_failed']} failed, {summary['actions_running']} running; outcomes "
        f"{_fmt(summary['action_outcomes'])}; approvals {summary['approvals_answered']}/"
        f"{summary['approvals_requested']} answered",
        *(["deliveries  by target " + ", ".join(f"{t} {d.get('accepted', 0)} accepted/{d.get('rejected', 0)} rejected"
                                                 for t, d in summary["deliveries_by_target"].items())
           + f"; responses recorded in audit {_fmt(summary.get('responses_recorded_by_target', {}))}"]
          if summary.get("deliveries_by_target") is not None else []),
        f"latency     p50 {lat['p50']:.0f} ms, p99 {lat['p99']:.0f} ms (arrival on the stream -> decision recorded); "
        f"{summary['tokens_per_s']} generated tokens/s across the fleet",
        f"memory      {summary['memory_items']} agent/subject items",
        *([f"model       {summary['model']['engine']} {summary['model']['model_id']}"
           + (f" at {summary['model']['url']}" if summary["model"].get("url") else "")] if summary.get("model") else []),
        f"invariants  {summary['pairs']} (record, agent) pairs: lost_events={summary['lost_events']} "
        f"duplicate_actions={summary['duplicate_actions']} duplicate_decisions={len(summary['duplicate_decisions'])} "
        f"misplaced_decisions={len(summary['misplaced_decisions'])} missing_actions={summary['missing_actions']}"
        f"   wall {summary['wall_s']} s",
    ]
    return "\n".join(lines)


def _fmt(counts: dict[str, int]) -> str:
    return "(" + ", ".join(f"{k} {v}" for k, v in counts.items()) + ")" if counts else "(none)"


def write(summary: dict[str, Any], out_dir: Path) -> tuple[Path, Path | None]:
    """summary.json and summary.png (None if matplotlib is missing); returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "summary.json"
    json_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return json_path, None
    series = summary["series"]
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(16, 4.8))
    for key, label in (("arrived_s", "on the stream"), ("decided_s", "decisions"),
                       ("quarantined_s", "quarantined"), ("actions_done_s", "actions finished")):
        times = series[key]
        ax1.step(times, range(1, len(times) + 1), where="post", label=label)
    ax1.set(title="Events over time", xlabel="seconds since first event", ylabel="cumulative count")
    ax1.legend()
    actions = summary["decisions_by_action"]
    ax2.barh(list(actions), list(actions.values()), color="tab:blue")
    ax2.set(title="Decisions by action", xlabel="decisions")
    ax3.hist(series["latency_ms"] or [0], bins=30, color="tab:green")
    for q in ("p50", "p99"):
        ax3.axvline(summary["latency_ms"][q], color="black", linestyle="--" if q == "p50" else ":", label=q)
    ax3.set(title="Latency: stream arrival -> decision", xlabel="ms", ylabel="decisions")
    ax3.legend()
    fig.suptitle(f"Agent Fleet Kit local run: {summary['scenario']}, {summary['workers']} workers, "
                 f"lost {summary['lost_events']}, duplicate actions {summary['duplicate_actions']}")
    fig.tight_layout()
    png_path = out_dir / "summary.png"
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return json_path, png_path
