"""The engine interface the boot sequence talks to, and the version probe every engine uses."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Protocol

from agentfleet.serve.model.base import ModelBackend


class Engine(Protocol):
    """Compile into a folder, load from a folder. The folder is what the cache stores."""

    name: str
    weights_for_compile: bool  # compile() needs the model weights on local disk
    weights_for_load: bool  # load() needs them too (the artifact does not carry them)

    def versions(self) -> tuple[str, str]:
        """(engine version, compiler version): both are part of the cache key."""
        ...

    def artifact_config(self) -> dict[str, str]:
        """Serve flags and environment values that change the compiled artifacts (part of the cache key)."""
        ...

    def compile(self, *, weights: Path | None, out_dir: Path) -> None: ...

    def release(self) -> None:
        """Free what compile() kept running for load() (the vLLM server), when nothing will load."""
        ...

    def load(self, *, artifact_dir: Path, weights: Path | None) -> ModelBackend: ...


def package_version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        raise RuntimeError(f"{dist} is not installed; this engine runs only in the Neuron container") from None
