"""Benchmark `serving`: the real worker against the serving simulator (bench/serving_sim.py).

A backlog of events across the shipped agents (cdk.json) sits in the fake stream from the start.
Figures, all from one run, each phase on a fresh simulator process (so the worker's process CPU
is the runtime's own):
- utilization: busy slot-seconds / slot-seconds available, counted by the simulator while a backlog
  remains (from the first request until the window ends or the undecided items fit in the slots);
- stop_and_go_ratio: the current worker's decisions/s over bench/stop_and_go.py's (today's batches
  of 8: send, wait for all, post-decision I/O, next batch) against the same simulator;
- prefix_hit_rate_affinity / _random: vLLM's prefix-cache hit rate (hits / queries from /metrics)
  when each (agent, subject) keeps to one replica vs a random replica, same prompts;
- ceiling (details): a client that keeps every slot busy with the same prompts, for the utilization
  and decisions/s the harness itself allows;
- cpu_share_of_core: the worker process's CPU per decision x the ceiling's decisions/s (the
  simulated peak rate).
The worker phases and the prefix phase use the runtime's own client (OpenAIHTTPBackend over every
replica URL, routed by agent/subject); the stop-and-go baseline replays the old batch loop through
the runtime's per-item pipeline steps (bench/stop_and_go.py).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from typing import Any

from agentfleet.serve.model.base import GenerationRequest
from agentfleet.serve.model.openai_http import OpenAIHTTPBackend, estimate_tokens
from agentfleet.spec.settings import Settings
from bench import overhead, stop_and_go
from bench.prompts import backlog_records, item_count, rendered_requests
from bench.results import Result
from bench.sim_client import delta, drive_continuously, metrics, sim_stats, simulator
from bench.sim_config import SimConfig

TARGETS = {"utilization": ">= 0.9", "stop_and_go_ratio": ">= 2"}
# Replicas the worker's client reaches in the worker phases (the runtime's router spreads requests over
# them by agent/subject). 4 x the simulator's slots keeps the bench's thread count sane on a small box;
# a trn2.48xlarge at TP 4 runs 16 (agentfleet.spec.sizing.replicas).
WORKER_REPLICAS = 4


def make_backend(urls: list[str], settings: Settings, routing: str = "affinity") -> OpenAIHTTPBackend:
    """The worker's model client, as the runtime builds it for replicas (serve/model/factory.py): every
    replica URL, slots = replicas x max_num_seqs, requests routed by their affinity key."""
    return OpenAIHTTPBackend(urls, settings.model_id, batch_size=settings.batch_size,
                             max_prompt_tokens=overhead.max_prompt_tokens(settings),
                             max_new_tokens=settings.max_new_tokens, timeout_s=120.0,
                             max_num_seqs=SimConfig().max_num_seqs, routing=routing)


def worker_phase(records: list[tuple[str, bytes]], items: int, window_s: float, replicas: int) -> dict[str, Any]:
    """The real Worker.run() against a fresh simulator until the window ends or the backlog fits in flight."""
    settings = overhead.bench_settings()
    with simulator(replicas) as urls:
        slots = replicas * SimConfig().max_num_seqs
        sink, problems = overhead._quiet_logs()
        try:
            r = overhead.rig(records, backend=make_backend(urls, settings), batch_size=settings.batch_size)
        except BaseException:
            sink.close()
            raise
        thread = threading.Thread(target=r.worker.run, name="bench-worker", daemon=True)
        thread.start()
        try:
            deadline = time.perf_counter() + 60
            while not sim_stats(urls)["requests"] and time.perf_counter() < deadline:
                time.sleep(0.05)
            before, cpu0, d0, t0 = sim_stats(urls), time.process_time(), r.worker.stats.decisions, time.perf_counter()
            while time.perf_counter() - t0 < window_s and items - r.worker.stats.decisions > slots:
                time.sleep(0.1)
            after, cpu1, d1, t1 = sim_stats(urls), time.process_time(), r.worker.stats.decisions, time.perf_counter()
        finally:
            r.worker.stop.set("bench")
            thread.join(timeout=120)
            r.worker.backend.close()
            overhead.logs.configure("WARNING")
            sink.close()
    if d1 == d0:
        raise RuntimeError(f"the worker decided nothing in {t1 - t0:.0f} s: {'; '.join(problems.seen) or 'no log'}")
    return {"sim": delta(after, before), "decisions": d1 - d0, "decided_total": d1, "wall_s": t1 - t0,
            "cpu_s": cpu1 - cpu0,
            "slots": slots, "replicas": replicas}


def baseline_phase(records: list[tuple[str, bytes]], window_s: float, replicas: int) -> dict[str, Any]:
    settings = overhead.bench_settings()
    sink, _ = overhead._quiet_logs()
    try:
        with simulator(replicas) as urls:
            backend = make_backend(urls, settings)
            before = sim_stats(urls)
            measured = stop_and_go.run(records, settings, backend, batch_size=settings.batch_size, seconds=window_s)
            measured["sim"] = delta(sim_stats(urls), before)
            backend.close()
    finally:
        overhead.logs.configure("WARNING")
        sink.close()
    return measured


def ceiling_phase(requests: list[tuple[str, GenerationRequest]], seconds: float, replicas: int) -> dict[str, float]:
    """The same prompts from a client that keeps every slot busy: what the harness allows."""
    with simulator(replicas) as urls:
        return drive_continuously(urls, requests, in_flight=replicas * SimConfig().max_num_seqs,
                                  seconds=seconds)


def prefix_hit_rate(requests: list[tuple[str, GenerationRequest]], replicas: int, routing: str,
                    max_new_tokens: int) -> dict[str, float]:
    """The same prompts to `replicas` fresh replicas through the runtime's client and router
    (`routing` "affinity": consistent hashing of agent/subject; "random"); vLLM's hit rate from /metrics."""
    with simulator(replicas, time_scale=0.02) as urls:
        client = OpenAIHTTPBackend(urls, "Qwen/Qwen3-8B", batch_size=SimConfig().max_num_seqs,
                                   max_prompt_tokens=1 << 20, max_new_tokens=max_new_tokens,
                                   max_num_seqs=SimConfig().max_num_seqs, routing=routing)
        with ThreadPoolExecutor(max_workers=replicas * SimConfig().max_num_seqs) as pool:
            list(pool.map(lambda pair: client.generate([replace(pair[1], affinity_key=pair[0])]), requests))
        counters = metrics(urls)
        client.close()
    queries = counters["vllm:prefix_cache_queries_total"]
    return {"hit_rate": counters["vllm:prefix_cache_hits_total"] / queries if queries else 0.0, "queries": queries,
            "requests": len(requests)}


