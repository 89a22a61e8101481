"""A short fine-tune of the local model on synthetic (prompt -> decision) pairs.

The pairs use the real prompt builder and the exact token sequence guided decoding emits
(guided.decision_token_ids), so the model learns the serving format: which action the
default agents' rules call for (alarm back to OK -> ignore, HIGH finding -> file_jira, ...)
and short messages about the event. Loss is on the decision tokens only.

Measured (seed 0, batch 8, 1 thread): 100 steps take ~105 s on a busy 2-core box; messages
become readable ("Alarm HighCPU returned to OK") but the action stays at the class prior
(always "ignore", 65% on held-out examples). Conditioning the action on the event needs
more steps than a build should spend, hence opt-in.
"""

from __future__ import annotations

import random
import time
from typing import Any

import torch

from agentfleet.decide.prompt import build_prompt
from agentfleet.serve.model.guided import DecisionVocab, decision_token_ids
from agentfleet.spec.catalog import AgentSpec

_AGENTS = {
    "ci": AgentSpec("ci-triage", "You triage CI results. When a build fails, decide whether the team must be notified "
                    "now or a ticket opened; ignore one-off flakes that already passed on retry.",
                    ("ci.failed", "ci.succeeded"), ("notify", "open_ticket", "ignore"), 30),
    "cloudwatch": AgentSpec("alarm-responder", "You watch CloudWatch alarms. Page on-call (page_oncall) for alarms "
                            "that are new or escalating; ignore alarms returning to OK.", ("cloudwatch.alarm",),
                            ("notify", "page_oncall", "ignore"), 60),
    "security": AgentSpec("security-watch", "You review security findings. High or critical findings file a Jira "
                          "issue (file_jira) after human approval; low findings are ignored.", ("security.finding",),
                          ("notify", "file_jira", "ignore"), 20),
    "code": AgentSpec("release-scribe", "You follow code pushes to main. Post a release note (post_webhook) for "
                      "pushes that change deployment or infrastructure code; ignore the rest.", ("code.push",),
                      ("notify", "post_webhook", "ignore"), 60),
}
_REPOS = ["agentfleet", "web-app", "payments", "api-gateway", "infra", "data-pipeline", "auth-service"]
_STEPS = ["unit-tests", "integration-tests", "lint", "typecheck", "build", "deploy", "smoke-tests"]
_ALARMS = [("HighCPU", "CPUUtilization", 80), ("ApiLatencyP99", "Latency", 500), ("ErrorRate5xx", "5XXError", 5),
           ("QueueDepth", "ApproximateNumberOfMessagesVisible", 1000), ("DiskSpaceLow", "FreeStorageSpace", 10)]
_FINDINGS = ["S3 bucket without access logging", "IAM user with console access and no MFA",
             "EC2 instance querying a known malicious domain", "Remote code execution in container image",
             "Security group open to the world on port 22"]
_INFRA = ["stacks/fleet.py", "constructs/ingest.py", "cdk.json", "Dockerfile", "deploy/helm/values.yaml", "terraform/vpc.tf"]
_OTHER = ["README.md", "docs/usage.md", "tests/test_api.py", "src/app.py"]


