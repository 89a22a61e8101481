"""optimum-neuron engine (inf2, trn1, trn2): export with neuronx-cc, generate in process.

API of optimum-neuron 0.4 (NxD backend, `optimum/neuron/models/inference/modeling_utils.py`):
    neuron_config = NeuronModelForCausalLM.get_neuron_config(path, batch_size=, sequence_length=,
                                                              tensor_parallel_size=, instance_type=)
    model = NeuronModelForCausalLM.export(path, neuron_config=neuron_config, load_weights=False)
    model.save_pretrained(out)            # exported from a local path -> sharded weights saved too
    model = NeuronModelForCausalLM.from_pretrained(out)   # loads NEFFs + weights, no compile
(The 0.0.x `from_pretrained(export=True, num_cores=, auto_cast_type=)` form is gone in 0.4.)
The exported folder carries its sharded weights, so a cache hit needs no weight download.
Runs only where optimum-neuron, torch-neuronx and a Neuron device exist.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentfleet.ops import logs
from agentfleet.serve.model.base import GenerationRequest, GenerationResult
from agentfleet.spec.settings import Settings

log = logs.get(__name__)


class OptimumNeuronEngine:
    name = "optimum-neuron"
    weights_for_compile = True
    weights_for_load = False

    def __init__(self, settings: Settings, family: str) -> None:
        self.settings, self.family = settings, family

    def versions(self) -> tuple[str, str]:
        from agentfleet.serve.boot.engine_api import package_version

        return package_version("optimum-neuron"), package_version("neuronx-cc")

    def artifact_config(self) -> dict[str, str]:
        # The export's shape arguments are already key inputs; neuronx-cc also reads its flags from
        # NEURON_CC_FLAGS (aws-neuron-sdk about-neuron/arch/neuron-features/neuron-caching.rst).
        import os

        return {name: os.environ[name] for name in ("NEURON_CC_FLAGS",) if name in os.environ}

    def release(self) -> None:
        """The export runs in process; nothing is left running."""

    def compile(self, *, weights: Path | None, out_dir: Path) -> None:
        if weights is None:
            raise ValueError("optimum-neuron export needs the model weights on local disk")
        from optimum.neuron import NeuronModelForCausalLM
        from transformers import AutoTokenizer

        neuron_config = NeuronModelForCausalLM.get_neuron_config(
            str(weights),
            batch_size=self.settings.batch_size,
            sequence_length=self.settings.sequence_length,
            tensor_parallel_size=self.settings.tensor_parallel_degree,
            instance_type=self.family,
        )
        model = NeuronModelForCausalLM.export(str(weights), neuron_config=neuron_config, load_weights=False)
        model.save_pretrained(str(out_dir))
        AutoTokenizer.from_pretrained(str(weights)).save_pretrained(str(out_dir))

    def load(self, *, artifact_dir: Path, weights: Path | None) -> OptimumNeuronBackend:
        return OptimumNeuronBackend.from_dir(artifact_dir, self.settings)


class OptimumNeuronBackend:
    """A ModelBackend over an exported NeuronModelForCausalLM (static batch and sequence shapes)."""

    name = "optimum-neuron"

    def __init__(self, model: Any, tokenizer: Any, settings: Settings) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.model_id = settings.model_id
        self.batch_size = settings.batch_size
        self.max_new_tokens = settings.max_new_tokens
        self.max_prompt_tokens = settings.sequence_length - settings.max_new_tokens
        if self.max_prompt_tokens < 1:
            raise ValueError("sequence_length must exceed max_new_tokens")

    @classmethod
    def from_dir(cls, path: Path, settings: Settings) -> OptimumNeuronBackend:
        from optimum.neuron import NeuronModelForCausalLM
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(path))
        tokenizer.padding_side = "left"  # decoder-only: pad on the left so generation continues the prompt
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return cls(NeuronModelForCausalLM.from_pretrained(str(path)), tokenizer, settings)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(self, requests: Sequence[GenerationRequest]) -> GenerationResult:
        count = len(requests)
        if not 1 <= count <= self.batch_size:
            raise ValueError(f"batch of {count} requests; the compiled batch size is {self.batch_size}")
        # The graph was compiled for exactly batch_size rows: fill with copies, drop their outputs.
        prompts = [r.prompt for r in requests] + [requests[-1].prompt] * (self.batch_size - count)
        encoded = self.tokenizer(prompts, return_tensors="pt", padding=True, truncation=True,
                                 max_length=self.max_prompt_tokens)
        start = time.perf_counter()
        output = self.model.generate(**encoded, max_new_tokens=self.max_new_tokens, do_sample=False)
        latency_ms = (time.perf_counter() - start) * 1000
        new_tokens = output[:count, encoded["input_ids"].shape[1]:]
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        pad = self.tokenizer.pad_token_id
        completion = [int((row != pad).sum()) for row in new_tokens]
        prompt_tokens = [int(n) for n in encoded["attention_mask"][:count].sum(dim=1)]
        return GenerationResult(texts, prompt_tokens, completion, latency_ms, {"generate_ms": latency_ms})

    def close(self) -> None:
        self.model = None
