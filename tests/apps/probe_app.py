"""A small, configurable HTTP app that tests and benchmarks run as a pod (stdlib only, so it
also runs inside a sandbox with the system Python).

Listens on 127.0.0.1:$PORT. Behaviour from environment variables:
  VERSION        returned in the body and the `x-version` header (default "v1")
  ERROR_RATE     share of requests answered 500 (0..1, default 0)
  DELAY_MS       added latency per request (default 0)
  RANDOM_FIELD   when "1", each JSON body carries a random `requestId` (parallel-run noise)
  PRICE_ROUNDING "up" rounds the price differently (a real diff for parallel runs)
  READY_AFTER_S  /healthz answers 503 until this many seconds after start (default 0)
  NEVER_READY    when "1", /healthz always answers 503
  IGNORE_SIGTERM when "1", SIGTERM is ignored (tests the SIGKILL escalation)
Paths: /healthz, /version, /price (JSON), /slow?ms=N, anything else -> JSON echo of method+path.
/__requests answers the requests served so far, by method, and how many of them carried
`x-shoal-shadow: 1` (parallel-run replays): {"GET": 3, "POST": 1, "shadow": {"GET": 2}}.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

VERSION = os.environ.get("VERSION", "v1")
ERROR_RATE = float(os.environ.get("ERROR_RATE", "0"))
DELAY_MS = float(os.environ.get("DELAY_MS", "0"))
RANDOM_FIELD = os.environ.get("RANDOM_FIELD") == "1"
PRICE_ROUNDING = os.environ.get("PRICE_ROUNDING", "half")
READY_AT = time.monotonic() + float(os.environ.get("READY_AFTER_S", "0"))
NEVER_READY = os.environ.get("NEVER_READY") == "1"
COUNTS: Counter[str] = Counter()
SHADOW_COUNTS: Counter[str] = Counter()
COUNTS_LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes; with Nagle on, the second waits for the peer's
    # delayed ACK (~40 ms) on a keep-alive connection.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("x-version", VERSION)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        url = urlparse(self.path)
        if url.path == "/healthz":
            ready = not NEVER_READY and time.monotonic() >= READY_AT
            self._send(200 if ready else 503, {"ready": ready, "version": VERSION})
            return
        if url.path == "/__requests":
            with COUNTS_LOCK:
                self._send(200, {**COUNTS, "shadow": dict(SHADOW_COUNTS)})
            return
        with COUNTS_LOCK:
            COUNTS[self.command] += 1
            if self.headers.get("x-shoal-shadow") == "1":
                SHADOW_COUNTS[self.command] += 1
        if DELAY_MS:
            time.sleep(DELAY_MS / 1000)
        if url.path == "/slow":
            time.sleep(float(parse_qs(url.query).get("ms", ["100"])[0]) / 1000)
        if ERROR_RATE and random.random() < ERROR_RATE:
            self._send(500, {"error": "injected", "version": VERSION})
            return
        body: dict[str, Any] = {"version": VERSION, "method": self.command, "path": url.path}
        if url.path == "/price":
            cents = 1999.5
            body["price"] = (int(cents) + 1 if PRICE_ROUNDING == "up" else int(cents)) / 100
        if RANDOM_FIELD:
            body["requestId"] = uuid.uuid4().hex
        self._send(200, body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _handle  # noqa: N815 - stdlib names


def main() -> None:
    if os.environ.get("IGNORE_SIGTERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
