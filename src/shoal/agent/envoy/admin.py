"""Async client of Envoy's admin API (127.0.0.1 only): is it ready, which config versions has it
applied, were any rejected, how many requests are in flight to a host, and per-cluster request
statistics for canary analysis.

Called by the agent runner (confirm before counting an endpoint in or out, drain before stopping
a pod), by `apply_and_confirm` in this package and later by the analysis `envoy` provider.
Stat names it relies on (measured on Envoy 1.40, see ENVOY-NOTES.md):
`cluster.<c>.version_text` (EDS file), `cluster_manager.cds.version_text`,
`listener_manager.lds.version_text`, `http.<l>.rds.<l>.version_text` (RDS file), each with an
`update_rejected` counter beside it. Envoy gives no rejection reason over admin for file
subscriptions; it logs "config update rejected" followed by the reason, so the reason is taken
from the log file when the caller passes one.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from shoal.agent.envoy.writer import AppliedVersions

_VERSION_FILTER = r"(version_text|update_rejected)$"
# Envoy applies a renamed xDS file within a few ms: look soon, then less often (each look is an
# admin request on the agent's event loop, shared with the API server in `shoal server`).
FIRST_POLLS = (0.001, 0.002, 0.004, 0.008)
_TIMESTAMP = re.compile(r"^\[\d{4}-\d\d-\d\d ")


def poll_delays(interval: float) -> Iterator[float]:
    """The waits between two looks at Envoy's versions: short first, then `interval`."""
    yield from (d for d in FIRST_POLLS if d < interval)
    while True:
        yield interval


class EnvoyConfirmError(Exception):
    """Envoy did not reach the expected config versions."""


class ConfigRejectedError(EnvoyConfirmError):
    def __init__(self, subscription: str, expected: str, reason: str) -> None:
        self.subscription, self.expected, self.reason = subscription, expected, reason
        super().__init__(f"Envoy rejected {subscription} version {expected}: {reason}")


class ConfirmTimeoutError(EnvoyConfirmError):
    pass


@dataclass(frozen=True, slots=True)
class ClusterStats:
    """Cumulative request statistics of one cluster (one version of a service).
    Latencies are milliseconds over the cluster's life, None before the first request; rates
    over a window come from the difference of two snapshots' counters."""

    cluster: str
    rq_total: int
    rq_2xx: int
    rq_4xx: int
    rq_5xx: int
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None

    @property
    def success_rate(self) -> float | None:
        answered = self.rq_2xx + self.rq_4xx + self.rq_5xx
        return None if answered == 0 else 1 - self.rq_5xx / answered


def subscription_keys(versions: AppliedVersions) -> dict[str, str]:
    """Stat prefix of every subscription in `versions` -> expected version."""
    keys: dict[str, str] = {}
    if versions.cds is not None:
        keys["cluster_manager.cds"] = versions.cds
    if versions.lds is not None:
        keys["listener_manager.lds"] = versions.lds
    for cluster, version in versions.eds.items():
        keys[f"cluster.{cluster}"] = version
    for route, version in versions.rds.items():
        keys[f"http.{route}.rds.{route}"] = version
    return keys


def _reached(reported: str | None, expected: str) -> bool:
    """Versions are monotonic integers: a later version also confirms an earlier one."""
    if reported is None:
        return False
    try:
        return int(reported) >= int(expected)
    except ValueError:
        return reported == expected


def last_rejection_reason(log_path: Path, max_bytes: int = 256_000) -> str | None:
    """The reason of the last 'config update rejected' entry of Envoy's log, if any."""
    try:
        with log_path.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - max_bytes))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    starts = [i for i, line in enumerate(lines) if "update rejected" in line]
    if not starts:
        return None
    block = [lines[starts[-1]]]
    for line in lines[starts[-1] + 1 :]:
        if _TIMESTAMP.match(line):
            break
        block.append(line)
    # The entry is "...rejected: <hint> <resource dump> : <reason>"; the reason is last.
    tail = [line.strip() for line in block if line.strip()]
    return tail[-1].lstrip(": ")[:1000] if tail else None


