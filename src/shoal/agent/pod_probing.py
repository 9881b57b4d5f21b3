"""The probes of one run of a pod's process, as the pod worker sets them up: a `PodProber` over
the pod's startup, readiness and liveness probes, aimed at this run's ports and exec context,
whose attempts take the cheap paths — httpGet and tcpSocket on plain asyncio streams
(`socket_probes`), exec through `probe_checks.check_exec`.

Called by `worker.PodWorker` once per run (a restarted process gets a fresh prober); what the
worker does with the ProbeEvents (kill, ready, not ready) stays in the worker.
"""

from __future__ import annotations

from functools import partial

from shoal.agent.drivers.base import ProcessSpec
from shoal.agent.exec_action import ExecContext
from shoal.agent.probe_checks import CheckResult, ProbeTarget, check_exec, resolve_port
from shoal.agent.probes import PodProber, ProbeCallback
from shoal.agent.socket_probes import http_get, tcp_connect
from shoal.api.pod import Pod, Probe


def run_prober(pod: Pod, spec: ProcessSpec, on_event: ProbeCallback) -> PodProber:
    """The prober of the run started from `spec` (not yet started)."""
    target = ProbeTarget(ExecContext.for_spec(spec), dict(spec.ports))
    return PodProber(
        startup=pod.spec.startup_probe,
        readiness=pod.spec.readiness_probe,
        liveness=pod.spec.liveness_probe,
        target=target,
        on_event=on_event,
        check=partial(check, target),
    )


async def check(target: ProbeTarget, probe: Probe) -> CheckResult:
    """One attempt of `probe` (exactly one handler is set, the API validated that)."""
    action = probe.http_get or probe.tcp_socket
    if action is None:  # exec
        return await check_exec(probe, target)
    port = resolve_port(action.port, target.ports)
    if port is None:
        return CheckResult(False, f"port {action.port!r} is not a port of this pod")
    if probe.http_get is not None:
        return await http_get(probe.http_get, port, probe.timeout_seconds)
    return await tcp_connect(action.host, port, probe.timeout_seconds)
