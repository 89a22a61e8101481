"""README's local-fleet figures are the rendering of a committed run's summary, not typed in."""

from __future__ import annotations

import json

from bench import readme


def test_readmes_demo_figures_are_the_committed_runs_summary() -> None:
    summary = json.loads(readme.SUMMARY.read_text(encoding="utf-8"))
    assert readme.current_block(readme.README.read_text(encoding="utf-8")) == readme.block(summary), \
        "README's demo figures differ from bench/results/demo-summary.json: run `python -m bench.readme`"


def test_the_committed_run_kept_the_invariants() -> None:
    s = json.loads(readme.SUMMARY.read_text(encoding="utf-8"))
    assert s["killed_workers"] and s["lost_events"] == 0 and s["duplicate_actions"] == 0
    assert s["iam_enforced"] is True and s["denied_calls"] == 0
