"""One `shoal server` for the length of a benchmark run; used by bench_zero_downtime.py,
bench_control_plane.py and bench_parallel_run.py.

`running_server()` starts a server over a temporary data dir and, however the run ends, stops
it gracefully and kills by pid whatever it left running. A leak is printed, not raised: the
figures already printed stay worth reading, and an exception from the run is not hidden.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

from agent_harness import ShoalServer, kill_leftovers


@contextlib.contextmanager
def running_server() -> Iterator[ShoalServer]:
    with tempfile.TemporaryDirectory(prefix="shoal-bench-") as temp:
        server = ShoalServer(Path(temp))
        try:
            server.start()
            yield server
        finally:
            server.close()
            if server.running():
                server.stop()
            leaked = kill_leftovers(server)
            if leaked:
                print(f"LEAKED (killed now): {leaked}")
