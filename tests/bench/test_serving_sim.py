"""The serving simulator's batching and prefix-cache math, its HTTP surface, and one small `serving` run."""

from __future__ import annotations

import time
import urllib.request

import pytest

from agentfleet.serve.model.base import GenerationRequest
from agentfleet.serve.model.openai_http import ModelServerError, OpenAIHTTPBackend
from agentfleet.spec.decisions import parse_decision
from bench import sim_client, utilization
from bench.serving_sim import Simulator
from bench.sim_config import SimConfig
from bench.sim_engine import Replica

HEADER = ("### System\nYou are the agent. " + "stable instructions " * 60).encode()  # 1,230 bytes = 308 tokens


def drain(replica: Replica) -> int:
    """Run the engine's steps by hand (no thread, no sleeping) until idle; returns the steps taken."""
    steps = 0
    while replica.running or replica.waiting:
        decoding, chunks = replica._schedule()
        replica._advance(decoding, chunks)
        steps += 1
    return steps


def test_step_time_grows_with_the_running_batch() -> None:
    config = SimConfig()
    assert config.step_ms(32, 0) > config.step_ms(8, 0) > config.step_ms(1, 0)
    assert config.step_ms(2, 0) == pytest.approx(10.52, abs=0.01)  # the published TPOT at concurrency 2
    assert config.step_ms(1, 512) - config.step_ms(1, 0) == pytest.approx(51.07, abs=0.1)  # prefill of 512 tokens


def test_a_full_batch_takes_longer_per_step_in_real_time() -> None:
    """The engine thread sleeps the modelled step: 16 sequences take far longer than one for as many tokens."""
    config = SimConfig(decode_step_ms=1.0, decode_ms_per_seq=4.0, prefill_ms_per_token=0.0, completion_min=1)

    def timed(count: int) -> float:
        replica = Replica(config).start()
        began = time.perf_counter()
        seqs = [replica.submit(b"p" * 40, 10) for _ in range(count)]
        for seq in seqs:
            assert seq.done.wait(10)
        replica.stop()
        return time.perf_counter() - began

    one, sixteen = timed(1), timed(16)
    assert sixteen > 4 * one  # modelled: 10 x 65 ms vs 10 x 5 ms


def test_requests_wait_when_the_slots_are_full_and_are_admitted_as_slots_free() -> None:
    replica = Replica(SimConfig(max_num_seqs=2))
    seqs = [replica.submit(b"x" * 400, n) for n in (3, 20, 5)]
    replica._schedule()
    assert replica.running == seqs[:2] and replica.waiting == seqs[2:]
    for _ in range(3):  # prefill step (first token) + 2 decode steps finish the 3-token request
        replica._advance(*replica._schedule())
    assert seqs[0].done.is_set() and not seqs[1].done.is_set()
    replica._schedule()
    assert replica.running == [seqs[1], seqs[2]] and not replica.waiting
    drain(replica)
    assert all(s.done.is_set() for s in seqs) and replica.counters["generation_tokens"] == 28


def test_a_repeated_header_hits_the_prefix_cache_by_whole_blocks() -> None:
    config = SimConfig(block_size=16)
    replica = Replica(config)
    first = replica.submit(HEADER + b"event one: build failed", 5)
    drain(replica)
    second = replica.submit(HEADER + b"event two: deploy stuck", 5)
    other = replica.submit(b"### System\nYou are another agent. " + HEADER[40:], 5)
    drain(replica)
    assert first.cached_tokens == 0
    assert second.cached_tokens == (len(HEADER) // 4) // 16 * 16 == 304  # full blocks of the shared header
    assert other.cached_tokens == 0  # a different first block breaks the hash chain
    queries = first.num_tokens + second.num_tokens + other.num_tokens
    assert replica.counters["prefix_cache_queries"] == queries and replica.counters["prefix_cache_hits"] == 304


def test_the_last_token_is_always_recomputed_and_lru_evicts_old_prefixes() -> None:
    replica = Replica(SimConfig(block_size=16, kv_blocks=64, max_model_len=512))
    prompt = b"a" * 4 * 32  # exactly two blocks
    replica.submit(prompt, 1)
    drain(replica)
    again = replica.submit(prompt, 1)
    drain(replica)
    assert again.cached_tokens == 16  # capped at num_tokens - 1: the second block is recomputed
    for i in range(9):  # other prompts take every free block, oldest first
        replica.submit(bytes([66 + i]) * 4 * 16 * 7, 1)
        drain(replica)
    late = replica.submit(prompt, 1)
    drain(replica)
    assert late.cached_tokens == 0


def test_http_endpoints_answer_like_vllm() -> None:
    with Simulator(1, SimConfig(time_scale=0.05)) as sim:
        url = sim.urls[0]
        backend = OpenAIHTTPBackend(url, "Qwen/Qwen3-8B", batch_size=4, max_prompt_tokens=3000, max_new_tokens=256)
        result = backend.generate([GenerationRequest(HEADER.decode() + f"event {i}", ("notify", "ignore"))
                                   for i in range(3)])
        assert [parse_decision(t).action for t in result.texts] == ["notify"] * 3
        assert result.prompt_tokens == [-(-(len(HEADER) + 7) // 4)] * 3 and all(c >= 16 for c in result.completion_tokens)
        with pytest.raises(ModelServerError) as refused:
            backend.generate([GenerationRequest("x" * 4 * 4000, ("ignore",))])
        assert refused.value.status == 400
        with urllib.request.urlopen(f"{url}/metrics") as resp:
            text = resp.read().decode()
        assert "# TYPE vllm:prefix_cache_hits counter" in text
        counters = sim_client.read_counters(text)
        assert counters["vllm:prefix_cache_queries_total"] == sum(result.prompt_tokens)
        assert 0 < counters["vllm:prefix_cache_hits_total"] < counters["vllm:prefix_cache_queries_total"]
        assert counters["vllm:generation_tokens_total"] == sum(result.completion_tokens)
        with urllib.request.urlopen(f"{url}/health") as resp:
            assert resp.status == 200


def test_a_small_serving_run_reports_every_figure() -> None:
    result = utilization.run(events=48, window_s=2.0, baseline_window_s=2.0, prefix_replicas=2, prefix_requests=40,
                            ceiling_s=10.0, replicas=1)
    assert result.name == "serving" and result.error is None
    details = result.details
    assert 0 < details["utilization"] <= 1
    assert details["stop_and_go_ratio"] > 0 and details["cpu_share_of_core"] > 0
    for key in ("prefix_hit_rate_affinity", "prefix_hit_rate_random"):
        assert 0 <= details[key] <= 1
    assert details["current"]["decisions"] > 0 and details["stop_and_go"]["decisions"] > 0
    assert details["prefix"]["affinity"]["requests"] == 40
    # Not compared with the worker's: the continuous worker reaches the ceiling, so which is higher is timing.
    assert 0 < details["ceiling"]["utilization"] <= 1


def test_stats_deltas_subtract_counters_and_keep_levels() -> None:
    before = {"requests": 2.0, "busy_slot_s": 1.0, "running": 5.0, "slots": 32.0}
    after = {"requests": 7.0, "busy_slot_s": 4.0, "running": 3.0, "slots": 32.0}
    assert sim_client.delta(after, before) == {"requests": 5.0, "busy_slot_s": 3.0, "running": 3.0, "slots": 32.0}
