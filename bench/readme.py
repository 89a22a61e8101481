"""`make readme-figures` / `python -m bench.readme [SUMMARY_JSON]`: README's local-fleet figures, regenerated.

Copies a local run's summary.json and summary.png into bench/results/ (demo-summary.json/.png) and
rewrites README's block between the demo-summary markers with `report.text` of that summary, so the
figures in README are what a run wrote, never typed in. tests/bench/test_readme.py keeps them equal.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from agentfleet.local import report

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SUMMARY = RESULTS / "demo-summary.json"
README = ROOT / "README.md"
BEGIN, END = "<!-- demo-summary:begin (python -m bench.readme) -->", "<!-- demo-summary:end -->"


def block(summary: dict[str, object]) -> str:
    """README's text between the markers for `summary`."""
    iam = f"IAM enforced: {summary.get('iam_enforced')}; denied calls: {summary.get('denied_calls')}"
    return f"{BEGIN}\n```\n{report.text(summary)}\n{iam}\n```\n{END}"


def current_block(readme: str) -> str:
    start, end = readme.index(BEGIN), readme.index(END) + len(END)
    return readme[start:end]


def main(argv: list[str]) -> int:
    source = Path(argv[0]) if argv else ROOT / "out" / "demo" / "summary.json"
    if source.resolve() != SUMMARY.resolve():
        shutil.copyfile(source, SUMMARY)
        picture = source.with_name("summary.png")
        if picture.exists():
            shutil.copyfile(picture, RESULTS / "demo-summary.png")
    summary = json.loads(SUMMARY.read_text(encoding="utf-8"))
    readme = README.read_text(encoding="utf-8")
    README.write_text(readme.replace(current_block(readme), block(summary)), encoding="utf-8")
    print(f"README's demo figures now come from {SUMMARY.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
