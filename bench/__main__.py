"""`make bench` / `python -m bench [NAME ...] [--quick]`: run the benchmarks, print, write results.json.

Each benchmark prints its line and notes as it finishes, and out/bench/results.json is rewritten
after each one (a later failure keeps the earlier figures). A benchmark that raises is recorded
as failed and the rest still run; the exit code is 1 if any failed. Missed targets are results,
not failures: they are explained in the notes and in `details`.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import batching, local, overhead, synth, utilization
from bench.results import RESULTS_PATH, Result, machine, write

BENCHMARKS: dict[str, Callable[..., Result]] = {
    "overhead": overhead.run, "batching": batching.run, "synth": synth.run, "local": local.run,
    "serving": utilization.run,
}
ASSEMBLY = Path("out/bench/cdk.out")  # synth keeps the app's assembly here; local deploys it (one synth fewer)
FULL: dict[str, dict[str, Any]] = {
    "overhead": {"records": 100_000, "max_seconds": 90.0, "profile_records": 6_000, "loop_seconds": 3.0},
    "batching": {"prompt_count": 16, "rounds": 2},
    "synth": {"repeats": 2, "probes": True, "keep": ASSEMBLY},
    "local": {"workers": 3, "events": 100},
    "serving": {"events": 2000, "window_s": 60.0, "baseline_window_s": 45.0, "prefix_replicas": 4,
                "ceiling_s": 60.0},
}
QUICK: dict[str, dict[str, Any]] = {
    "overhead": {"records": 2_000, "max_seconds": 30.0, "profile_records": 1_000, "loop_seconds": 1.0},
    "batching": {"prompt_count": 8, "rounds": 1},
    "synth": {"repeats": 1, "probes": False, "keep": ASSEMBLY},
    "local": {"workers": 3, "events": 12},
    "serving": {"events": 200, "window_s": 8.0, "baseline_window_s": 6.0, "prefix_replicas": 2, "prefix_requests": 120,
                "replicas": 1,
                "ceiling_s": 8.0},
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})")
    parser.add_argument("--quick", action="store_true", help="tiny configurations: checks the harness, not speed")
    parser.add_argument("--records", type=int, help="overhead: records to feed (default 100,000)")
    parser.add_argument("--events", type=int, help="local: events to replay (default 100)")
    parser.add_argument("--out", type=Path, default=RESULTS_PATH, help=f"results file (default {RESULTS_PATH})")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {unknown}; choose from {', '.join(BENCHMARKS)}")
    return args


def main(argv: list[str] | None = None, benchmarks: dict[str, Callable[..., Result]] | None = None) -> int:
    args = parse_args(argv)
    registry = benchmarks or BENCHMARKS
    names = args.names or list(registry)
    config = {name: dict((QUICK if args.quick else FULL).get(name, {})) for name in names}
    if args.records is not None and "overhead" in config:
        config["overhead"]["records"] = args.records
    if args.events is not None and "local" in config:
        config["local"]["events"] = args.events
    info = machine()
    print(f"machine: {info['usable_cpus']} usable of {info['cpus']} CPUs, {info['cpu_model']}, "
          f"load {info['loadavg_1_5_15'][0]:.1f} at start", flush=True)
    results: list[Result] = []
    started = time.perf_counter()
    for name in names:
        began = time.perf_counter()
        print(f"\n== {name} {config[name]}", flush=True)
        try:
            result = registry[name](**config[name])
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            result = Result.failed(name, f"{type(exc).__name__}: {exc}"[:1000])
        result.details["bench_seconds"] = round(time.perf_counter() - began, 1)
        results.append(result)
        if name == "synth" and result.details.get("assembly") and "local" in config:
            config["local"]["assembly"] = Path(result.details["assembly"])
        print(result.line())
        for note in result.notes:
            print(f"  - {note}")
        write(results, args.out, {"quick": args.quick, "config": config, "loadavg_at_start": info["loadavg_1_5_15"]})
        sys.stdout.flush()
    print(f"\n{len(results)} benchmarks in {time.perf_counter() - started:.0f} s; wrote {args.out}")
    for result in results:
        print(result.line())
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
