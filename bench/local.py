"""Benchmark 4: local throughput end to end, and where the workers' wall time goes.

Runs `python -m agentfleet.local.fleet --workers 3 --events N --scenario ci-day --out out/bench/local` as it is
(emulator, synth + deploy, model, workers, replay of all events at once, summary.json).
Figure: records handled (decided or quarantined) per second over the processing window, from
the first record's arrival on the stream to the last decision (summary.json's series).

Where the time goes, three ways, all restricted to that window:
- model: each worker's InferenceLatency values (its EMF metric lines in its log), summed, over
  the window: the share of each worker's wall time spent inside generate();
- one worker (worker-0) sampled every 10 ms from inside (bench.worker_probe): model / emulator
  (blocked on moto's HTTP answer) / sdk (botocore's own work) / runtime / idle;
- CPU seconds per process (from /proc) of the workers, the emulator and the fleet driver.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.results import Result
from bench.sampler import Ticker
from bench.worker_probe import CLASSES

ROOT = Path(__file__).resolve().parents[1]
OUT = Path("out/bench/local")
_TICK = os.sysconf("SC_CLK_TCK")


def _process_class(cmdline: str) -> str:
    for marker, name in (("moto.server", "emulator"), ("agentfleet.entrypoints.worker", "workers"),
                         ("agentfleet.local.fleet", "fleet driver")):
        if marker in cmdline:
            return name
    return "synth/other"


class CpuPoller(Ticker):
    """Cumulative CPU seconds of every process in one session, every `interval` seconds."""

    def __init__(self, session: int, interval: float = 0.5) -> None:
        super().__init__(interval, "cpu-poller")
        self.session = session
        self.snapshots: list[tuple[float, dict[int, tuple[str, float]]]] = []

    def tick(self) -> None:
        seen: dict[int, tuple[str, float]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[3]) != self.session:  # field 6 of stat: session id
                    continue
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except (OSError, IndexError, ValueError):
                continue
            seen[int(entry.name)] = (_process_class(cmdline), (int(fields[11]) + int(fields[12])) / _TICK)
        self.snapshots.append((time.time(), seen))

    def cpu_between(self, start: float, end: float) -> dict[str, float]:
        """CPU seconds per process class used between two epoch times (nearest snapshots)."""
        def at(t: float) -> dict[int, tuple[str, float]]:
            before = [s for when, s in self.snapshots if when <= t]
            return before[-1] if before else (self.snapshots[0][1] if self.snapshots else {})
        first, last = at(start), at(end)
        used: Counter[str] = Counter()
        for pid, (name, cpu) in last.items():
            used[name] += cpu - first.get(pid, (name, 0.0))[1]
        return {k: round(v, 2) for k, v in used.items()}


def _log_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if raw.startswith("{"):
            try:
                lines.append(json.loads(raw))
            except ValueError:
                continue
    return lines


def worker_logs(log_dir: Path) -> dict[str, dict[str, Any]]:
    """Per worker: model seconds (sum of InferenceLatency), batches, and first/last decision times."""
    out = {}
    for path in sorted(log_dir.glob("worker-*.log")):
        model_ms, batches, decided = 0.0, 0, []
        for line in _log_lines(path):
            if "InferenceLatency" in line:
                values = line["InferenceLatency"]
                values = values if isinstance(values, list) else [values]
                model_ms, batches = model_ms + sum(values), batches + len(values)
            if line.get("msg") == "decision":
                decided.append(float(line["ts"]))
        out[path.stem] = {"model_s": round(model_ms / 1000, 2), "batches": batches, "decisions": len(decided),
                          "first_decision": min(decided, default=0.0), "last_decision": max(decided, default=0.0)}
    return out


def probe_shares(path: Path, start: float, end: float) -> dict[str, Any]:
    """worker-0's sampled classes inside [start, end]: the worker as a whole, and each thread."""
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    ticks = [t for t in data["timeline"] if start <= t[0] <= end]
    if not ticks:
        return {}
    shares: dict[str, Any] = {}
    for index, name in ((1, "worker"), (2, "main_thread"), (3, "batch_thread")):
        counts = Counter(t[index] for t in ticks if t[index])
        total = sum(counts.values()) or 1
        shares[name] = {c: round(counts[c] / total, 3) for c in CLASSES if counts[c]}
    shares["batch_running"] = round(sum(1 for t in ticks if t[3]) / len(ticks), 3)
    shares["ticks"] = len(ticks)
    shares["innermost"] = data["innermost"]
    # over the whole run, not just the window: which runtime calls waited on the emulator
    shares["aws_waits_by_caller"] = {thread: dict(Counter(calls).most_common(8))
                                     for thread, calls in data.get("aws_calls", {}).items()}
    return shares