def peak_decisions_per_s(sim: dict[str, float], replicas: int, config: SimConfig) -> float:
    """Decisions/s of full replicas for this run's mean uncached prompt and completion lengths.

    Each second of a full replica is decode steps at max_num_seqs plus prefill of new prompts:
    1 = rate x (completion x step(S) / S + uncached x prefill_per_token), so rate follows.
    """
    requests = max(1.0, sim["requests"])
    completion, uncached, s = sim["generation_tokens"] / requests, sim["prefilled_tokens"] / requests, config.max_num_seqs
    per_request_s = (completion * config.step_ms(s, 0) / s + uncached * config.prefill_ms_per_token) / 1000
    return replicas / per_request_s


def run(events: int = 2000, window_s: float = 60.0, baseline_window_s: float = 45.0, prefix_replicas: int = 4,
        prefix_requests: int | None = None, ceiling_s: float = 60.0, replicas: int = WORKER_REPLICAS) -> Result:
    settings, config = overhead.bench_settings(), SimConfig()
    records = backlog_records(events)
    items = item_count(records, settings)
    current = worker_phase(records, items, window_s, replicas)
    baseline = baseline_phase(records, baseline_window_s, replicas)
    requests = rendered_requests(records, settings, estimate_tokens, overhead.max_prompt_tokens(settings))
    # The ceiling feeds the slice of the backlog the worker decided (plus one window), so both see the same prompts.
    ceiling = ceiling_phase(requests[:current["decided_total"] + current["slots"]], ceiling_s, replicas)
    requests = requests[:prefix_requests] if prefix_requests else requests
    affinity = prefix_hit_rate(requests, prefix_replicas, "affinity", settings.max_new_tokens)
    scattered = prefix_hit_rate(requests, prefix_replicas, "random", settings.max_new_tokens)
    sim = current["sim"]
    utilization = sim["busy_slot_s"] / sim["available_slot_s"]
    rate, base_rate = current["decisions"] / current["wall_s"], baseline["decisions_per_s"]
    cpu_per_decision = current["cpu_s"] / current["decisions"]
    peak = ceiling["decisions_per_s"]  # measured: the simulator kept full by a client with no work of its own
    figures = {"utilization": round(utilization, 3), "stop_and_go_ratio": round(rate / base_rate, 2),
               "prefix_hit_rate_affinity": round(affinity["hit_rate"], 3),
               "prefix_hit_rate_random": round(scattered["hit_rate"], 3),
               "cpu_share_of_core": round(cpu_per_decision * peak, 3)}
    met = {"utilization": utilization >= 0.9, "stop_and_go_ratio": rate / base_rate >= 2}
    base_sim = baseline["sim"]
    notes = [
        f"backlog {events:,} events = {items:,} decisions across {len(settings.agents)} agents, present from the start; "
        f"simulator: {current['replicas']} replica(s) x {config.max_num_seqs} slots (the worker's client reaches "
        f"{current['replicas']} through its router)",
        f"utilization {utilization:.1%} of slot-seconds over {current['wall_s']:.1f} s with a backlog (target >= 90%: "
        f"{'met' if met['utilization'] else 'MISSED'}); mean running {sim['busy_slot_s'] / current['wall_s']:.1f}",
        f"current worker {rate:.2f} decisions/s vs stop-and-go batches of {settings.batch_size} {base_rate:.2f}/s "
        f"(utilization {base_sim['busy_slot_s'] / base_sim['available_slot_s']:.1%}): ratio {rate / base_rate:.2f} "
        f"(target >= 2: {'met' if met['stop_and_go_ratio'] else 'MISSED'})",
        f"prefix-cache hit rate over {len(requests):,} prompts on {prefix_replicas} replicas: affinity by agent and "
        f"subject {affinity['hit_rate']:.1%}, random replica {scattered['hit_rate']:.1%} (the runtime's client and "
        "router choose the replica)",
        f"ceiling: a client keeping all {ceiling['in_flight']} slots busy with the same {ceiling['decisions']} prompts "
        f"gets utilization "
        f"{ceiling['utilization']:.1%} at {peak:.2f} decisions/s (the model-only estimate for this run's prompt mix: "
        f"{peak_decisions_per_s(sim, current['replicas'], config):.2f}/s)",
        f"runtime CPU {cpu_per_decision * 1000:.2f} ms per decision (worker process, simulator in its own process) x "
        f"simulated peak {peak:.2f} decisions/s = {cpu_per_decision * peak:.1%} of one core",
    ]
    details = {**figures, "targets": TARGETS, "met": met,
               "current": current, "stop_and_go": baseline, "prefix": {"affinity": affinity, "random": scattered},
               "ceiling": ceiling, "peak_decisions_per_s": round(peak, 2),
               "peak_decisions_per_s_model": round(peak_decisions_per_s(sim, current["replicas"], config), 2),
               "sim_config": asdict(config)}
    return Result("serving", round(utilization * 100, 1), "% slots busy", 100.0, figures["utilization"],
                  TARGETS["utilization"], notes, details)
