"""ReplicaRouter and the OpenAI backend over several replicas: one key stays on one replica, a dead
replica's keys move and no other key does, random mode spreads, slots = live replicas x max_num_seqs."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator

import pytest

from agentfleet.serve.model.base import GenerationRequest
from agentfleet.serve.model.openai_http import OpenAIHTTPBackend
from agentfleet.serve.model.routing import ReplicaRouter
from tests.model.loopback import QuietHandler, serve

KEYS = [f"agent-{a}/subject-{s}" for a in range(20) for s in range(10)]


def test_affinity_is_consistent_and_spreads_keys_over_replicas() -> None:
    router = ReplicaRouter(4, 8)
    first = {k: router.pick(k) for k in KEYS}
    assert all(router.pick(k) == first[k] for k in KEYS), "one key, one replica"
    assert all(ReplicaRouter(4, 8).pick(k) == first[k] for k in KEYS), "same answer in every worker process"
    counts = Counter(first.values())
    assert set(counts) == {0, 1, 2, 3} and min(counts.values()) > len(KEYS) / 8


def test_a_dead_replica_moves_only_its_own_keys_and_they_come_back() -> None:
    router = ReplicaRouter(4, 8)
    before = {k: router.pick(k) for k in KEYS}
    router.set_live([0, 1, 3])
    after = {k: router.pick(k) for k in KEYS}
    assert all(after[k] == before[k] for k in KEYS if before[k] != 2), "keys of live replicas stay"
    moved = [k for k in KEYS if before[k] == 2]
    assert moved and all(after[k] in (0, 1, 3) for k in moved)
    assert len({after[k] for k in moved}) > 1, "the dead replica's keys spread over the survivors"
    router.set_live(range(4))
    assert {k: router.pick(k) for k in KEYS} == before


def test_random_mode_spreads_one_key_and_slots_count_live_replicas() -> None:
    router = ReplicaRouter(3, 16, mode="random", rng=random.Random(7))
    assert {router.pick("agent-1") for _ in range(60)} == {0, 1, 2}
    assert router.slots == 48
    router.mark_down(1)
    assert router.slots == 32 and 1 not in {router.pick("agent-1") for _ in range(60)}
    router.acquire(0)
    router.acquire(0)
    assert router.load() == [(2, 16), (0, 0), (0, 16)]
    assert router.pick("") == 2, "a request without a key goes to the least busy live replica"
    with pytest.raises(ValueError, match="routing must be one of"):
        ReplicaRouter(2, 4, mode="round-robin")


class Replica:
    """A loopback completions server that records which keys it served."""

    def __init__(self) -> None:
        self.prompts: list[str] = []
        owner = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.prompts.append(body["prompt"])
                action = body["structured_outputs"]["json"]["properties"]["action"]["enum"][0]
                self.send(200, json.dumps({"choices": [{"index": 0, "text": json.dumps({"action": action})}],
                                           "usage": {"prompt_tokens": 3, "completion_tokens": 5}}).encode())

        self.httpd, self.url = serve(Handler)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def replicas() -> Iterator[list[Replica]]:
    servers = [Replica() for _ in range(3)]
    yield servers
    for server in servers:
        server.close()


def test_backend_sends_each_agent_to_its_replica_and_routes_around_a_refused_one(replicas: list[Replica]) -> None:
    urls = [r.url for r in replicas]
    backend = OpenAIHTTPBackend(urls, "m", batch_size=4, max_prompt_tokens=100, max_new_tokens=8, max_num_seqs=5,
                                backoff_s=0.0, sleep=lambda s: None)
    assert backend.slots == 15 and backend.replica_load() == [(0, 5)] * 3
    requests = [GenerationRequest(f"{agent} #{i}", ("ignore",), affinity_key=agent)
                for agent in ("ci-triage", "alarm-responder", "security-watch", "release-scribe") for i in range(5)]
    backend.generate(requests)
    homes = {agent: {i for i, r in enumerate(replicas) if any(p.startswith(agent) for p in r.prompts)}
             for agent in ("ci-triage", "alarm-responder", "security-watch", "release-scribe")}
    assert all(len(home) == 1 for home in homes.values()), homes
    assert backend.replica_load() == [(0, 5)] * 3, "every in-flight counter went back to zero"
    # replica of ci-triage stops listening: the retry goes to the next live replica and it is marked down
    (dead,) = homes["ci-triage"]
    replicas[dead].close()
    out = backend.generate([GenerationRequest("ci-triage again", ("notify",), affinity_key="ci-triage")])
    assert "notify" in out.texts[0] and out.timings["retries"] == 1
    assert backend.slots == 10 and backend.replica_load()[dead] == (0, 0)
    backend.set_live([0, 1, 2])  # the supervisor says it is back
    assert backend.slots == 15
    backend.close()
