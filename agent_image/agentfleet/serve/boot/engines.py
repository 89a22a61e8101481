"""Engines: how one model is compiled into an artifact folder and loaded from it.

The boot sequence talks only to `Engine`. Per instance family:
  inf2 / trn1          optimum-neuron: export (neuronx-cc) + in-process generate
  trn2 / trn3          vLLM Neuron plugin: OpenAI-compatible server, NEFFs in VLLM_CACHE_ROOT
  cpu (local, tests)   transformers: "compile" = build the small local model into the folder
Which engine serves which generation is the compatibility matrix's (agentfleet/spec/compat.json);
`check_engine_family` rejects other pairs before any work.
Neuron libraries are imported lazily, so this module imports on any machine.
"""

from __future__ import annotations

from pathlib import Path

from agentfleet.serve.boot.engine_api import Engine, package_version
from agentfleet.serve.boot.optimum_neuron import OptimumNeuronBackend, OptimumNeuronEngine
from agentfleet.serve.boot.vllm_neuron import VllmNeuronBackend, VllmNeuronEngine
from agentfleet.serve.model.base import ModelBackend
from agentfleet.spec.compat import families_of
from agentfleet.spec.settings import Settings

__all__ = [
    "CpuEngine", "Engine", "OptimumNeuronBackend", "OptimumNeuronEngine", "VllmNeuronBackend",
    "VllmNeuronEngine", "check_engine_family", "create_engine", "package_version",
]

ENGINES = ("transformers-cpu", "optimum-neuron", "vllm-neuron")


def check_engine_family(engine: str, family: str) -> None:
    """`family` is an accelerator generation (agentfleet.spec.compat.generation); the matrix says which
    engine serves it, and each engine ships in its own image, so no other pairing can boot."""
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r} cannot be booted; choose one of {sorted(ENGINES)}")
    families = families_of(engine)
    if family not in families:
        raise ValueError(f"engine {engine!r} does not run on instance family {family!r}; "
                         f"it supports {', '.join(families) or 'none'} (agentfleet/spec/compat.json)")


class CpuEngine:
    """The local engine: the same boot and cache path, with a small model built in code."""

    name = "transformers-cpu"
    weights_for_compile = False
    weights_for_load = False

    def __init__(self, settings: Settings, *, seed: int = 0) -> None:
        self.settings, self.seed = settings, seed

    def versions(self) -> tuple[str, str]:
        # torch stands in for the compiler: a different torch may save different tensors.
        return package_version("transformers"), "torch-" + package_version("torch")

    def artifact_config(self) -> dict[str, str]:
        return {"seed": str(self.seed)}

    def release(self) -> None:
        """Nothing runs between compile and load."""

    def compile(self, *, weights: Path | None, out_dir: Path) -> None:
        from agentfleet.serve.model.tiny import build_local_model

        build_local_model(out_dir, seed=self.seed)

    def load(self, *, artifact_dir: Path, weights: Path | None) -> ModelBackend:
        from agentfleet.serve.model.cpu import TransformersBackend

        return TransformersBackend.from_dir(artifact_dir, self.settings)


def create_engine(settings: Settings, family: str) -> Engine:
    check_engine_family(settings.engine, family)
    if settings.engine == "optimum-neuron":
        return OptimumNeuronEngine(settings, family)
    if settings.engine == "vllm-neuron":
        return VllmNeuronEngine(settings)
    return CpuEngine(settings)
