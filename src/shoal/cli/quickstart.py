"""`make run`: shoal's main job with embedded defaults, in one command.

Starts `shoal server` (API, store under the data dir, controllers, embedded agent and Envoy),
applies examples/shop (frontend -> catalog, orders, and the new-checkout toggle), waits until
every Deployment is available, prints what to try next, and serves until Ctrl-C, which stops
every pod and Envoy.

`--port-base N` moves the shop's Service ports (8080, 8081, 8082 by default) to N, N+1, N+2, so
that tests and a second copy can run beside a first one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from shoal.api.deployment import Deployment
from shoal.client import AsyncClient
from shoal.server.main import (
    ListenError,
    configure_logging,
    event_loop_factory,
    serve,
    server_url,
    stop_on_signals,
)

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "shop"
SHOP_PORT = 8080  # the frontend's Service port in examples/shop; the others follow it
AVAILABLE_WITHIN_SECONDS = 60.0
NEXT_STEPS = """
shoal is running: the shop is at http://127.0.0.1:{frontend}/  (API: {url})

Try, in another terminal (`. .venv/bin/activate` first, or use .venv/bin/shoal):
  export SHOAL_SERVER={url}
  shoal get pods -o wide                     # the shop's processes, their pids and ports
  curl -s 127.0.0.1:{catalog}/products            # catalog through its Service (Envoy)
  sed 's/value: v1/value: v2/' examples/shop/shop.yaml | shoal apply -f -
  shoal rollout status deployment/catalog    # live progress; zero failed requests
  shoal rollout undo deployment/catalog      # back to v1
  shoal toggle rollout new-checkout 50       # release the new checkout to half the users
  curl -s '127.0.0.1:{frontend}/?user=42'          # one user's view
  shoal describe deployment catalog          # conditions and events
Ctrl-C stops the server, every pod and Envoy.
"""


def shop_documents(port_base: int = SHOP_PORT) -> list[dict[str, Any]]:
    """examples/shop's manifests, with Service ports moved by `port_base - 8080`."""
    documents: list[dict[str, Any]] = []
    for name in ("shop.yaml", "toggles.yaml"):
        documents += [d for d in yaml.safe_load_all((EXAMPLES / name).read_text()) if d]
    for document in documents:
        if document.get("kind") == "Service":
            document["spec"]["port"] += port_base - SHOP_PORT
    return documents


async def wait_available(client: AsyncClient, seconds: float) -> list[str]:
    """Deployments still not available after `seconds` (empty: all are)."""
    deadline = time.monotonic() + seconds
    while True:
        deployments = (await client.list(Deployment, "default")).items
        waiting = [
            d.metadata.name
            for d in deployments
            if d.status.available_replicas < d.spec.replicas
            or d.status.observed_generation < (d.metadata.generation or 0)
        ]
        if not waiting or time.monotonic() > deadline:
            return waiting
        await asyncio.sleep(0.2)


async def main(data_dir: Path, listen: str, port_base: int = SHOP_PORT) -> int:
    configure_logging(logging.WARNING)
    # Pods inherit PATH: put this virtualenv first so `python -m shop.*` finds the shop.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    url = server_url(listen)
    stop = asyncio.Event()
    stop_on_signals(stop)
    started = asyncio.Event()
    server = asyncio.create_task(serve(data_dir, listen, stop=stop, started=started))
    waiter = asyncio.ensure_future(started.wait())
    await asyncio.wait({server, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if server.done():
        waiter.cancel()
        try:
            server.result()
        except ListenError as error:
            print(f"error: {error}; is shoal already running? (stop it, or pass --listen)")
        return 1
    async with AsyncClient(url) as client:
        for result in await client.apply_all(shop_documents(port_base)):
            print(f"{result.kind.lower()}/{result.name} {result.action}")
        print("waiting for the shop's deployments to become available...", flush=True)
        waiting = await wait_available(client, AVAILABLE_WITHIN_SECONDS)
    if waiting:
        print(f"still not available after 60 s: {', '.join(waiting)} (see `shoal describe`)")
    else:
        ports = {"frontend": port_base, "catalog": port_base + 1}
        print(NEXT_STEPS.format(url=url, **ports), flush=True)
    await server
    return 0


def run() -> None:
    parser = argparse.ArgumentParser(description="Run shoal with the shop example.")
    parser.add_argument("--data-dir", type=Path, default=Path(".shoal"))
    parser.add_argument("--listen", default="127.0.0.1:7070")
    parser.add_argument("--port-base", type=int, default=SHOP_PORT, help="frontend's port")
    args = parser.parse_args()
    with (
        contextlib.suppress(KeyboardInterrupt),
        asyncio.Runner(loop_factory=event_loop_factory()) as runner,
    ):
        sys.exit(runner.run(main(args.data_dir, args.listen, args.port_base)))


if __name__ == "__main__":
    run()
