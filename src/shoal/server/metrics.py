"""Prometheus metrics of the API server, served at /metrics.

Each app gets its own registry (tests build many apps in one process). `MetricsMiddleware`
counts requests and times them per route template (`/api/v1/namespaces/{namespace}/pods`,
never the concrete path, so cardinality stays bounded); watch streams are counted by the
watch code instead of timed, since their duration is the client's choice.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

WATCH_SCOPE_KEY = "shoal.watch"


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "shoal_api_requests_total",
            "API requests by method, route and status code",
            ["method", "route", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "shoal_api_request_duration_seconds",
            "API request latency (watches excluded)",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.watches = Gauge(
            "shoal_api_watches", "Open watch streams by kind", ["kind"], registry=self.registry
        )
        self.watches_started = Counter(
            "shoal_api_watches_started_total",
            "Watch streams opened by kind",
            ["kind"],
            registry=self.registry,
        )


def route_template(scope: Scope) -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "<unmatched>"


class MetricsMiddleware:
    """Pure ASGI middleware (no response buffering, so streams are not held back)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        code = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = route_template(scope)
            method = str(scope.get("method", ""))
            self.metrics.requests.labels(method, route, str(code)).inc()
            if not scope.get(WATCH_SCOPE_KEY):
                elapsed = time.perf_counter() - started
                self.metrics.latency.labels(method, route).observe(elapsed)
