"""Shared by the fake Neuron executables: who holds the fake NeuronCores ($FAKE_NEURON_STATE/cores.json).

A real server's NeuronCores stay allocated until its processes are gone and the driver released
them; here the holder records its pid and, when it exits, the moment its cores become free."""

import json
import os
import time


def _path() -> str:
    return os.path.join(os.environ["FAKE_NEURON_STATE"], "cores.json")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holder() -> int | None:
    """The pid holding the cores, or None when they are free."""
    try:
        with open(_path()) as handle:
            state = json.load(handle)
    except FileNotFoundError:
        return None
    pid = state.get("pid")
    if pid and _alive(int(pid)):
        return int(pid)
    if state.get("free_at") and time.time() < float(state["free_at"]):
        return int(pid or 0) or -1
    return None


def take() -> None:
    with open(_path(), "w") as handle:
        json.dump({"pid": os.getpid(), "free_at": None}, handle)


def release(after_s: float) -> None:
    with open(_path(), "w") as handle:
        json.dump({"pid": os.getpid(), "free_at": time.time() + after_s}, handle)
