"""The compile-cache key: everything that changes the compiled artifacts, and nothing else.

A Neuron compile is specific to the model weights (id + revision), the engine and its
version, the compiler version, the static shapes (batch size, sequence length), the
tensor-parallel degree and the instance family (trn3 NEFFs do not run on inf2). Two boots
with equal inputs share one cache entry; any difference gets a new key, so a stale
artifact is never loaded.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from agentfleet.spec.compat import instance_family
from agentfleet.spec.settings import Settings

__all__ = ["CacheKeyInputs", "instance_family"]

@dataclass(frozen=True)
class CacheKeyInputs:
    model_id: str
    model_revision: str
    engine: str
    engine_version: str
    compiler_version: str
    batch_size: int
    sequence_length: int
    tensor_parallel_degree: int
    instance_family: str
    image_uri: str = ""  # "" only for the local CPU engine (no container image)
    engine_config: str = "{}"

    def __post_init__(self) -> None:
        for name in ("model_id", "model_revision", "engine", "engine_version", "compiler_version", "instance_family"):
            if not str(getattr(self, name)).strip():
                raise ValueError(f"cache key input {name} is empty")
        for name in ("batch_size", "sequence_length", "tensor_parallel_degree"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"cache key input {name} must be >= 1, got {getattr(self, name)}")
        if not self.image_uri.strip() and self.engine != "transformers-cpu":
            raise ValueError(f"cache key input image_uri is empty: engine {self.engine} compiles per image, so "
                             "set settings.image_uri (AGENTFLEET_IMAGE_URI) to the running image, digest included")

    @classmethod
    def from_settings(
        cls, settings: Settings, *, engine_version: str, compiler_version: str, instance_family: str | None = None,
        engine_config: dict[str, str] | None = None,
    ) -> CacheKeyInputs:
        return cls(
            model_id=settings.model_id,
            model_revision=settings.model_revision,
            engine=settings.engine,
            engine_version=engine_version,
            compiler_version=compiler_version,
            batch_size=settings.batch_size,
            sequence_length=settings.sequence_length,
            tensor_parallel_degree=settings.tensor_parallel_degree,
            instance_family=instance_family or settings.instance_family,
            image_uri=settings.image_uri,
            engine_config=json.dumps(engine_config or {}, sort_keys=True, separators=(",", ":")),
        )

    def as_dict(self) -> dict[str, str | int]:
        return asdict(self)

    def key(self) -> str:
        """24 hex chars of SHA-256 over the canonical JSON of the inputs (96 bits: no collisions in practice)."""
        canonical = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:24]

