"""The container entry point: boot the model, prove it answers, tell Auto Scaling, then run the agents.

    /ping "starting" -> device health (Neuron) -> boot (cache or compile) -> load -> warm-up request
      -> /ping "healthy" -> CompleteLifecycleAction CONTINUE (launch hook) -> worker loop
Until CONTINUE, RecordLifecycleActionHeartbeat keeps the launch action alive (a cold compile can
outlast the hook's heartbeat timeout). A failed boot logs why, emits BootFailure{Phase}, completes
the launch action with ABANDON (the group replaces the instance rather than count a broken one in
service) and exits 1. After InService, a fatal error (Neuron hardware errors from neuron-monitor,
the model server gone, the worker crashing) calls SetInstanceHealth Unhealthy once.

`engine` and `instance_family` may be "auto": the family then comes from IMDS (a mixed
Trn3/Trn2/Inf2 group boots whichever it got) and the engine from the family.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from agentfleet.ops import instance, logs
from agentfleet.ops.health import HealthServer
from agentfleet.ops.metrics import Metrics
from agentfleet.serve.boot import device_health
from agentfleet.serve.boot.engines import Engine, create_engine
from agentfleet.serve.boot.lifecycle import FatalGuard, lifecycle_heartbeat
from agentfleet.serve.boot.load import make_deps, make_metrics, resolve_target
from agentfleet.serve.boot.sequence import Boot, BootDeps, BootError, BootResult
from agentfleet.serve.model.base import ModelBackend
from agentfleet.spec import metric_names
from agentfleet.spec.settings import Settings

log = logs.get(__name__)

WorkerRunner = Callable[[Settings, ModelBackend, HealthServer, Metrics, instance.InstanceMetadata], int]
EngineFactory = Callable[[Settings, str], Engine]
DeviceCheck = Callable[[Settings], None]


def check_devices(target: Settings) -> None:
    """Neuron engines only: the devices answer and report no hardware error, before any compile."""
    if target.engine == "transformers-cpu":
        return
    try:
        device_health.check_at_boot(needed_cores=target.tensor_parallel_degree)
    except device_health.DeviceUnhealthy as exc:
        raise BootError("device_health", str(exc)) from None


def signal_launch(settings: Settings, imds: instance.InstanceMetadata, asg_client: Any, result: str) -> None:
    """Complete the launch lifecycle action; outside an Auto Scaling group there is none."""
    if not (settings.asg_name and settings.launch_hook_name):
        log.info("no Auto Scaling group configured; no lifecycle action to complete", extra={"result": result})
        return
    instance_id = imds.instance_id()
    if instance_id is None:
        log.warning("instance id unknown (IMDS unreachable); cannot complete the launch action",
                    extra={"result": result})
        return
    instance.complete_lifecycle_action(asg_client, asg_name=settings.asg_name, hook_name=settings.launch_hook_name,
                                       instance_id=instance_id, result=result)


def boot_and_signal(
    settings: Settings,
    *,
    deps: BootDeps,
    health: HealthServer,
    imds: instance.InstanceMetadata,
    asg_client: Any,
    engine_factory: EngineFactory = create_engine,
    device_check: DeviceCheck = check_devices,
) -> tuple[Settings, BootResult] | None:
    """Device health, boot, warm up, go healthy, CONTINUE (heartbeating the launch action until then).
    On failure: log, metric, ABANDON, return None."""
    started = time.monotonic()
    instance_id = imds.instance_id()
    try:
        with lifecycle_heartbeat(asg_client, asg_name=settings.asg_name, hook_name=settings.launch_hook_name,
                                 instance_id=instance_id, interval_s=settings.lifecycle_heartbeat_seconds):
            target = resolve_target(settings, imds)
            device_check(target)
            engine = engine_factory(target, target.instance_family)
            result = Boot(target, engine, target.instance_family, deps, owner=instance_id or settings.worker_id).run()
    except Exception as exc:
        phase = exc.phase if isinstance(exc, BootError) else "resolve"
        log.error("boot failed; abandoning this instance", extra={"phase": phase, "reason": str(exc)}, exc_info=True)
        deps.metrics.count(metric_names.BOOT_FAILURES, Phase=phase)
        deps.metrics.flush()
        try:
            signal_launch(settings, imds, asg_client, "ABANDON")
        except Exception:
            log.exception("could not complete the launch action with ABANDON; the hook timeout will decide")
        return None
    health.set_state("healthy")
    ready_s = time.monotonic() - started
    deps.metrics.observe(metric_names.BOOT_TO_READY_SECONDS, ready_s, "Seconds")
    deps.metrics.flush()
    log.info("boot complete", extra={"cache_key": result.key, "cache_hit": result.cache_hit,
                                     "compiled": result.compiled, "boot_to_ready_s": round(ready_s, 1),
                                     "phases_s": {k: round(v, 2) for k, v in result.phases.items()}})
    try:
        signal_launch(target, imds, asg_client, "CONTINUE")
    except Exception:
        # Serving is fine; if the hook times out its default result decides. Make it visible.
        log.exception("could not complete the launch action with CONTINUE")
    return target, result


def _run_worker(settings: Settings, backend: ModelBackend, health: HealthServer, metrics: Metrics,
                imds: instance.InstanceMetadata) -> int:

    from agentfleet.entrypoints.worker import Worker, exit_code
    from agentfleet.ops.shutdown import StopSignal

    stop = StopSignal()
    stop.install_signal_handlers()
    on_ec2 = imds.instance_id() is not None
    market = (imds.get("meta-data/instance-life-cycle") or "") if on_ec2 else ""
    worker = Worker(settings, backend, health=health, metrics=metrics, stop=stop, market=market,
                    metadata=imds if (on_ec2 and settings.asg_name) else None)
    return exit_code(worker, worker.run())


def _preflight(settings: Settings) -> None:
    """Fail before an hour of compiling if the worker could never start anyway."""
    from agentfleet.entrypoints.worker import check_settings

    check_settings(settings)


def main(argv: list[str] | None = None, *, run_worker: WorkerRunner = _run_worker,
         preflight: Callable[[Settings], None] = _preflight) -> int:
    from agentfleet.ops.aws import client, read_ssm_parameter
    from agentfleet.serve.boot.neuron_monitor import NeuronMonitor
    from agentfleet.spec import settings as settings_mod

    logs.configure()
    settings = settings_mod.resolve(ssm_get=read_ssm_parameter)
    metrics = make_metrics(settings)
    health = HealthServer(port=settings.http_port).start()
    imds = instance.InstanceMetadata()
    asg = client("autoscaling") if settings.asg_name else None
    try:
        preflight(settings)
        deps = make_deps(settings, metrics)
    except Exception as exc:
        log.error("configuration cannot boot; abandoning this instance", extra={"reason": str(exc)})
        metrics.count(metric_names.BOOT_FAILURES, Phase="resolve")
        metrics.flush()
        try:
            signal_launch(settings, imds, asg, "ABANDON")
        except Exception:
            log.exception("could not complete the launch action with ABANDON; the hook timeout will decide")
        health.stop()
        return 1
    booted = boot_and_signal(settings, deps=deps, health=health, imds=imds, asg_client=asg)
    if booted is None:
        health.stop()
        return 1
    target, result = booted
    assert result.backend is not None
    guard = FatalGuard(asg, imds.instance_id(), in_group=bool(settings.asg_name))
    monitor = NeuronMonitor(metrics, on_hardware_error=guard.fail)
    stop_watch = threading.Event()
    if target.engine != "transformers-cpu":
        monitor.start()
        watch_server(result.backend, guard, stop_watch, health=health)
    try:
        return run_worker(target, result.backend, health, metrics, imds)
    except Exception as exc:
        guard.fail(f"worker crashed: {type(exc).__name__}: {exc}")
        raise
    finally:
        stop_watch.set()
        monitor.stop()
        result.backend.close()
        metrics.flush()
        health.stop()


def watch_server(backend: ModelBackend, guard: FatalGuard, stop: threading.Event, interval_s: float = 5.0,
                 *, health: HealthServer | None = None, none_serving_grace_s: float = 600.0) -> None:
    """A local model server that stops serving is fatal: the worker alone cannot bring it back.

    With replicas (vLLM: `backend.replicas`, which restarts a dead replica itself) the instance is unhealthy
    only while NO replica serves: /ping answers 503 at once, and SetInstanceHealth Unhealthy follows when
    none has served for none_serving_grace_s (a cache-only restart reloads the weights, minutes for 8B).
    A single server without a supervisor (`backend.server`) is fatal as soon as it exits."""
    replicas = getattr(backend, "replicas", None)
    server = getattr(backend, "server", None)
    if replicas is not None and hasattr(replicas, "serving"):
        _watch_replicas(replicas, guard, stop, interval_s, health, none_serving_grace_s)
        return
    if server is None or not hasattr(server, "alive"):
        return

    def watch() -> None:
        while not stop.wait(interval_s):
            if not server.alive():
                guard.fail(f"model server exited with code {server.process.returncode} while serving")
                return

    threading.Thread(target=watch, name="model-server-watch", daemon=True).start()


def _watch_replicas(replicas: Any, guard: FatalGuard, stop: threading.Event, interval_s: float,
                    health: HealthServer | None, grace_s: float) -> None:
    def watch() -> None:
        down_since: float | None = None
        marked = False  # this watcher set /ping unhealthy (and may set it back)
        while not stop.wait(interval_s):
            if replicas.serving():
                if marked and health is not None and health.state == "unhealthy":
                    health.set_state("healthy")
                down_since, marked = None, False
                continue
            if down_since is None:
                down_since = time.monotonic()
                log.error("no model replica serves", extra={"replicas": replicas.count})
                if health is not None and health.state == "healthy":
                    health.set_state("unhealthy")
                    marked = True
            if time.monotonic() - down_since >= grace_s:
                guard.fail(f"no model replica of {replicas.count} has served for {grace_s:.0f} s")
                return

    threading.Thread(target=watch, name="model-replicas-watch", daemon=True).start()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
