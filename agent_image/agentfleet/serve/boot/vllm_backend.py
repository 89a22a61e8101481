"""VllmNeuronBackend: the ModelBackend of the vLLM engine, over its supervised replicas."""

from __future__ import annotations

from collections.abc import Sequence

from agentfleet.serve.boot.replicas import ReplicaSet
from agentfleet.serve.boot.vllm_server import VllmServer
from agentfleet.serve.model.base import GenerationRequest, GenerationResult, Message, ModelBackend


class VllmNeuronBackend:
    """A ModelBackend over the local vLLM replicas; requests go through the OpenAI-compatible client."""

    name = "vllm-neuron"

    def __init__(self, replicas: ReplicaSet, client: ModelBackend) -> None:
        self.replicas, self.client = replicas, client
        self.model_id = client.model_id
        self.batch_size = client.batch_size
        self.max_prompt_tokens = client.max_prompt_tokens

    @property
    def server(self) -> VllmServer:
        """Replica 0's server (the one that compiled)."""
        server = self.replicas.servers[0]
        assert server is not None
        return server

    @property
    def slots(self) -> int:
        return int(getattr(self.client, "slots", self.batch_size))

    def replica_load(self) -> list[tuple[int, int]]:
        return list(getattr(self.client, "replica_load", lambda: [])())

    def prefix_cache_hit_rate(self) -> list[float | None]:
        return list(getattr(self.client, "prefix_cache_hit_rate", lambda: [])())

    def count_tokens(self, text: str) -> int:
        return self.client.count_tokens(text)

    def count_messages(self, messages: Sequence[Message]) -> int:
        return int(self.client.count_messages(messages))  # type: ignore[attr-defined]

    def generate(self, requests: Sequence[GenerationRequest]) -> GenerationResult:
        return self.client.generate(requests)

    def close(self) -> None:
        """At shutdown: stop every replica's process group; cores need not be free for a process that exits."""
        try:
            self.client.close()
        finally:
            self.replicas.stop(wait_for_cores=False)