def synthetic_example(rng: random.Random) -> tuple[AgentSpec, dict[str, Any], tuple[str, str, str, str]]:
    """One event for one default agent, and the decision its rules call for:
    (action, message, rationale, confidence digits)."""
    kind = rng.choice(list(_AGENTS))
    eid = f"evt-{rng.randrange(10_000):04d}"
    if kind == "ci":
        repo, branch, step = rng.choice(_REPOS), rng.choice(["main", "main", "feature/x"]), rng.choice(_STEPS)
        if rng.random() < 0.25:
            payload: dict[str, Any] = {"repo": repo, "branch": branch, "pipeline": "build", "duration_s": rng.randrange(60, 900)}
            return _AGENTS[kind], _event(eid, "ci.succeeded", f"repo/{repo}", payload), (
                "ignore", f"Build succeeded for {repo}", "A successful build needs no action", "95")
        attempt, retried = rng.randint(1, 3), rng.random() < 0.3
        payload = {"repo": repo, "branch": branch, "pipeline": "build", "failed_step": step, "attempt": attempt,
                   "passed_on_retry": retried}
        event = _event(eid, "ci.failed", f"repo/{repo}", payload)
        if retried:
            return _AGENTS[kind], event, ("ignore", f"Flaky {step} passed on retry", "A one-off flake", "85")
        if branch != "main":
            return _AGENTS[kind], event, ("ignore", f"{step} failed on {branch}", "Not on main", "6")
        if attempt >= 3:
            return _AGENTS[kind], event, ("open_ticket", f"Build keeps failing on main in {step} for {repo}",
                                          "Repeated failures on main need a ticket", "75")
        return _AGENTS[kind], event, ("notify", f"Build failed on main in {step} for {repo}",
                                      "A failure on main blocks the team", "8")
    if kind == "cloudwatch":
        name, metric, threshold = rng.choice(_ALARMS)
        state = rng.choice(["ALARM", "ALARM", "OK", "OK", "INSUFFICIENT_DATA"])
        previous = "ALARM" if state == "OK" else "OK"
        payload = {"alarm_name": name, "state": state, "previous_state": previous, "metric": metric,
                   "threshold": threshold, "value": round(threshold * rng.uniform(0.2, 1.8), 1)}
        event = _event(eid, "cloudwatch.alarm", f"alarm/{name}", payload)
        if state == "ALARM":
            return _AGENTS[kind], event, ("page_oncall", f"Alarm {name} is in ALARM", "The alarm is new and escalating",
                                          "9")
        if state == "OK":
            return _AGENTS[kind], event, ("ignore", f"Alarm {name} returned to OK", "Alarms returning to OK need no action", "95")
        return _AGENTS[kind], event, ("ignore", f"Alarm {name} has insufficient data", "Not an incident", "7")
    if kind == "security":
        severity, title = rng.choice(["LOW", "LOW", "MEDIUM", "HIGH", "CRITICAL"]), rng.choice(_FINDINGS)
        fid = f"gd-{rng.randrange(1000)}"
        payload = {"finding_id": fid, "severity": severity, "title": title, "resource": "i-0abc123", "product": "GuardDuty"}
        event = _event(eid, "security.finding", f"finding/{fid}", payload)
        if severity in ("HIGH", "CRITICAL"):
            return _AGENTS[kind], event, ("file_jira", f"{severity} finding {fid}: {title}",
                                          "High severity findings open a ticket after approval", "9")
        if severity == "MEDIUM":
            return _AGENTS[kind], event, ("notify", f"MEDIUM finding {fid}: {title}", "Medium findings are worth a heads-up", "6")
        return _AGENTS[kind], event, ("ignore", f"LOW finding {fid}", "Low findings are ignored", "8")
    repo, branch = rng.choice(_REPOS), rng.choice(["main", "main", "develop"])
    infra = rng.random() < 0.5
    files = rng.sample(_INFRA, 2) if infra else rng.sample(_OTHER, 2)
    payload = {"repo": repo, "branch": branch, "author": "dev", "commits": rng.randint(1, 5), "files": files}
    event = _event(eid, "code.push", f"repo/{repo}", payload)
    if infra and branch == "main":
        return _AGENTS[kind], event, ("post_webhook", f"Push to main changes deployment code: {files[0]}",
                                      "Infrastructure changes are announced", "85")
    return _AGENTS[kind], event, ("ignore", f"Push to {branch} needs no announcement", "No deployment change on main", "9")


def _event(eid: str, etype: str, subject: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"id": eid, "type": etype, "subject": subject, "payload": payload}


def training_pair(vocab: DecisionVocab, tokenizer: Any, rng: random.Random) -> tuple[list[int], list[int], int]:
    """(prompt ids with BOS, decision ids, how many action tokens), exactly as TransformersBackend
    would see and emit them; the action tokens start right after the first literal."""
    agent, event, (action, message, rationale, digits) = synthetic_example(rng)
    prompt = build_prompt(agent, [event], [], [], vocab.count, 1024)
    decision = decision_token_ids(vocab, action, message, rationale, digits)
    return [tokenizer.bos_token_id, *vocab.encode(prompt)], decision, len(vocab.encode(action))


def finetune(
    model: Any, tokenizer: Any, *, steps: int, seed: int = 0, batch: int = 8, lr: float = 3e-3, action_weight: float = 8.0
) -> dict[str, float]:
    """Train `model` in place for `steps` steps; returns loss before/after and seconds.

    The action is 1-3 of ~45 decision tokens but is the decision that matters, so its tokens
    weigh `action_weight` times the free-text ones in the loss.
    """
    started = time.perf_counter()
    vocab = DecisionVocab.for_tokenizer(tokenizer, model.config.vocab_size)
    action_at = len(vocab.literals[0])
    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 10) * max(0.1, 1 - s / steps))
    model.train()
    losses: list[float] = []
    for _ in range(steps):
        pairs = [training_pair(vocab, tokenizer, rng) for _ in range(batch)]
        width = max(len(p) + len(d) for p, d, _ in pairs)
        ids = torch.full((batch, width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((batch, width), dtype=torch.long)
        weights = torch.zeros((batch, width))  # weight of predicting token t (from position t-1)
        for i, (p, d, n_action) in enumerate(pairs):  # right padding: training needs no cache alignment
            ids[i, : len(p) + len(d)] = torch.tensor(p + d)
            mask[i, : len(p) + len(d)] = 1
            weights[i, len(p) : len(p) + len(d)] = 1.0
            weights[i, len(p) + action_at : len(p) + action_at + n_action] = action_weight
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
        per_token = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
        loss = (per_token * weights[:, 1:]).sum() / weights[:, 1:].sum()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
    model.eval()
    head, tail = losses[: min(5, len(losses))], losses[-min(5, len(losses)) :]
    return {"loss_start": sum(head) / len(head), "loss_end": sum(tail) / len(tail),
            "seconds": round(time.perf_counter() - started, 1), "steps": float(steps)}
