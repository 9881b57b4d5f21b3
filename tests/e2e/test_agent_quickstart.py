"""`make run`'s code path: the quickstart starts shoal with embedded defaults, applies the shop,
and serves its frontend through Envoy within 60 s; `shoal get pods` shows the pods Running and
ready; Ctrl-C (SIGTERM here) stops everything. Run on free ports (`--port-base`) instead of
8080-8082 and 7070, so that it never collides with a `make run` on this machine."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from agent_harness import free_port, kill_leftovers, wait_for

from shoal.agent.ports import can_bind

pytestmark = pytest.mark.e2e

SERVES_WITHIN_SECONDS = 60.0


def free_port_base(count: int = 3) -> int:
    """A port N with N .. N+count-1 all free (the shop's three Service ports)."""
    for _ in range(200):
        base = random.randint(30000, 32000)
        if all(can_bind("127.0.0.1", base + offset) for offset in range(count)):
            return base
    raise RuntimeError("no free range of ports for the shop")


def test_quickstart_serves_the_shop_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    data_dir, api, base = tmp_path / "shoal", f"127.0.0.1:{free_port()}", free_port_base()
    command = [
        sys.executable, "-m", "shoal.cli.quickstart",
        "--data-dir", str(data_dir), "--listen", api, "--port-base", str(base),
    ]  # fmt: skip
    began = time.monotonic()
    quickstart = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    lines: list[str] = []
    running = threading.Event()

    def read() -> None:
        assert quickstart.stdout is not None
        for raw in quickstart.stdout:
            lines.append(raw.decode(errors="replace"))
            if "shoal is running" in lines[-1]:
                running.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert running.wait(SERVES_WITHIN_SECONDS), "".join(lines)
        page = httpx.get(f"http://127.0.0.1:{base}/?user=42", timeout=10)
        assert page.status_code == 200 and "shoal shop" in page.text, page.text
        assert time.monotonic() - began < SERVES_WITHIN_SECONDS
        assert f"http://127.0.0.1:{base}/" in "".join(lines)

        shoal = [sys.executable, "-m", "shoal.cli.main", "--server", f"http://{api}"]
        listing = subprocess.run(
            [*shoal, "get", "pods"], capture_output=True, text=True, timeout=30, check=True
        )
        rows = listing.stdout.strip().splitlines()[1:]
        assert len(rows) == 5, listing.stdout  # catalog 2, orders 1, frontend 2
        for row in rows:
            _name, ready, status = row.split()[:3]
            assert (ready, status) == ("1/1", "Running"), row

        def endpoints() -> dict[str, str]:
            listing = subprocess.run(
                [*shoal, "get", "svc"], capture_output=True, text=True, timeout=30, check=True
            )
            return {r.split()[0]: r.split()[3] for r in listing.stdout.strip().splitlines()[1:]}

        wanted = {"catalog": "2/2", "orders": "1/1", "frontend": "2/2"}
        wait_for("the Services' endpoints", lambda: endpoints() == wanted, timeout=10)
    finally:
        quickstart.send_signal(signal.SIGTERM)  # by pid: Popen signals the child it started
        try:
            code = quickstart.wait(timeout=60)
        except subprocess.TimeoutExpired:
            quickstart.kill()
            quickstart.wait(timeout=10)
            raise
        reader.join(timeout=5)
        leaked = kill_leftovers(data_dir)
    assert code == 0, "".join(lines)
    assert leaked == [], f"Ctrl-C left processes running: {leaked}"
