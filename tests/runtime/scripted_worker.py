"""A worker process with the scripted backend (for subprocess tests that control model timing).

Settings come from the environment exactly as for `python -m agentfleet.entrypoints.worker`;
AGENTFLEET_TEST_DELAY (seconds per batch) and AGENTFLEET_TEST_MARKER (file written when a
batch starts) shape the backend.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for tests.runtime

from agentfleet.entrypoints.worker import Worker, exit_code
from agentfleet.ops import logs
from agentfleet.ops.shutdown import StopSignal
from agentfleet.spec.settings import resolve
from tests.runtime.fakes import ScriptedBackend


def main() -> int:
    logs.configure("INFO")
    settings = resolve()
    marker = os.environ.get("AGENTFLEET_TEST_MARKER")
    backend = ScriptedBackend(batch_size=settings.batch_size, delay=float(os.environ.get("AGENTFLEET_TEST_DELAY", "0")),
                              started_marker=Path(marker) if marker else None)
    stop = StopSignal()
    stop.install_signal_handlers()
    worker = Worker(settings, backend, stop=stop)
    return exit_code(worker, worker.run())


if __name__ == "__main__":
    raise SystemExit(main())
