"""Benchmark 3: `cdk synth` of the app vs an empty CDK app, same pinned CLI, same run.

Both go through `npx --no-install cdk synth --quiet` from the repository root, each into its
own temporary output folder (never the shared cdk.out), alternating so load hits both alike;
the figure is the median wall time. Then, in fresh Python processes (`python -m bench.synth
--probe ...`), the app's own synthesis is split into phases (jsii start + imports, building
the stacks, synth, process exit) with and without the cdk-nag plugin, CDK's built-in
CloudFormation validation (a WebAssembly rule engine started on every synth) and asset
staging, to say what dominates.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.results import Result

ROOT = Path(__file__).resolve().parents[1]
TARGET = "<= 2.5"
VARIANTS = ("full", "no-nag", "no-builtin-validation", "no-staging")
EMPTY_APP = '''import aws_cdk as cdk

app = cdk.App()
cdk.Stack(app, "Empty")
app.synth()
'''


def cdk_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    env["JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "agent_image"), env.get("PYTHONPATH", "")])
    return env


def time_cli(app: str | None, out: Path, *extra: str) -> float:
    """One `cdk synth --quiet` into `out`; `app` None means cdk.json's app."""
    command = ["npx", "--no-install", "cdk", "synth", "--quiet", "--output", str(out), *extra]
    if app:
        command += ["--app", app]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=cdk_env(), capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds


def probe(variant: str, out: Path) -> dict[str, float]:
    """Run in a fresh process: phase timings of the app's synthesis for `variant`."""
    t0 = time.perf_counter()
    import aws_cdk as cdk

    from agentfleet.spec.fleet import FleetConfig, default_context
    from stacks.fleet_app import build, build_stacks
    t1 = time.perf_counter()
    context = default_context()
    if variant == "no-staging":
        context["aws:cdk:disable-asset-staging"] = True
    app = cdk.App(context=context, outdir=str(out),
                  builtin_cloud_formation_validation=variant != "no-builtin-validation")
    config = FleetConfig.from_context(app.node.try_get_context)
    if variant == "no-nag":
        build_stacks(app, config)
        cdk.Tags.of(app).add("Fleet", config.fleet_name)
        cdk.Tags.of(app).add("CostCenter", config.cost_center)
    else:
        build(app, config)
    t2 = time.perf_counter()
    app.synth()
    t3 = time.perf_counter()
    return {"import_s": t1 - t0, "build_s": t2 - t1, "synth_s": t3 - t2, "total_s": t3 - t0}


def run_probe(variant: str) -> dict[str, float]:
    """Phase timings from a fresh process, plus its whole life and the time it took to exit after synth."""
    with tempfile.TemporaryDirectory(prefix="bench-probe-") as tmp:
        started = time.perf_counter()
        with subprocess.Popen([sys.executable, "-m", "bench.synth", "--probe", variant, "--out", tmp], cwd=ROOT,
                              env=cdk_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
            assert process.stdout is not None and process.stderr is not None
            line = process.stdout.readline()
            printed = time.perf_counter()
            errors = process.stderr.read()
            code = process.wait(timeout=600)
        if code != 0 or not line.strip():
            raise RuntimeError(f"probe {variant} failed ({code}):\n{errors[-2000:]}")
        timings = json.loads(line)
        timings["exit_s"] = time.perf_counter() - printed  # jsii shuts its node process down at exit
        timings["process_s"] = time.perf_counter() - started  # interpreter start and exit included
        return {k: round(v, 2) for k, v in timings.items()}


def run(repeats: int = 3, probes: bool = True, keep: Path | None = None) -> Result:
    """`keep`: copy the app's last cloud assembly there (the local benchmark deploys it instead of re-synthesizing)."""
    app_times: list[float] = []
    empty_times: list[float] = []
    no_validation: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
        empty = Path(tmp) / "empty_app.py"
        empty.write_text(EMPTY_APP, encoding="utf-8")
        for i in range(repeats):
            empty_times.append(time_cli(f"python3 {empty}", Path(tmp) / f"empty.out.{i}"))
            app_times.append(time_cli(None, Path(tmp) / f"app.out.{i}"))
        if probes:  # the same pair once more without CDK's built-in template validation
            no_validation["empty_s"] = round(time_cli(f"python3 {empty}", Path(tmp) / "empty.nv", "--no-validation"), 2)
            no_validation["app_s"] = round(time_cli(None, Path(tmp) / "app.nv", "--no-validation"), 2)
        if keep is not None:
            shutil.rmtree(keep, ignore_errors=True)
            shutil.copytree(Path(tmp) / f"app.out.{repeats - 1}", keep)
    app_s, empty_s = statistics.median(app_times), statistics.median(empty_times)
    details: dict[str, Any] = {"app_s": [round(t, 2) for t in app_times], "empty_s": [round(t, 2) for t in empty_times],
                               "assembly": str(keep) if keep is not None else None}
    notes = [f"median of {repeats} alternating runs each: app {app_s:.1f} s, empty app {empty_s:.1f} s "
             "(npx --no-install cdk synth --quiet, pinned CLI, separate output folders)"]
    if probes:
        details["cli_no_validation"] = no_validation
        notes.append(f"with --no-validation (CDK's built-in CloudFormation validation off): app "
                     f"{no_validation['app_s']} s, empty app {no_validation['empty_s']} s, ratio "
                     f"{no_validation['app_s'] / no_validation['empty_s']:.2f}")
        phases = {variant: run_probe(variant) for variant in VARIANTS}
        details["in_process"] = phases
        full = phases["full"]
        notes.append(f"in process (full app): jsii start + imports {full['import_s']} s, build stacks "
                     f"{full['build_s']} s, synth {full['synth_s']} s, process exit {full['exit_s']} s")
        notes.append("synth phase without each part (one run each; +-1-2 s is noise on a busy machine): " + ", ".join(
            f"{variant} {phases[variant]['synth_s']} s ({phases[variant]['synth_s'] - full['synth_s']:+.1f})"
            for variant in VARIANTS[1:]))
    return Result("synth", round(app_s, 2), "s", round(empty_s, 2), round(app_s / empty_s, 2), TARGET, notes, details)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.synth")
    parser.add_argument("--probe", choices=VARIANTS, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    print(json.dumps(probe(args.probe, args.out)), flush=True)


if __name__ == "__main__":
    main()
