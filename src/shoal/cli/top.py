"""`shoal top pods` and `shoal top nodes`: CPU, memory and pids as the node agents measure them.

Mounted by `shoal.cli.main` as the `top` verb group. The figures come from the API server's
usage routes (`shoal.server.pods_routes`), which ask each node's agent: cgroup counters for
sandboxed pods, the process group for plain ones. CPU is the mean over the time since the
agent's previous reading (at least half a second; `windowSeconds` in `-o json`).

Columns (pods): CPU(cores) in millicores; CPU% and MEMORY% of the pod's limit ("-" without
one); PIDS as "used/limit". Nodes: CPU% and MEMORY% of what the node has, and REQUESTS, what
the scheduler counts against its allocatable (the pods' requests, or their limits where they
request nothing). A node whose agent cannot be asked is shown as <unknown> and named on stderr.
The table functions are pure and unit-tested.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from shoal.cli.context import AllNamespacesOption, NamespaceOption, ServerOption, connect, target
from shoal.cli.output import dump_json, render_table

UNKNOWN = "<unknown>"
NONE = "-"
MIB = 1024 * 1024

top_app = typer.Typer(
    help="Show CPU, memory and pids of pods or nodes (measured by the node agents).",
    no_args_is_help=True,
)

SortOption = Annotated[
    str | None,
    typer.Option("--sort-by", help="Sort by 'cpu' or 'memory' (highest first)"),
]
OutputJsonOption = Annotated[
    str | None, typer.Option("--output", "-o", help="'json' for the raw usage documents")
]


def millicores(value: int | None) -> str:
    return NONE if value is None else f"{value}m"


def mebibytes(value: int | None) -> str:
    if value is None:
        return NONE
    if value >= 10 * 1024 * MIB:
        return f"{value / (1024 * MIB):.1f}Gi"
    return f"{round(value / MIB)}Mi"


def share(used: int | None, whole: int | None) -> str:
    """`used` as a percentage of `whole`; "-" when either is unknown or `whole` is zero."""
    if used is None or not whole:
        return NONE
    percent = 100 * used / whole
    return f"{percent:.1f}%" if percent < 10 else f"{percent:.0f}%"


def pod_rows(
    items: list[dict[str, Any]], with_namespace: bool, sort_by: str | None
) -> list[list[str]]:
    """Table rows of `shoal top pods` from PodUsage documents."""

    def key(item: dict[str, Any]) -> tuple[Any, ...]:
        usage = item["usage"]
        meta = item["metadata"]
        if sort_by == "cpu":
            return (-(usage.get("cpuMillis") or 0), meta["namespace"], meta["name"])
        if sort_by == "memory":
            return (-(usage.get("memoryBytes") or 0), meta["namespace"], meta["name"])
        return (meta["namespace"], meta["name"])

    rows = []
    for item in sorted(items, key=key):
        usage, limits = item["usage"], item["limits"]
        pids = str(usage.get("pids", 0))
        if limits.get("pids"):
            pids += f"/{limits['pids']}"
        row = [
            item["metadata"]["name"],
            millicores(usage.get("cpuMillis")),
            share(usage.get("cpuMillis"), limits.get("cpuMillis")),
            mebibytes(usage.get("memoryBytes")),
            share(usage.get("memoryBytes"), limits.get("memoryBytes")),
            pids,
        ]
        rows.append([item["metadata"]["namespace"], *row] if with_namespace else row)
    return rows


def pod_headers(with_namespace: bool) -> list[str]:
    headers = ["NAME", "CPU(cores)", "CPU%", "MEMORY", "MEMORY%", "PIDS"]
    return ["NAMESPACE", *headers] if with_namespace else headers


NODE_HEADERS = ["NAME", "CPU(cores)", "CPU%", "MEMORY", "MEMORY%", "PODS", "REQUESTS"]


def node_rows(items: list[dict[str, Any]]) -> list[list[str]]:
    """Table rows of `shoal top nodes` from NodeUsage documents."""
    rows = []
    for item in sorted(items, key=lambda item: item["metadata"]["name"]):
        usage, allocatable, requested = item["usage"], item["allocatable"], item["requested"]
        cpu_requests = requested["cpuMillis"]
        memory_requests = requested["memoryBytes"]
        requests = (
            f"cpu {millicores(cpu_requests)} ({share(cpu_requests, allocatable['cpuMillis'])}), "
            f"memory {mebibytes(memory_requests)} "
            f"({share(memory_requests, allocatable['memoryBytes'])})"
        )
        pods = f"{requested['pods']}/{allocatable['pods']}"
        if usage is None:
            rows.append(
                [item["metadata"]["name"], UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN, pods, requests]
            )
            continue
        cpus = usage.get("cpus") or 1
        rows.append(
            [
                item["metadata"]["name"],
                millicores(usage.get("cpuMillis")),
                share(usage.get("cpuMillis"), cpus * 1000),
                mebibytes(usage.get("memoryBytes")),
                share(usage.get("memoryBytes"), usage.get("memoryTotalBytes")),
                pods,
                requests,
            ]
        )
    return rows


def _check_sort(sort_by: str | None) -> None:
    if sort_by not in (None, "cpu", "memory"):
        raise typer.BadParameter("use 'cpu' or 'memory'", param_hint="'--sort-by'")


def _check_output(output: str | None) -> None:
    if output not in (None, "json"):
        raise typer.BadParameter("only 'json' is supported", param_hint="'--output' / '-o'")


@top_app.command("pods")
def top_pods(
    *,
    namespace: NamespaceOption = None,
    all_namespaces: AllNamespacesOption = False,
    selector: Annotated[
        str | None, typer.Option("--selector", "-l", help="Label selector, e.g. app=web")
    ] = None,
    sort_by: SortOption = None,
    output: OutputJsonOption = None,
    server: ServerOption = None,
) -> None:
    """CPU, memory and pids of running pods."""
    _check_sort(sort_by)
    _check_output(output)
    where = target(server, namespace)
    path = (
        "/api/v1/podusage" if all_namespaces else f"/api/v1/namespaces/{where.namespace}/podusage"
    )
    params = {"labelSelector": selector} if selector else None
    with connect(where) as client:
        answer = client.request_json("GET", path, params=params)
    for problem in answer.get("errors", []):
        typer.echo(f"warning: node {problem['node']}: {problem['message']}", err=True)
    if output == "json":
        typer.echo(dump_json(answer))
        return
    items = answer.get("items", [])
    if not items:
        scope = "any namespace" if all_namespaces else f"the {where.namespace} namespace"
        typer.echo(f"No running pods in {scope}.", err=True)
        return
    typer.echo(render_table(pod_headers(all_namespaces), pod_rows(items, all_namespaces, sort_by)))


@top_app.command("nodes")
def top_nodes(
    name: Annotated[str | None, typer.Argument(help="Only this node")] = None,
    *,
    output: OutputJsonOption = None,
    server: ServerOption = None,
) -> None:
    """CPU and memory of nodes, and what their pods request of them."""
    _check_output(output)
    where = target(server)
    with connect(where) as client:
        if name is None:
            items = client.request_json("GET", "/api/v1/nodeusage").get("items", [])
        else:
            items = [client.request_json("GET", f"/api/v1/nodes/{name}/usage")]
    for item in items:
        if item.get("error"):
            typer.echo(f"warning: node {item['metadata']['name']}: {item['error']}", err=True)
    if output == "json":
        typer.echo(dump_json({"kind": "NodeUsageList", "items": items}))
        return
    if not items:
        typer.echo("No nodes registered.", err=True)
        return
    typer.echo(render_table(NODE_HEADERS, node_rows(items)))
