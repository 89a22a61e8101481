"""One benchmark result, the machine it ran on, and out/bench/results.json."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS_PATH = Path("out/bench/results.json")


@dataclass
class Result:
    """`ratio` is value / baseline; `target` reads like ">= 20" and `met` says whether the ratio meets it."""

    name: str
    value: float | None
    unit: str
    baseline: float | None
    ratio: float | None
    target: str
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    met: bool | None = None
    error: str | None = None

    @classmethod
    def failed(cls, name: str, error: str) -> Result:
        return cls(name, None, "", None, None, "", [f"benchmark failed: {error}"], error=error)

    def __post_init__(self) -> None:
        if self.met is None and self.ratio is not None and self.target[:2] in (">=", "<="):
            bound = float(self.target[2:])
            self.met = self.ratio >= bound if self.target.startswith(">=") else self.ratio <= bound

    def line(self) -> str:
        if self.value is None:
            return f"{self.name:<10} FAILED: {self.error}"
        base = f"{self.baseline:,.3g}" if self.baseline is not None else "-"
        ratio = f"{self.ratio:.2f}" if self.ratio is not None else "-"
        verdict = {True: "met", False: "MISSED", None: "-"}[self.met]
        return f"{self.name:<10} {self.value:>12,.1f} {self.unit:<14} baseline {base:>10}  ratio {ratio:>6}  " \
               f"target {self.target:<6} {verdict}"


def machine() -> dict[str, Any]:
    """Cores, CPU model and load, so a number is never read without its machine."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor()
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {"cpus": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)), "cpu_model": model,
            "python": platform.python_version(), "platform": platform.platform(), "loadavg_1_5_15": list(load)}


def write(results: list[Result], path: Path = RESULTS_PATH, extra: dict[str, Any] | None = None) -> Path:
    """results.json is the list of results; the machine goes beside it in machine.json."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(r) for r in results], indent=2, default=str) + "\n", encoding="utf-8")
    (path.parent / "machine.json").write_text(json.dumps({**machine(), **(extra or {})}, indent=2, default=str) + "\n",
                                             encoding="utf-8")
    return path
