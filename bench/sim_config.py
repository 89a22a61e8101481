"""Every constant of the serving simulator (bench/serving_sim.py), each with where it comes from.

A figure is either sourced (document or source file, version, read 2026-12-01) or marked
ASSUMPTION with the reasoning. The served model of the kit is Qwen/Qwen3-8B at tensor parallelism
4 on trn2 (cdk.json); no published vLLM-Neuron figure for that exact pairing was found, so the
timings come from the closest published ones (Llama 3.1 8B on trn2, Llama-3-8B on trn1) and say so.
"""

from __future__ import annotations

from dataclasses import dataclass

# aws-neuron/aws-neuron-sdk @v2.32.0 vllm-neuron/docs/tutorials/tutorial-eagle3-speculative-decoding-llama-3-1.md
# ("Benchmarks", non-speculative baseline): Llama 3.1 8B Instruct, trn2.48xlarge, TP8, vLLM Neuron of
# Neuron 2.32 (the kit's pinned 0.24.0.1.1.0 DLC), `vllm bench serve` sonnet input 512 / output 128,
# --max-concurrency 2: median TPOT 10.52 ms, median TTFT 51.07 ms, 184.4 output tokens/s.
PUBLISHED_TPOT_MS_AT_2 = 10.52
PUBLISHED_TTFT_MS_512 = 51.07
# aws-neuron/aws-neuron-sdk @v2.32.0 about-neuron/benchmarks/trn1/{latency,throughput}_data_decoder.csv:
# Llama-3-8B, trn1.32xlarge, TP32, seq 4096, input 128: TPOT P50 5.86 ms at batch 1, 7.65 ms at batch 8,
# i.e. each extra running sequence adds (7.65 - 5.86) / 7 / 5.86 = 4.4 % of the batch-1 step. The only
# published same-model, same-shape pair of batch sizes found; its slope is carried over to trn2.
TRN1_TPOT_MS_BATCH1, TRN1_TPOT_MS_BATCH8 = 5.86, 7.65
STEP_GROWTH_PER_SEQ = (TRN1_TPOT_MS_BATCH8 - TRN1_TPOT_MS_BATCH1) / 7 / TRN1_TPOT_MS_BATCH1


@dataclass(frozen=True)
class SimConfig:
    """One replica's engine (all replicas of a simulator share it) and the simulator's tokenizer."""

    # ASSUMPTION: 32 concurrent sequences per replica (vLLM --max-num-seqs); the issue asks for a
    # per-model value, not the old 8. Published Neuron shapes for 8B models go to batch 32:
    # huggingface.co/aws-neuron/optimum-neuron-cache inference-cache-config/trn1/qwen3.json lists
    # Qwen3-8B at batch 32, TP8, sequence 4096 (read 2026-12-01). Not a measured optimum on trn2 TP4.
    max_num_seqs: int = 32
    # cdk.json `sequence_length` (vLLM --max-model-len): prompt + completion must fit, else HTTP 400.
    max_model_len: int = 4096
    # Tokens per KV block. aws-neuron-sdk @v2.32.0 vllm-neuron/docs/design/vllm/prefix-caching.md:
    # "The KV cache is organized in blocks (e.g., 128 tokens per block)". That it is the 0.24 default
    # for this model is NOT confirmed (upstream vLLM's CacheConfig.DEFAULT_BLOCK_SIZE is 16,
    # docs.vllm.ai v0.26.0 vllm/config/cache.py).
    block_size: int = 128
    # ASSUMPTION: the KV pool holds exactly max_num_seqs full-length sequences (32 x 4096 / 128 = 1024
    # blocks), the least that admits max_num_seqs at max_model_len. vLLM Neuron sizes the pool from HBM,
    # capped at VLLM_NEURON_KV_GMU_BUDGET_CAP_FRACTION (default 0.30) of the budget (aws-neuron-sdk
    # @v2.32.0 vllm-neuron/docs/guides/features-guide.md "Memory management"); the block count that
    # gives for Qwen3-8B at TP4 was not derived. A bigger pool only helps the prefix cache.
    kv_blocks: int = 1024
    # ASSUMPTION: tokens scheduled per engine step (vLLM --max-num-batched-tokens, chunked prefill);
    # 2048 is the value of prefix-caching.md's worked example, not a documented default.
    max_num_batched_tokens: int = 2048
    # Decode step with `b` running sequences = decode_step_ms + decode_ms_per_seq * b, fitted so that
    # b = 2 gives the published 10.52 ms TPOT and each extra sequence adds STEP_GROWTH_PER_SEQ of it.
    decode_ms_per_seq: float = round(PUBLISHED_TPOT_MS_AT_2 * STEP_GROWTH_PER_SEQ, 3)
    decode_step_ms: float = round(PUBLISHED_TPOT_MS_AT_2 * (1 - 2 * STEP_GROWTH_PER_SEQ), 3)
    # Prefill cost per uncached prompt token, added to the step that computes it: the published TTFT
    # at 512 input tokens (51.07 ms) divided by 512 (it includes one decode step; left in, conservative).
    prefill_ms_per_token: float = round(PUBLISHED_TTFT_MS_512 / 512, 4)
    # ASSUMPTION (simulator tokenizer): one token per 4 UTF-8 bytes of the prompt, cut from the start,
    # so equal text prefixes are equal token prefixes. BPE averages roughly 4 bytes per English token;
    # the kit's own estimate (serve/model/openai_http.estimate_tokens) counts 3, so its prompts fit.
    bytes_per_token: int = 4
    # ASSUMPTION: completion lengths are log-normal with this median and sigma, clipped to
    # [completion_min, max_tokens]. A decision is one small JSON object (action, one-sentence message
    # and rationale, confidence): about 40-90 tokens; none of the kit's runs recorded a distribution.
    completion_median: int = 60
    completion_sigma: float = 0.35
    completion_min: int = 16
    # Run knob, not a hardware figure: every modelled duration is multiplied by it (1.0 = real time;
    # the prefix-cache comparison, which does not depend on timing, runs faster).
    time_scale: float = 1.0
    # Run knob: seeds each replica's completion-length draws, so runs are repeatable.
    seed: int = 7

    def __post_init__(self) -> None:
        for name in ("max_num_seqs", "max_model_len", "block_size", "kv_blocks", "max_num_batched_tokens",
                     "bytes_per_token", "completion_median", "completion_min"):
            if getattr(self, name) < 1:
                raise ValueError(f"SimConfig.{name} must be at least 1, got {getattr(self, name)}")
        if self.kv_blocks * self.block_size < self.max_model_len:
            raise ValueError("SimConfig.kv_blocks x block_size must hold one max_model_len sequence")
        if self.time_scale <= 0:
            raise ValueError(f"SimConfig.time_scale must be > 0, got {self.time_scale}")

    def step_ms(self, running: int, prefill_tokens: int) -> float:
        """Modelled duration of one engine step (before time_scale)."""
        return self.decode_step_ms + self.decode_ms_per_seq * running + self.prefill_ms_per_token * prefill_tokens
