"""The node agent's Envoy layer: desired data-plane state (`RoutingTable`), the file-based xDS
writer, the admin API client and the Envoy process supervisor.

The agent runner uses it as:

    writer = XdsWriter(data_dir / "envoy")
    bootstrap = writer.write_bootstrap(node_id=node, node_cluster="shoal", admin_port=port)
    supervisor = EnvoySupervisor(bootstrap=bootstrap, admin_port=port, ...)
    await supervisor.start()                       # adopts a running Envoy after a restart
    sink = FileEnvoySink(writer, supervisor.admin)  # or MemoryEnvoySink() in unit tests
    await sink.apply(table)                        # on every desired-state change
    ...
    await supervisor.stop()                        # graceful agent shutdown

`sink.apply` (= `apply_and_confirm`) is the make-before-break sequence: each phase of the
writer's plan is written and confirmed by Envoy before the next one is written. The stop path
of an endpoint (drain, then remove) is described in sink.py.
"""

from __future__ import annotations

from shoal.agent.envoy.admin import (
    ClusterStats,
    ConfigRejectedError,
    ConfirmTimeoutError,
    EnvoyAdmin,
    EnvoyConfirmError,
)
from shoal.agent.envoy.config import (
    CANARY_OVERRIDE_HEADER,
    ClusterWeight,
    Destination,
    Endpoint,
    HeaderMatch,
    Mirror,
    OutlierDetection,
    RetryPolicy,
    Route,
    RoutingTable,
    ServiceListener,
    UpstreamCluster,
    canary_routes,
    cluster_name,
    listener_name,
)
from shoal.agent.envoy.sink import EnvoySink, FileEnvoySink, MemoryEnvoySink
from shoal.agent.envoy.supervisor import (
    EnvoyNotFoundError,
    EnvoyStartError,
    EnvoyState,
    EnvoySupervisor,
    find_envoy_binary,
)
from shoal.agent.envoy.writer import AppliedVersions, XdsWriter


async def apply_and_confirm(
    writer: XdsWriter, admin: EnvoyAdmin, table: RoutingTable, timeout_s: float = 5.0
) -> AppliedVersions:
    """Write `table` phase by phase (clusters+endpoints, routes+listeners, removals), waiting
    for Envoy to confirm each phase. Returns every version written (empty when nothing changed).
    Raises ConfigRejectedError / ConfirmTimeoutError; files written so far stay (Envoy
    keeps the last config it accepted, so traffic is unaffected by a rejected file)."""
    return await FileEnvoySink(writer, admin, timeout_s).apply(table)


__all__ = [
    "CANARY_OVERRIDE_HEADER",
    "AppliedVersions",
    "ClusterStats",
    "ClusterWeight",
    "ConfigRejectedError",
    "ConfirmTimeoutError",
    "Destination",
    "Endpoint",
    "EnvoyAdmin",
    "EnvoyConfirmError",
    "EnvoyNotFoundError",
    "EnvoySink",
    "EnvoyStartError",
    "EnvoyState",
    "EnvoySupervisor",
    "FileEnvoySink",
    "HeaderMatch",
    "MemoryEnvoySink",
    "Mirror",
    "OutlierDetection",
    "RetryPolicy",
    "Route",
    "RoutingTable",
    "ServiceListener",
    "UpstreamCluster",
    "XdsWriter",
    "apply_and_confirm",
    "canary_routes",
    "cluster_name",
    "find_envoy_binary",
    "listener_name",
]
