"""The Envoy side of a ParallelRun: the differ Pod's cluster and the Service's mirror.

The deployment controller runs the differ as a Pod carrying the Deployment's labels plus
`shoal.dev/differ` (`shoal.controllers.parallel_run`), so the Services of the Deployment
select it and the agent sees its address among their endpoints. Here (pure):

- `split_differ` takes differ Pods out of a Service's endpoints before any live cluster is
  built: a differ never receives a live request, whatever the strategy or rollout state;
  comparison Pods (`shoal.dev/compare`, the instances the differ replays to) carry none of the
  template's labels, so no Service should select them; one that does anyway (a selector on a
  label they happen to carry) still gets none of them: they serve the differ only;
- `with_mirror` gives them their own cluster `<namespace>.<service>.differ` (so their
  readiness and drain are confirmed like any pod's) and, while the Deployment compares a
  candidate (ParallelRun, traffic `canary` set, not aborted), adds to the Service's listener a
  `Mirror` of `mirrorPercent` of the `methods` (default GET, HEAD; POST only when listed) to
  that cluster. Envoy sends the copies fire-and-forget: the live answer never waits for the
  differ, and a dead differ costs the live path nothing.

Called by `shoal.agent.rollout_routing.RolloutRouting.build`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from shoal.agent.envoy import Mirror, UpstreamCluster, cluster_name
from shoal.agent.routing import PodEndpoint, ServiceRouting
from shoal.api.deployment import Deployment
from shoal.api.service import Service

DIFFER_LABEL = "shoal.dev/differ"  # as shoal.controllers.parallel_run.DIFFER_LABEL
COMPARE_LABEL = "shoal.dev/compare"  # as shoal.controllers.parallel_run.COMPARE_LABEL
DIFFER_REVISION = "differ"  # the revision slot of the differ's cluster name


def split_differ(
    endpoints: Sequence[PodEndpoint],
) -> tuple[list[PodEndpoint], list[PodEndpoint]]:
    """(live endpoints, differ endpoints); comparison Pods are in neither."""
    live = [
        e
        for e in endpoints
        if DIFFER_LABEL not in e.pod.metadata.labels and COMPARE_LABEL not in e.pod.metadata.labels
    ]
    differs = [e for e in endpoints if DIFFER_LABEL in e.pod.metadata.labels]
    return live, differs


def mirroring(deployment: Deployment | None) -> bool:
    """Whether the Deployment's Services mirror to its differ now."""
    if deployment is None or deployment.spec.strategy.type != "ParallelRun":
        return False
    rollout = deployment.status.rollout
    if rollout is None or rollout.aborted:
        return False
    traffic = rollout.traffic
    return traffic.stable is not None and traffic.canary not in (None, traffic.stable)


def with_mirror(
    routing: ServiceRouting,
    service: Service,
    deployment: Deployment | None,
    differs: Sequence[PodEndpoint],
) -> ServiceRouting:
    """`routing` plus the differ cluster and, while comparing, the mirror to it."""
    mirror = mirroring(deployment)
    if not differs and not mirror:
        return routing
    namespace = service.metadata.namespace or "default"
    cluster = cluster_name(namespace, service.metadata.name, DIFFER_REVISION)
    placements = dict(routing.placements)
    for endpoint in differs:
        placements[endpoint.uid] = (endpoint.placement(cluster),)
    clusters = (*routing.clusters, UpstreamCluster(cluster, tuple(e.endpoint() for e in differs)))
    listener = routing.listener
    if mirror and deployment is not None:
        settings = deployment.spec.strategy.parallel_run
        assert settings is not None  # filled in for type ParallelRun
        listener = replace(
            listener,
            mirror=Mirror(
                cluster=cluster,
                percent=settings.mirror_percent,
                methods=tuple(settings.methods),
            ),
        )
    return replace(routing, listener=listener, clusters=clusters, placements=placements)
