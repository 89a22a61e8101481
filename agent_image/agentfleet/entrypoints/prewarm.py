"""Pre-warm the compile cache: compile one model/shape/compiler and upload it, without serving.

    python -m agentfleet.entrypoints.prewarm [--instance-family trn3] [--engine vllm-neuron] \
        [--model-id ID] [--model-revision REV] [--batch-size N] [--sequence-length N] [--tp N]

Settings come from the usual places (AGENTFLEET_CONFIG document, AGENTFLEET_* environment);
flags override them. Run it once per new model or Neuron SDK, on an instance of the target
family (the same launch template as the fleet, or a one-off task on it), before rolling the
fleet: every instance then boots from the cache instead of compiling for 30-60+ minutes.
If the entry already exists it exits at once; if another instance is compiling it waits for
that result (the same lock as a boot). Exit 0 when the entry exists afterwards, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from agentfleet.entrypoints.boot import check_devices
from agentfleet.ops import instance, logs
from agentfleet.ops.aws import read_ssm_parameter
from agentfleet.serve.boot.engines import create_engine
from agentfleet.serve.boot.load import make_deps, make_metrics, resolve_target
from agentfleet.serve.boot.sequence import Boot, BootError

log = logs.get(__name__)

_FLAGS = {
    "instance_family": "--instance-family", "engine": "--engine", "model_id": "--model-id",
    "model_revision": "--model-revision", "batch_size": "--batch-size", "sequence_length": "--sequence-length",
    "tensor_parallel_degree": "--tp",
}


def parse_args(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m agentfleet.entrypoints.prewarm", description=__doc__.split("\n")[0])
    for name, flag in _FLAGS.items():
        parser.add_argument(flag, dest=name, type=int if name in ("batch_size", "sequence_length",
                                                                   "tensor_parallel_degree") else str)
    return {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not None}


def main(argv: list[str] | None = None) -> int:
    from agentfleet.spec import settings as settings_mod
    logs.configure()
    settings = settings_mod.resolve(explicit=parse_args(sys.argv[1:] if argv is None else argv),
                                   ssm_get=read_ssm_parameter)
    metrics = make_metrics(settings)
    deps = make_deps(settings, metrics)
    imds = instance.InstanceMetadata()
    try:
        target = resolve_target(settings, imds)
        check_devices(target)  # a compile on a broken device would publish nothing useful
        engine = create_engine(target, target.instance_family)
        try:
            result = Boot(target, engine, target.instance_family, deps,
                          owner=f"prewarm-{imds.instance_id() or settings.worker_id}").prepare()
        finally:
            engine.release()  # nothing serves here: stop the compile server and wait for its cores
    except (BootError, ValueError) as exc:
        log.error("pre-warm failed", extra={"reason": str(exc)})
        return 1
    finally:
        metrics.flush()
    log.info("pre-warm done", extra={"cache_key": result.key, "already_cached": result.cache_hit,
                                     "compiled": result.compiled, "published": result.published})
    return 0 if (result.cache_hit or result.published) else 1


if __name__ == "__main__":
    sys.exit(main())
