"""`make run`: shoal's main job with embedded defaults, in one command.

Starts `shoal server` (API, store under the data dir, controllers, embedded agent and Envoy),
applies examples/shop (frontend -> catalog, orders, and the new-checkout toggle), waits until
every Deployment is available, prints what to try next, and serves until Ctrl-C, which stops
every pod and Envoy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from pathlib import Path

import yaml

from shoal.api.deployment import Deployment
from shoal.client import AsyncClient
from shoal.server.main import parse_listen, serve

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "shop"
NEXT_STEPS = """
shoal is running: the shop is at http://127.0.0.1:8080/  (API: {url})

Try, in another terminal (`. .venv/bin/activate` first, or use .venv/bin/shoal):
  export SHOAL_SERVER={url}
  shoal get pods -o wide                     # the shop's processes, their pids and ports
  curl -s 127.0.0.1:8081/products            # catalog through its Service (Envoy)
  sed 's/value: v1/value: v2/' examples/shop/shop.yaml | shoal apply -f -
  shoal rollout status deployment/catalog    # live progress; zero failed requests
  shoal rollout undo deployment/catalog      # back to v1
  shoal toggle rollout new-checkout 50       # release the new checkout to half the users
  curl -s '127.0.0.1:8080/?user=42'          # one user's view
  shoal describe deployment catalog          # conditions and events
Ctrl-C stops the server, every pod and Envoy.
"""


async def _wait_available(client: AsyncClient, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
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


async def main(data_dir: Path, listen: str) -> int:
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Pods inherit PATH: put this virtualenv first so `python -m shop.*` finds the shop.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    host, port = parse_listen(listen)
    url = f"http://{host}:{port}"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    started = asyncio.Event()
    server = asyncio.create_task(serve(data_dir, listen, stop=stop, started=started))
    waiter = asyncio.ensure_future(started.wait())
    await asyncio.wait({server, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if server.done():
        server.result()
        return 1
    async with AsyncClient(url) as client:
        documents = []
        for name in ("shop.yaml", "toggles.yaml"):
            documents += [d for d in yaml.safe_load_all((EXAMPLES / name).read_text()) if d]
        for result in await client.apply_all(documents):
            print(f"{result.kind.lower()}/{result.name} {result.action}")
        print("waiting for the shop's deployments to become available...")
        waiting = await _wait_available(client, 60)
    if waiting:
        print(f"still not available after 60 s: {', '.join(waiting)} (see `shoal describe`)")
    else:
        print(NEXT_STEPS.format(url=url))
    await server
    return 0


def run() -> None:
    parser = argparse.ArgumentParser(description="Run shoal with the shop example.")
    parser.add_argument("--data-dir", type=Path, default=Path(".shoal"))
    parser.add_argument("--listen", default="127.0.0.1:7070")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(main(args.data_dir, args.listen)))


if __name__ == "__main__":
    run()