class EnvoyAdmin:
    def __init__(self, admin_port: int, *, log_path: Path | None = None) -> None:
        self.base_url = f"http://127.0.0.1:{admin_port}"
        self.log_path = log_path
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=2.0)
        # update_rejected counts seen by the last confirm that succeeded: Envoy had applied
        # every file of it then, so they serve as the next baseline without another request.
        # Counters only grow within one Envoy (one EnvoyAdmin each), so a stale baseline can
        # only make a rejection show sooner, never hide one.
        self._rejected: dict[str, int] | None = None

    @property
    def closed(self) -> bool:
        return self._http.is_closed

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> EnvoyAdmin:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def ready(self) -> bool:
        """True when Envoy answers /ready with LIVE (initialised, listeners up)."""
        try:
            response = await self._http.get("/ready")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def stats(self, filter_regex: str) -> dict[str, Any]:
        """Counters, gauges and text readouts whose name matches the regex: name -> value."""
        response = await self._http.get("/stats", params={"format": "json", "filter": filter_regex})
        response.raise_for_status()
        return {s["name"]: s["value"] for s in response.json()["stats"] if "name" in s}

    async def reported(self) -> tuple[dict[str, str], dict[str, int]]:
        """(version per subscription, update_rejected per subscription) as Envoy reports them."""
        versions: dict[str, str] = {}
        rejected: dict[str, int] = {}
        for name, value in (await self.stats(_VERSION_FILTER)).items():
            prefix, _, stat = name.rpartition(".")
            if stat == "version_text":
                versions[prefix] = str(value)
            else:
                rejected[prefix] = int(value)
        return versions, rejected

    async def rejection_counts(self) -> dict[str, int]:
        """Snapshot to pass to `confirm` as baseline, taken before writing files (the counts
        of the last successful confirm, or asked from Envoy)."""
        if self._rejected is not None:
            return dict(self._rejected)
        return (await self.reported())[1]

    async def confirm(
        self,
        expected: AppliedVersions,
        timeout_s: float = 5.0,
        *,
        baseline: dict[str, int] | None = None,
        interval: float = 0.01,
    ) -> None:
        """Return once Envoy reports every expected version (or a later one), looking after
        1, 2, 4, 8 ms and then every `interval`.
        Raises ConfigRejectedError as soon as a pending subscription's update_rejected counter
        rises above `baseline` (with Envoy's reason from the log), ConfirmTimeoutError otherwise
        (also when the admin API does not answer until the deadline)."""
        self._rejected = None
        delays = poll_delays(interval)
        wanted = subscription_keys(expected)
        deadline = time.monotonic() + timeout_s
        pending = dict(wanted)
        last_error = ""
        while True:
            try:
                versions, rejected = await self.reported()
            except httpx.HTTPError as error:  # Envoy restarting: keep trying until the deadline
                last_error = f"admin API unreachable ({error!r})"
                if time.monotonic() >= deadline:
                    raise ConfirmTimeoutError(
                        f"Envoy did not confirm within {timeout_s:.1f}s: {last_error}"
                    ) from error
                await asyncio.sleep(next(delays))
                continue
            if baseline is None:
                baseline = rejected
            pending = {k: v for k, v in pending.items() if not _reached(versions.get(k), v)}
            if not pending:
                self._rejected = rejected
                return
            for key, version in pending.items():
                if rejected.get(key, 0) > baseline.get(key, 0):
                    reason = self._reason() or "no reason found in Envoy's log"
                    raise ConfigRejectedError(key, version, reason)
            if time.monotonic() >= deadline:
                details = ", ".join(
                    f"{k}: want {v}, has {versions.get(k, 'nothing')}"
                    f" (update_rejected={rejected.get(k, 0)})"
                    for k, v in sorted(pending.items())
                )
                hint = self._reason()
                raise ConfirmTimeoutError(
                    f"Envoy did not confirm within {timeout_s:.1f}s: {details}"
                    + (f"; last rejection in its log: {hint}" if hint else "")
                )
            await asyncio.sleep(next(delays))

    def _reason(self) -> str | None:
        return None if self.log_path is None else last_rejection_reason(self.log_path)

    async def active_requests(self, cluster: str, host: str, port: int) -> int:
        """In-flight requests from Envoy to one endpoint (0 when Envoy no longer knows it)."""
        response = await self._http.get("/clusters")
        response.raise_for_status()
        wanted = f"{cluster}::{host}:{port}::rq_active::"
        for line in response.text.splitlines():
            if line.startswith(wanted):
                return int(line[len(wanted) :])
        return 0

    async def wait_drained(
        self, cluster: str, host: str, port: int, timeout_s: float, interval: float = 0.05
    ) -> bool:
        """Wait until the endpoint has had no request in flight for two polls in a row (a worker
        thread may still be picking it up right after a confirm); False when `timeout_s` ran
        out. Meaningful for an endpoint marked `draining`: a removed one is no longer listed."""
        deadline = time.monotonic() + timeout_s
        zeros = 0
        while zeros < 2:
            zeros = zeros + 1 if await self.active_requests(cluster, host, port) == 0 else 0
            if zeros < 2:
                if time.monotonic() >= deadline:
                    return zeros > 0  # out of time for a second look: the last one counts
                await asyncio.sleep(interval)
        return True

    async def cluster_stats(self, cluster: str) -> ClusterStats:
        escaped = re.escape(cluster)
        pattern = rf"^cluster\.{escaped}\.upstream_rq_(2xx|4xx|5xx|total|time)$"
        response = await self._http.get("/stats", params={"format": "json", "filter": pattern})
        response.raise_for_status()
        counters: dict[str, int] = {}
        quantiles: dict[float, float] = {}
        for entry in response.json()["stats"]:
            if "name" in entry:
                counters[entry["name"].rpartition(".")[2]] = int(entry["value"])
            elif "histograms" in entry:
                quantiles.update(_quantiles(entry["histograms"]))
        return ClusterStats(
            cluster=cluster,
            rq_total=counters.get("upstream_rq_total", 0),
            rq_2xx=counters.get("upstream_rq_2xx", 0),
            rq_4xx=counters.get("upstream_rq_4xx", 0),
            rq_5xx=counters.get("upstream_rq_5xx", 0),
            p50_ms=quantiles.get(50.0),
            p90_ms=quantiles.get(90.0),
            p99_ms=quantiles.get(99.0),
        )


def _quantiles(histograms: dict[str, Any]) -> dict[float, float]:
    supported = [float(q) for q in histograms.get("supported_quantiles", [])]
    out: dict[float, float] = {}
    for histogram in histograms.get("computed_quantiles", []):
        for quantile, value in zip(supported, histogram.get("values", []), strict=False):
            if value.get("cumulative") is not None:
                out[quantile] = float(value["cumulative"])
    return out
