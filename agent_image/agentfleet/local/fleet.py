"""`make demo`: the whole system on this machine, and proof from the emulator's records that it lost nothing.

Starts moto (server mode, loopback, IAM enforced), synthesizes the app and deploys it into the
emulator as an admin user, builds the small CPU model (or, with --model-url, uses the OpenAI-compatible
server the user runs), starts N workers -- each with the key of an IAM user carrying exactly the
instance role's policies from cdk.out -- and a local approver, replays a scenario into the stream
(GitHub deliveries through the real webhook handler), waits until every record is decided,
quarantined or dropped and every action finished, stops everything and writes DIR/summary.json and
DIR/summary.png.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agentfleet.local import deploy, emulator, iam, outbound, records, replay, report, scenarios, workers
from agentfleet.local.approver import Approver
from agentfleet.local.github_sim import GitHubSim
from agentfleet.local.model_prep import prepare_model
from agentfleet.local.progress import Counts, Progress
from agentfleet.local.watch import wait_until_done
from agentfleet.ops import logs
from agentfleet.ops.aws import client
from agentfleet.spec.catalog import parse_agents
from agentfleet.spec.fleet import default_context

log = logs.get(__name__)


@dataclass
class Options:
    workers: int = 3
    events: int | None = None
    scenario: str = "sources"
    kill_one: bool = False
    out: Path = Path("out/demo")
    assembly: Path | None = None  # reuse a synthesized cloud assembly instead of running app.py
    rate: float = 0.0  # records per second; 0 sends the whole scenario at once
    lease_seconds: int = 6
    timeout_s: float = 900.0
    finetune_steps: int = 0  # >0: fine-tune the local model first (minutes, cached) for sensible decisions
    overrides: dict[str, Any] = field(default_factory=dict)  # extra config-document settings
    model_url: str = ""  # an OpenAI-compatible server (Ollama, llama.cpp server, vLLM); "" = the built-in model
    model: str = ""  # the model name that server serves (its request's "model" field)
    # Called with the emulator's endpoint once the workers are healthy, before the replay: a hook for
    # checks that drive the running fleet themselves (tests/local/test_fleetcheck.py runs the fleet check).
    on_ready: Callable[[str], None] | None = None


# cdk.json's 4096/256 are sized for the served model on Trainium; the small CPU model writes
# ~80-token decisions, and shorter prompts keep CPU prefill from dominating. bench/ uses these too.
LOCAL_SEQUENCE_LENGTH = 1024
LOCAL_MAX_NEW_TOKENS = 96


DEFAULT_SERVED_MODEL = "default"  # sent as "model" when --model is not given; llama.cpp's server ignores it


def model_settings(opts: Options, model_dir: Path | None) -> dict[str, Any]:
    """The engine settings: the built-in model, or the user's OpenAI-compatible server through the
    openai-http engine (agentfleet/serve/model/openai_http.py: POST <url>/v1/chat/completions)."""
    if opts.model_url:
        return {"engine": "openai-http", "openai_base_url": opts.model_url,
                "model_id": opts.model or DEFAULT_SERVED_MODEL, "local_model_dir": ""}
    return {"engine": "transformers-cpu", "model_id": "local/tiny-llama", "local_model_dir": str(model_dir)}


def local_document(deployed: deploy.Deployed, model_dir: Path | None, opts: Options) -> dict[str, Any]:
    """The runtime config document the stack wrote to SSM, with the settings that differ on a laptop."""
    doc = json.loads(client("ssm").get_parameter(Name=deployed.output("RuntimeConfigParameter"))["Parameter"]["Value"])
    doc.update({
        **model_settings(opts, model_dir),
        # Workers are processes here, not instances: no Auto Scaling group, no lifecycle hooks, no IMDS.
        "asg_name": "", "launch_hook_name": "", "termination_hook_name": "",
        "lease_seconds": opts.lease_seconds, "metrics_mode": "emf",
        "torch_threads": 1,  # several workers share this machine's cores
        "sequence_length": LOCAL_SEQUENCE_LENGTH, "max_new_tokens": LOCAL_MAX_NEW_TOKENS,
        **opts.overrides,
    })
    return doc


WORKER_USER = "agentfleet-worker"
STATES_USER = "agentfleet-states"  # the actions state machine's role, for its service integrations


def worker_identity(assembly: Path, deployed: deploy.Deployed, user: str = WORKER_USER,
                    principal: str = iam.EC2) -> tuple[iam.Identity, dict[str, Any]]:
    """An IAM user in the emulator with the policies of the role `principal` assumes (default: the instance
    role) from the deployed templates, resolved against what the emulator's CloudFormation created; and a
    description for the summary."""
    by_stack = iam.templates(assembly)
    policies = iam.worker_policies(by_stack, principal)
    cfn = client("cloudformation")
    exports = {e["Name"]: e["Value"] for e in cfn.list_exports().get("Exports", [])}
    physical = iam.deployed_physical(cfn, by_stack)
    for stack, created in deployed.deferred.items():
        physical.setdefault(stack, {}).update(created)
    resolved = iam.resolve(policies, iam.resolvers_for(by_stack, physical, exports))
    identity, widened = iam.create_worker(client("iam"), user, resolved)
    return identity, {
        "identity": f"user/{user}", "role": policies.role,
        "policies": [f"{d.stack}/{d.name} ({d.kind})" for d in resolved],
        "aws_managed_not_applied": policies.aws_managed,
        "statements_checked_by_action_only": widened,
        "unresolved_resources": sorted({r for d in resolved for st in d.document.get("Statement", [])
                                        for r in st.get("Resource", []) if r.startswith(iam.UNRESOLVED)}),
    }


def run(opts: Options, progress: Progress | None = None) -> dict[str, Any]:
    """One local run; returns the summary (also written to opts.out)."""
    started = time.monotonic()
    progress = progress or Progress()
    opts.out.mkdir(parents=True, exist_ok=True)
    batch = scenarios.load(opts.scenario, opts.events)
    emu = emulator.start(log_path=str(opts.out / "moto.log"), iam=True)
    fleet: list[workers.WorkerProcess] = []
    approver: Approver | None = None
    sink: outbound.http_sink.HttpSink | None = None
    targets: dict[str, Any] = {}
    saved_env = {key: os.environ.get(key) for key in emu.env()}
    try:
        os.environ.update(emu.env())  # this process's clients talk to the emulator too, as its admin user
        if opts.assembly is None:  # a given assembly keeps its own targets (bench/: all disabled)
            sink = outbound.start_sink(opts.out)
            targets = outbound.targets_context(default_context()["targets"], sink.url)
            made = outbound.create_secrets(client("secretsmanager"), targets)
            progress.note(f"action targets {', '.join(targets)} -> the sink at {sink.url} (secrets {', '.join(made)})")
        assembly = opts.assembly or deploy.synth(opts.out / "cdk.out", context={"targets": targets})
        progress.note(f"emulator on {emu.endpoint}; deploying {assembly}")
        deployed = deploy.deploy(assembly, client, emu.endpoint)
        for note in deployed.notes:
            progress.note(f"  local deploy: {note}")
        model_dir = None
        if opts.model_url:
            progress.note(f"workers use the model server at {opts.model_url} (model {opts.model or DEFAULT_SERVED_MODEL!r})")
        else:
            progress.note("preparing the local model (built in code; cached under .cache/agentfleet)")
            model_dir = prepare_model(finetune_steps=opts.finetune_steps)
        doc = local_document(deployed, model_dir, opts)
        config_path = opts.out / "config.json"
        config_path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
        names = {k: doc[k] for k in ("stream_name", "audit_table", "memory_table", "leases_table",
                                     "state_machine_arn")}
        identity, iam_summary = worker_identity(assembly, deployed)
        machine, machine_summary = worker_identity(assembly, deployed, STATES_USER, iam.STATES)
        emu.run_state_machines_as(machine)
        iam_summary["state_machine"] = machine_summary
        progress.note(f"workers run as {iam_summary['identity']} with {', '.join(iam_summary['policies'])}")
        if sink is not None:  # the notify topic's chat channel, played by the sink
            outbound.http_sink.subscribe_slack(client("sns"), deployed.output("NotifyTopicArn"), sink)
        approver = Approver(client("sqs"), client("sns"), client("stepfunctions"), deployed.output("ApprovalTopicArn"))
        approver.start()
        env = {**os.environ, **emu.env(), **identity.env(), "AGENTFLEET_CONFIG": str(config_path.resolve())}
        progress.note(f"starting {opts.workers} workers (logs in {opts.out / 'logs'})")
        fleet = workers.start(opts.workers, env, opts.out / "logs")
        late = workers.wait_healthy(fleet, timeout=180)
        progress.note(f"{len(fleet) - len(late)}/{len(fleet)} workers healthy"
                      + (f"; not healthy: {late} (see {opts.out / 'logs'})" if late else ""))
        if opts.on_ready is not None:
            opts.on_ready(emu.endpoint)
        counts = Counts(total=len(batch))
        github = (GitHubSim(client("secretsmanager"), client("kinesis"), names["stream_name"])
                  if any(r.webhook for r in batch) else None)
        sent = replay.put_all(client("kinesis"), names["stream_name"], batch, rate=opts.rate,
                              on_sent=lambda n: setattr(counts, "sent", n), github=github)
        # Dropped records (Logs control messages) never get a decision or a quarantine record to wait for.
        awaited = [s for s in sent if not s.dropped]
        if len(awaited) < len(sent):
            progress.note(f"{len(sent) - len(awaited)} records are CloudWatch Logs control messages: "
                          "the workers drop them (counted, not decided, not quarantined)")
        counts.total = counts.sent = len(awaited)
        killed, held = wait_until_done(client, names, awaited, fleet, approver, counts, progress,
                                       kill_one=opts.kill_one, timeout_s=opts.timeout_s, logs_dir=opts.out / "logs")
        progress.note("stopping workers (SIGTERM, drain)")
        exit_codes = workers.stop_all(fleet, deadline_s=float(doc.get("shutdown_deadline_seconds", 25)) + 5)
        approver.stop()
        limit = int(doc.get("max_record_bytes", records.MAX_KINESIS_RECORD_BYTES))
        snap = records.snapshot(client, names, limit)
        summary = report.summarize(snap, events_sent=len(sent), workers=opts.workers, killed_workers=killed,
                                   wall_s=time.monotonic() - started, approvals_answered=len(approver.approved),
                                   scenario=opts.scenario, agents=parse_agents(doc["agents"], key="agents",
                                                                             targets=list(doc.get("targets", {}))),
                                   max_record_bytes=limit)
        summary["model"] = {"engine": doc["engine"], "model_id": doc["model_id"],
                            "url": doc.get("openai_base_url", "")}
        if sink is not None:
            summary["deliveries_by_target"] = sink.deliveries_by_target()
            summary["responses_recorded_by_target"] = outbound.responses_by_target(snap.audit.outcomes)
            summary["succeeded_by_target"] = outbound.succeeded_by_target(snap.audit.outcomes)
        if github is not None:
            summary["webhook_responses"] = {str(k): v for k, v in sorted(github.statuses.items())}
        summary["killed_unacknowledged_records"] = held
        summary["worker_exit_codes"] = exit_codes
        summary["local_deploy_notes"] = deployed.notes
        denied = emu.denied()  # every call the emulator refused, from any process (moto_server.py)
        summary.update({"iam_enforced": emu.iam_enforced, "denied_calls": len(denied),
                        "denied_examples": denied[:10], "iam": iam_summary})
        report.write(summary, opts.out)
        return summary
    finally:
        if approver:
            approver.stop()
        workers.stop_all(fleet, deadline_s=5)
        if sink is not None:
            sink.stop()
        emu.stop()
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m agentfleet.local.fleet", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=3, help="worker processes (default 3)")
    parser.add_argument("--events", type=int, default=None, help="send at most this many records")
    parser.add_argument("--scenario", default="sources",
                        help="shipped scenario (ci-day, noisy, sources) or a path to a JSONL file, one record per line")
    parser.add_argument("--kill-one", action="store_true", help="SIGKILL one worker a third of the way through")
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="output directory (default out/demo)")
    parser.add_argument("--rate", type=float, default=0.0, help="records per second (default: all at once)")
    parser.add_argument("--assembly", type=Path, default=None, help="deploy this cdk.out instead of synthesizing")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up waiting after this many seconds")
    parser.add_argument("--finetune-steps", type=int, default=0,
                        help="fine-tune the local model this many steps first (cached; 0: guided decoding only)")
    parser.add_argument("--model-url", default="", metavar="URL",
                        help="an OpenAI-compatible server you run (Ollama http://localhost:11434, llama.cpp server, "
                             "vLLM http://localhost:8000); workers call URL/v1/chat/completions instead of the built-in model")
    parser.add_argument("--model", default="", metavar="NAME",
                        help=f"the model name that server serves (default {DEFAULT_SERVED_MODEL!r}); needs --model-url")
    args = parser.parse_args(argv)
    if args.model and not args.model_url:
        parser.error("--model names a model on a server: give --model-url too")
    if args.model_url and urlsplit(args.model_url).scheme not in ("http", "https"):
        parser.error(f"--model-url must be an http:// or https:// URL, got {args.model_url!r}")
    if args.model_url and args.finetune_steps:
        parser.error("--finetune-steps tunes the built-in model; it does nothing with --model-url")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.events is not None and args.events < 1:
        parser.error("--events must be at least 1")
    return Options(workers=args.workers, events=args.events, scenario=args.scenario, kill_one=args.kill_one,
                   out=args.out, assembly=args.assembly, rate=args.rate, timeout_s=args.timeout,
                   finetune_steps=args.finetune_steps, model_url=args.model_url, model=args.model)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    logs.configure("WARNING")  # this process's own logs: only problems; progress and summary go to the terminal
    opts = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so run()'s cleanup stops the workers and the emulator it started.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        summary = run(opts)
    except (deploy.DeployError, FileNotFoundError) as exc:
        sys.stderr.write(f"local fleet failed: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("local fleet interrupted; workers and emulator stopped\n")
        return 130
    iam_line = f"\nIAM enforced: {summary['iam_enforced']}; denied calls: {summary['denied_calls']}"
    sys.stdout.write(report.text(summary) + iam_line + f"\nwrote {opts.out / 'summary.json'} and {opts.out / 'summary.png'}\n")
    ok = summary["lost_events"] == 0 and summary["duplicate_actions"] == 0 and summary["missing_actions"] == 0 \
        and not summary["quarantined_dropped"] and summary["actions_running"] == 0 and summary["iam_enforced"] \
        and summary["denied_calls"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