def model_bound(per_worker: dict[str, dict[str, Any]]) -> float:
    """Decisions per second the workers would reach if they did nothing but generate."""
    return sum(w["decisions"] / w["model_s"] for w in per_worker.values() if w["model_s"])


def run_fleet(workers: int, events: int, out: Path, timeout_s: float,
              assembly: Path | None = None) -> tuple[int, CpuPoller, float]:
    """The local fleet as `make demo` runs it, in its own session (so every child can be found and stopped)."""
    if out.exists():
        shutil.rmtree(out)  # worker logs are appended to; start clean
    out.mkdir(parents=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (ROOT / "bench" / "probe_site", ROOT, ROOT / "agent_image")) \
        + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(BENCH_SAMPLE_WORKER="worker-0", BENCH_SAMPLE_OUT=str((out / "worker-0.profile.json").resolve()),
               JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20", JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION="1")
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    # ci-day: every record becomes decisions (no control messages), comparable across runs.
    command = [sys.executable, "-m", "agentfleet.local.fleet", "--workers", str(workers), "--events", str(events),
               "--scenario", "ci-day", "--out", str(out), "--timeout", str(timeout_s)]
    if assembly is not None:
        command += ["--assembly", str(assembly.resolve())]
    started = time.perf_counter()
    with (out / "fleet.log").open("wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        poller = CpuPoller(process.pid).start()
        try:
            code = process.wait(timeout=timeout_s + 120)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGINT)  # the fleet's finally: stop workers, stop the emulator
            try:
                code = process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                code = process.wait()
        finally:
            poller.stop()
    return code, poller, time.perf_counter() - started


def run(workers: int = 3, events: int = 200, out: Path = OUT, timeout_s: float = 600.0,
        assembly: Path | None = None) -> Result:
    """`assembly`: a cloud assembly of this app to deploy (the synth benchmark's), instead of synthesizing again."""
    code, poller, total_s = run_fleet(workers, events, out, timeout_s, assembly)
    summary_path = out / "summary.json"
    if not summary_path.exists():
        tail = (out / "fleet.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"local fleet wrote no summary (exit {code}); end of {out / 'fleet.log'}:\n{tail}")
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    series = summary["series"]
    handled = summary["events_decided"] + sum(summary["quarantined"].values())
    window = max(series["decided_s"] + series["quarantined_s"] + [0.0])
    value = handled / window if window else 0.0
    per_worker = worker_logs(out / "logs")
    # summary's series count from the first arrival; the logs carry absolute times.
    last = max((w["last_decision"] for w in per_worker.values()), default=0.0)
    start, end = last - window, last
    model_share = {name: round(w["model_s"] / window, 3) for name, w in per_worker.items()} if window else {}
    probe = probe_shares(out / "worker-0.profile.json", start, end)
    cpu = poller.cpu_between(start, end)
    cores = len(os.sched_getaffinity(0))
    details = {"fleet_exit_code": code, "fleet_total_s": round(total_s, 1), "events_sent": summary["events_sent"],
               "handled": handled, "window_s": round(window, 2), "decisions": summary["decisions"],
               "lost_events": summary["lost_events"], "duplicate_actions": summary["duplicate_actions"],
               "latency_ms": summary["latency_ms"], "tokens_per_s": summary["tokens_per_s"],
               "model_bound_decisions_per_s": round(model_bound(per_worker), 2), "per_worker": per_worker,
               "model_share_per_worker": model_share, "worker0_sampled": probe,
               "cpu_s_in_window": cpu, "cpu_capacity_s": round(window * cores, 1)}
    notes = [f"{handled} of {summary['events_sent']} records handled in a {window:.1f} s window "
             f"(first arrival -> last decision), {workers} workers, fleet run {total_s:.0f} s in all "
             f"(synth, deploy, model, workers start, drain); lost {summary['lost_events']}, "
             f"duplicate actions {summary['duplicate_actions']}"]
    if model_share:
        notes.append("model share of each worker's window (sum of its InferenceLatency): "
                     + ", ".join(f"{k} {v:.0%}" for k, v in model_share.items())
                     + f"; workers doing nothing but generate would reach {details['model_bound_decisions_per_s']} "
                     "decisions/s")
    if probe:
        notes.append("worker-0 sampled every 10 ms: " + ", ".join(f"{k} {v:.0%}" for k, v in probe["worker"].items())
                     + f"; a batch was running {probe['batch_running']:.0%} of the window")
    if cpu:
        notes.append(f"CPU seconds in the window ({cores} cores = {window * cores:.0f} CPU-s available): "
                     + ", ".join(f"{k} {v}" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1])))
    return Result("local", round(value, 2), "records/s", None, None, "none set", notes, details)

