"""One simulated vLLM replica: continuous batching over N slots with a block-level prefix cache.

Modelled on vLLM v1 (vllm-project/vllm vllm/v1/core/kv_cache_manager.py, kv_cache_utils.py):
- Blocks of `block_size` tokens; a full block's hash chains its parent's hash with its tokens, so
  a block is reusable only after the same whole prefix (kv_cache_utils.py "hash_block_tokens").
- A new request's longest cached run of blocks is its hit, capped at num_tokens - 1 so the last
  token is recomputed for logits; the stats count `queries += num_tokens` and `hits += hit tokens`
  (kv_cache_manager.py get_computed_blocks).
- Freed blocks keep their hash and go to the tail of an LRU free queue, a request's blocks in
  reverse order (tail blocks evicted first); a cached block found free is taken back out; a block
  taken for new tokens is evicted from the hash map (kv_cache_utils.FreeKVCacheBlockQueue,
  KVCacheManager.free). Prompt blocks are hashed when scheduled, so a later request can hit them
  while the first still runs (allocate_slots -> cache_blocks).
Simplifications (said so in README): a request reserves all its blocks (prompt + completion) at
admission, so there is never a preemption; only prompt blocks are hashed; no priorities.
Each step decodes one token for every sequence past prefill and prefills up to the token budget.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from bench.sim_config import SimConfig


@dataclass
class Sequence:
    """One request inside the engine."""

    prompt: bytes
    completion_tokens: int
    num_tokens: int = 0
    cached_tokens: int = 0
    prefilled: int = 0
    generated: int = 0
    blocks: list[int] = field(default_factory=list)
    arrived: float = 0.0
    admitted: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)


class BlockPool:
    """KV blocks with hash-chained prefix caching and LRU eviction of free blocks."""

    def __init__(self, blocks: int) -> None:
        self.ref = [0] * blocks
        self.hash_of: list[bytes | None] = [None] * blocks
        self.cached: dict[bytes, int] = {}
        self.free: OrderedDict[int, None] = OrderedDict((b, None) for b in range(blocks))  # front = evict first

    def take(self, block: int) -> None:
        if self.ref[block] == 0:
            del self.free[block]
        self.ref[block] += 1

    def new(self) -> int:
        block, _ = self.free.popitem(last=False)
        if (old := self.hash_of[block]) is not None:
            del self.cached[old]
            self.hash_of[block] = None
        self.ref[block] = 1
        return block

    def release(self, blocks: list[int]) -> None:
        for block in reversed(blocks):
            self.ref[block] -= 1
            if self.ref[block] == 0:
                self.free[block] = None


def block_hashes(prompt: bytes, block_bytes: int) -> list[bytes]:
    """Chained hashes of the prompt's full blocks (parent hash + the block's bytes = its tokens)."""
    out, parent = [], b""
    for start in range(0, len(prompt) - block_bytes + 1, block_bytes):
        parent = hashlib.sha256(parent + prompt[start:start + block_bytes]).digest()
        out.append(parent)
    return out


class Replica:
    """The engine: waiting queue, running set, step loop on its own thread. Thread-safe."""

    def __init__(self, config: SimConfig, index: int = 0) -> None:
        self.config, self.index = config, index
        self.pool = BlockPool(config.kv_blocks)
        self.waiting: list[Sequence] = []
        self.running: list[Sequence] = []
        self.lock = threading.Condition()
        self.stopped = False
        self.started = time.perf_counter()
        self.counters = {"requests": 0, "prompt_tokens": 0, "generation_tokens": 0, "prefix_cache_queries": 0,
                         "prefix_cache_hits": 0, "prefilled_tokens": 0, "steps": 0}
        self.busy_slot_s = 0.0  # sum over steps of (running sequences x step wall time)
        self.max_running = 0
        self.thread = threading.Thread(target=self._loop, name=f"sim-replica-{index}", daemon=True)

    def start(self) -> Replica:
        self.started = time.perf_counter()
        self.thread.start()
        return self

    def stop(self) -> None:
        with self.lock:
            self.stopped = True
            self.lock.notify_all()
        self.thread.join(timeout=5)

    def tokens(self, prompt: bytes) -> int:
        return -(-len(prompt) // self.config.bytes_per_token)

    def submit(self, prompt: bytes, completion_tokens: int) -> Sequence:
        seq = Sequence(prompt, completion_tokens, num_tokens=self.tokens(prompt), arrived=time.perf_counter())
        with self.lock:
            self.waiting.append(seq)
            self.lock.notify_all()
        return seq

    def _admit(self, seq: Sequence) -> bool:
        """Prefix lookup and block reservation (False: not enough free blocks yet; it stays waiting)."""
        c = self.config
        hashes = block_hashes(seq.prompt, c.block_size * c.bytes_per_token)
        hits: list[int] = []
        for h in hashes[:(seq.num_tokens - 1) // c.block_size]:
            if (block := self.pool.cached.get(h)) is None:
                break
            hits.append(block)
        total_blocks = -(-(seq.num_tokens + seq.completion_tokens) // c.block_size)
        reusable_free = sum(1 for b in hits if self.pool.ref[b] == 0)
        if total_blocks - len(hits) > len(self.pool.free) - reusable_free:
            return False
        for block in hits:
            self.pool.take(block)
        seq.blocks = hits + [self.pool.new() for _ in range(total_blocks - len(hits))]
        for i in range(len(hits), len(hashes)):  # hash the prompt's new full blocks (a duplicate keeps the first)
            if hashes[i] not in self.pool.cached:
                self.pool.cached[hashes[i]] = seq.blocks[i]
                self.pool.hash_of[seq.blocks[i]] = hashes[i]
        seq.cached_tokens = seq.prefilled = len(hits) * c.block_size
        self.counters["requests"] += 1
        self.counters["prompt_tokens"] += seq.num_tokens
        self.counters["prefix_cache_queries"] += seq.num_tokens
        self.counters["prefix_cache_hits"] += seq.cached_tokens
        seq.admitted = time.perf_counter()
        return True

    def _schedule(self) -> tuple[list[Sequence], dict[int, int]]:
        """Admit FCFS while slots and blocks allow; plan one step: decodes first, then prefill chunks."""
        while self.waiting and len(self.running) < self.config.max_num_seqs and self._admit(self.waiting[0]):
            self.running.append(self.waiting.pop(0))
        budget = self.config.max_num_batched_tokens
        decoding = [s for s in self.running if s.prefilled >= s.num_tokens]
        budget -= len(decoding)
        chunks: dict[int, int] = {}
        for seq in self.running:
            if seq.prefilled < seq.num_tokens and budget > 0:
                chunks[id(seq)] = take = min(budget, seq.num_tokens - seq.prefilled)
                budget -= take
        return decoding, chunks

    def _loop(self) -> None:
        while True:
            with self.lock:
                while not self.stopped and not self.running and not self.waiting:
                    self.lock.wait()
                if self.stopped:
                    return
                decoding, chunks = self._schedule()
                running = len(self.running)
                self.max_running = max(self.max_running, running)
                modelled = self.config.step_ms(running, sum(chunks.values())) / 1000 * self.config.time_scale
            began = time.perf_counter()
            time.sleep(modelled)
            with self.lock:
                self.busy_slot_s += running * (time.perf_counter() - began)
                self.counters["steps"] += 1
                self._advance(decoding, chunks)

    def _advance(self, decoding: list[Sequence], chunks: dict[int, int]) -> None:
        for seq in self.running:
            if id(seq) in chunks:
                seq.prefilled += chunks[id(seq)]
                self.counters["prefilled_tokens"] += chunks[id(seq)]
                if seq.prefilled >= seq.num_tokens:
                    seq.generated = 1  # the step that finishes prefill samples the first token
        for seq in decoding:
            seq.generated += 1
        finished = [s for s in self.running if s.prefilled >= s.num_tokens and s.generated >= s.completion_tokens]
        for seq in finished:
            self.running.remove(seq)
            self.pool.release(seq.blocks)
            self.counters["generation_tokens"] += seq.completion_tokens
            seq.done.set()

    def stats(self) -> dict[str, float]:
        """Counters, busy slot-seconds and the slot-seconds available since start (one consistent read)."""
        with self.lock:
            now = time.perf_counter()
            return {**self.counters, "busy_slot_s": self.busy_slot_s, "slots": self.config.max_num_seqs,
                    "available_slot_s": self.config.max_num_seqs * (now - self.started), "wall_s": now - self.started,
                    "running": len(self.running), "waiting": len(self.waiting), "max_running": self.max_running,
                    "kv_usage": 1 - len(self.pool.free) / len(self.pool.ref)}
