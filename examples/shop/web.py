"""The small HTTP plumbing the shop services share: a JSON/HTML handler base and a runner
that serves on 127.0.0.1:$PORT and exits cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import sys
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

VERSION = os.environ.get("VERSION", "v1")


class Handler(BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1 handler; subclasses implement `route(method, path, body)`."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def route(self, method: str, path: str, body: bytes) -> tuple[int, str, bytes]:
        raise NotImplementedError

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path == "/healthz":
            status, ctype, data = 200, "application/json", b'{"ok": true}'
        else:
            try:
                status, ctype, data = self.route(self.command, self.path, body)
            except Exception as error:  # a demo service answers 502 instead of dying
                status, ctype = 502, "application/json"
                data = json.dumps({"error": str(error)}).encode()
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(data)))
        self.send_header("x-version", VERSION)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _handle  # noqa: N815 - stdlib names


def json_response(status: int, payload: Any) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(payload).encode()


def call_service(name: str, path: str, data: bytes | None = None) -> Any:
    """GET (or POST `data` to) another service through its shoal Service address."""
    base = os.environ[f"SHOAL_SERVICE_{name.upper()}_URL"]
    request = urllib.request.Request(base + path, data=data, method="POST" if data else "GET")
    request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def serve(handler: Callable[..., BaseHTTPRequestHandler]) -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), handler)
    server.daemon_threads = True
    server.serve_forever()
