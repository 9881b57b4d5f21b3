"""Metric providers: take one measurement of a metric (the I/O half of analysis).

- `envoy`: per-version request statistics from every node's Envoy, read through each node's
  agent API (see `envoy_stats`);
- `web`: GET a URL and take a JSON field (`jsonPath` like `data.result[0].value`), or the
  whole body (a JSON document, else a number, else the text);
- `exec`: run a command without a shell; the result is `{exitCode, output, value}` (`value`:
  the output as a number when it is one). With no condition, exit code 0 is success. The
  command runs on the control plane's host, as the server's user: only people allowed to
  write AnalysisTemplates can run it.

`measure(metric, target)` never raises: a failure is an `Observation` with `error` set, which
the analysis counts against `consecutiveErrorLimit`. Called by the analysis controller.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from shoal.analysis import envoy_stats
from shoal.analysis.run import Observation
from shoal.api.analysis import ExecMetric, Metric, WebMetric

OUTPUT_KEPT = 4096
_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@dataclass(frozen=True, slots=True)
class Target:
    """What an `envoy` measurement reads: the clusters of the judged version, the agent API
    URL of every routing node, and the provider's snapshot from the previous measurement."""

    clusters: tuple[str, ...] = ()
    agents: Mapping[str, str] = field(default_factory=dict)
    previous: dict[str, Any] | None = None
    # Routing nodes that report no agent API port: their share of the traffic cannot be read,
    # and a measurement without it would judge part of the version as the whole.
    unreadable: tuple[str, ...] = ()


def pick(document: Any, path: str | None) -> Any:
    """`document` at a dotted path with [index] parts; KeyError naming the missing part."""
    if not path:
        return document
    current = document
    for match in _PATH_PART.finditer(path):
        name, index = match.groups()
        try:
            current = current[int(index)] if index is not None else current[name]
        except (KeyError, IndexError, TypeError):
            raise KeyError(f"{path}: no {name or '[' + str(index) + ']'} in the answer") from None
    return current


def _as_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text.strip()


async def measure_web(web: WebMetric) -> Observation:
    try:
        async with httpx.AsyncClient(timeout=web.timeout_seconds) as http:
            response = await http.get(web.url, headers=web.headers)
    except httpx.HTTPError as error:
        return Observation(error=f"GET {web.url}: {type(error).__name__}: {error}")
    if response.status_code >= 400:
        return Observation(error=f"GET {web.url} answered HTTP {response.status_code}")
    try:
        return Observation(pick(_as_value(response.text), web.json_path))
    except KeyError as error:
        return Observation(error=str(error.args[0]))


def _number(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:
        return None


async def measure_exec(command: ExecMetric) -> Observation:
    try:
        process = await asyncio.create_subprocess_exec(
            *command.command,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # its own group, so a timeout stops its children too
        )
    except OSError as error:
        return Observation(error=f"cannot run {command.command[0]}: {error}")
    try:
        output, _ = await asyncio.wait_for(process.communicate(), command.timeout_seconds)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        return Observation(
            error=f"{command.command[0]} timed out after {command.timeout_seconds:g}s"
        )
    text = output.decode(errors="replace")[-OUTPUT_KEPT:]
    value = {"exitCode": process.returncode, "output": text.strip(), "value": _number(text)}
    return Observation(value)


async def measure(metric: Metric, target: Target) -> Observation:
    """One measurement of `metric`; failures come back as `Observation(error=...)`."""
    provider = metric.provider
    if provider.web is not None:
        return await measure_web(provider.web)
    if provider.exec is not None:
        return await measure_exec(provider.exec)
    assert provider.envoy is not None
    if not target.clusters:
        return Observation(error="no Service routes to this Deployment: nothing to measure")
    if target.unreadable:
        nodes = ", ".join(target.unreadable)
        return Observation(error=f"node(s) {nodes} route traffic but report no agent API port")
    if not target.agents:
        return Observation(error="no Ready node with an Envoy reports its agent API port")
    try:
        snapshot = await envoy_stats.read_snapshot(target.agents, target.clusters)
    except (httpx.HTTPError, ValueError) as error:
        return Observation(error=f"reading Envoy stats: {type(error).__name__}: {error}")
    return envoy_stats.observe(provider.envoy, snapshot, target.previous)
