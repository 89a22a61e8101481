"""README stays current: every config key is documented, and README's test command is what CI runs."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from agentfleet.spec.fleet import FleetConfig, default_context

ROOT = Path(__file__).resolve().parent.parent.parent


def test_every_config_key_is_in_readme_and_cdk_json() -> None:
    readme = (ROOT / "README.md").read_text()
    context = default_context()
    for f in fields(FleetConfig):
        assert f"`{f.name}`" in readme, f"README's configuration table lacks {f.name}"
        assert f.name in context, f"cdk.json lacks a default for {f.name}"


def test_ci_runs_readmes_test_command() -> None:
    assert "make test" in (ROOT / "README.md").read_text()
    assert "make test" in (ROOT / ".ci" / "run").read_text()
