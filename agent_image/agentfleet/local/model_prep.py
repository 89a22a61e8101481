"""The local model: built in code (no download) once, then reused while its sources stay the same."""

from __future__ import annotations

import hashlib
from pathlib import Path

from agentfleet.local.deploy import ROOT

CACHE_DIR = ROOT / ".cache" / "agentfleet"


def _sources_digest() -> str:
    """Changes whenever the builder, its corpus or the torch/transformers versions change."""
    import torch
    import transformers

    from agentfleet.serve.model import tiny

    digest = hashlib.sha256(f"{torch.__version__}|{transformers.__version__}".encode())
    for path in [*sorted(Path(tiny.__file__).parent.glob("*")), Path(__file__).with_name("finetune.py")]:
        if path.suffix in (".py", ".txt"):
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def prepare_model(cache_dir: Path = CACHE_DIR, seed: int = 0, finetune_steps: int = 0) -> Path:
    """The directory of the built model (`build_local_model`), building it if this version is not there.

    Without a fine-tune the weights are a seeded init: guided decoding still makes every reply a
    schema-valid decision among the agent's allowed actions, so actions really run; a fine-tune
    (a few seconds a step on a shared CPU) makes the choices follow the agents' prompts.
    """
    from agentfleet.local.finetune import finetune
    from agentfleet.serve.model.tiny import build_local_model, is_built

    target = cache_dir / f"tiny-seed{seed}-ft{finetune_steps}-{_sources_digest()}"
    if not is_built(target):
        build_local_model(target, seed=seed, finetune_steps=finetune_steps, finetune=finetune)
    return target
