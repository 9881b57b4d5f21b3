"""A tiny keep-alive HTTP/1.1 upstream for the Envoy tests, run as a subprocess:
`python upstream_app.py PORT NAME`. Answers every request with its NAME as body; `GET /__count`
answers how many other requests it received (per method, and how many carried
`x-shoal-shadow: 1`, JSON), so a test can see mirrored
copies arrive. Header `x-delay-ms` delays the answer (in-flight requests for drain tests).
Exits at once on SIGTERM (like an app without graceful shutdown): connections it holds are cut.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter

COUNTS: Counter[str] = Counter()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: bytes) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    key, _, value = line.partition(":")
                    headers[key.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if length:
                await reader.readexactly(length)
            if path == "/__count":
                body = json.dumps(COUNTS).encode()
            else:
                COUNTS[method] += 1
                if headers.get("x-shoal-shadow") == "1":
                    COUNTS["shadow-header"] += 1
                delay = float(headers.get("x-delay-ms", "0")) / 1000
                if delay:
                    await asyncio.sleep(delay)
                body = name
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def main(port: int, name: str) -> None:
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, name.encode()), "127.0.0.1", port, backlog=1024
    )
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
