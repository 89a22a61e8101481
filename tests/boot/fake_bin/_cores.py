"""Shared by the fake Neuron executables: who holds which fake NeuronCores ($FAKE_NEURON_STATE/cores.json).

A real server's NeuronCores stay allocated until its processes are gone and the driver released
them; here each holder records its pid, its cores (NEURON_RT_VISIBLE_CORES: one index or an inclusive
range "a-b", aws-neuron-sdk neuron-runtime/guides/configuration-guide.rst; unset = every core) and, when
it exits, the moment its cores become free. Writers take an exclusive lock: replicas start together."""

import fcntl
import json
import os
import time
from contextlib import contextmanager


def _path() -> str:
    return os.path.join(os.environ["FAKE_NEURON_STATE"], "cores.json")


def all_cores() -> list[int]:
    devices, per = int(os.environ.get("FAKE_NEURON_DEVICES", "1")), int(os.environ.get("FAKE_NEURON_CORES_PER_DEVICE", "2"))
    return list(range(devices * per))


def visible_cores() -> list[int]:
    spec = os.environ.get("NEURON_RT_VISIBLE_CORES", "").strip()
    if not spec:
        return all_cores()
    first, _, last = spec.partition("-")
    return list(range(int(first), int(last or first) + 1))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def _locked():
    with open(_path() + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            state = json.load(open(_path())) if os.path.exists(_path()) else {}
        except ValueError:
            state = {}
        yield state
        with open(_path(), "w") as handle:
            json.dump(state, handle)


def _holding(entry: dict) -> bool:
    if _alive(int(entry["pid"])) and not entry.get("free_at"):
        return True
    return bool(entry.get("free_at")) and time.time() < float(entry["free_at"])


def holders(cores: list[int] | None = None) -> list[int]:
    """Pids (or -1 for a released holder not yet freed) holding any of these cores (all when None)."""
    try:
        state = json.load(open(_path()))
    except (FileNotFoundError, ValueError):
        return []
    wanted = set(all_cores() if cores is None else cores)
    return sorted({int(e["pid"]) for e in state.values() if wanted & set(e["cores"]) and _holding(e)})


def holder() -> int | None:
    """A pid holding any of this process's visible cores, or None when they are free."""
    busy = holders(visible_cores())
    return busy[0] if busy else None


def take() -> bool:
    """Claim this process's visible cores atomically; False when someone holds one of them."""
    mine = visible_cores()
    with _locked() as state:
        if any(set(mine) & set(e["cores"]) and _holding(e) for e in state.values()):
            return False
        state[str(os.getpid())] = {"pid": os.getpid(), "cores": mine, "free_at": None}
    return True


def release(after_s: float) -> None:
    with _locked() as state:
        state[str(os.getpid())] = {"pid": os.getpid(), "cores": visible_cores(), "free_at": time.time() + after_s}
