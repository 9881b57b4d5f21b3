"""Pure translation of a Pod into what a driver runs: ports to allocate, environment, limits.

Called by the pod worker before each start. Kept free of I/O so the rules (which ports get a
number, which variables a pod sees) are unit-tested directly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from shoal.agent.drivers.base import Limits, ProcessSpec
from shoal.api.pod import Pod, PodSpec
from shoal.api.quantity import parse_bytes, parse_cpu_millis
from shoal.api.service import Service


def port_names_to_allocate(spec: PodSpec) -> list[str]:
    """Ports without a number get one allocated on the node; an unnamed one is called ""."""
    return [port.name or "" for port in spec.ports if port.container_port is None]


def assign_ports(spec: PodSpec, allocated: dict[str, int]) -> tuple[dict[str, int], int | None]:
    """All of a pod's ports by name (fixed and allocated) and its primary port ($PORT)."""
    ports: dict[str, int] = {}
    primary: int | None = None
    for index, port in enumerate(spec.ports):
        name = port.name or ("" if port.container_port is None else f"port{index}")
        number = port.container_port or allocated.get(port.name or "")
        if number is None:
            continue
        ports[name] = number
        if primary is None:
            primary = number
    return ports, primary


def service_variable(name: str) -> str:
    return "SHOAL_SERVICE_" + re.sub(r"[^A-Z0-9_]", "_", name.upper()) + "_URL"


def pod_environment(pod: Pod, services: Iterable[Service], server_url: str) -> dict[str, str]:
    """spec.env plus what shoal tells every pod: its namespace, the server (for the toggle
    SDK) and one URL per Service of its namespace (as Kubernetes' service env variables)."""
    namespace = pod.metadata.namespace or "default"
    env = {"SHOAL_SERVER": server_url, "SHOAL_NAMESPACE": namespace}
    for service in services:
        if service.metadata.namespace == namespace:
            env[service_variable(service.metadata.name)] = f"http://127.0.0.1:{service.spec.port}"
    env.update({var.name: var.value for var in pod.spec.env})
    return env


def pod_limits(spec: PodSpec) -> Limits:
    limits = spec.resources.limits
    request = spec.resources.requests.cpu or limits.cpu  # as the scheduler counts it
    return Limits(
        cpu_millis=parse_cpu_millis(limits.cpu) if limits.cpu else None,
        memory_bytes=parse_bytes(limits.memory) if limits.memory else None,
        pids=limits.pids,
        cpu_request_millis=parse_cpu_millis(request) if request else None,
    )


def owner_name(pod: Pod) -> str:
    """The Deployment a pod belongs to (its ReplicaSet's name minus the template hash)."""
    ref = pod.metadata.controller_ref()
    if ref is None:
        return pod.metadata.name
    hash_label = pod.metadata.labels.get("pod-template-hash")
    if hash_label and ref.name.endswith("-" + hash_label):
        return ref.name[: -len(hash_label) - 1]
    return ref.name


def process_spec(
    pod: Pod,
    *,
    workdir: Path,
    log_path: Path,
    services: Iterable[Service],
    server_url: str,
    ports: dict[str, int],
) -> ProcessSpec:
    """What a driver runs for `pod` with these ports (from `assign_ports`, or a record's)."""
    _, primary = assign_ports(pod.spec, ports)
    return ProcessSpec(
        argv=[*pod.spec.command, *pod.spec.args],
        cwd=Path(pod.spec.working_dir) if pod.spec.working_dir else workdir,
        log_path=log_path,
        pod_uid=pod.metadata.uid or "",
        pod_name=pod.metadata.name,
        namespace=pod.metadata.namespace or "default",
        env=pod_environment(pod, services, server_url),
        ports=ports,
        primary_port=primary,
        limits=pod_limits(pod.spec),
        owner=owner_name(pod),
    )
