"""endpoints: a Service's status lists its pods per node, ready when Envoy confirmed them."""

from __future__ import annotations

from shoal.agent.endpoints import merged, node_endpoints
from shoal.agent.routing import Membership, Placement
from shoal.api.pod import Pod
from shoal.api.service import Service, ServiceEndpoint


def pod(name: str, node: str = "n1", phase: str = "Running", app: str = "web") -> Pod:
    p: Pod = Pod.new(name, spec={"command": ["serve"], "nodeName": node})
    p.metadata.uid, p.metadata.labels = f"uid-{name}", {"app": app}
    p.status.phase = phase  # type: ignore[assignment]
    p.status.host_ports, p.status.host_port = {"http": 20000 + len(name)}, 20000 + len(name)
    return p


SERVICE = Service.new("web", spec={"selector": {"app": "web"}, "port": 8080, "targetPort": "http"})


def test_this_nodes_running_selected_pods_ready_when_envoy_serves_them() -> None:
    pods = [pod("a"), pod("bb"), pod("c", node="n2"), pod("d", phase="Pending"), pod("e", app="db")]
    confirmed: Membership = {
        "uid-a": (Placement("default.web.all", "10.0.0.1", 20001, "serving"),),
        "uid-bb": (Placement("default.web.all", "10.0.0.1", 20002, "draining"),),
    }
    assert node_endpoints(SERVICE, pods, "n1", "10.0.0.1", confirmed) == [
        ServiceEndpoint(pod="a", node="n1", ip="10.0.0.1", port=20001, ready=True),
        ServiceEndpoint(pod="bb", node="n1", ip="10.0.0.1", port=20002, ready=False),
    ]


def test_merging_keeps_the_other_nodes_entries() -> None:
    theirs = ServiceEndpoint(pod="x", node="n2", ip="10.0.0.2", port=1, ready=True)
    old = ServiceEndpoint(pod="gone", node="n1", ip="10.0.0.1", port=2, ready=True)
    mine = ServiceEndpoint(pod="a", node="n1", ip="10.0.0.1", port=3, ready=False)
    assert merged([theirs, old], "n1", [mine]) == [mine, theirs]
