"""podprocess: what a pod's process gets (ports to allocate, $PORT, environment, limits, owner),
as pure functions of the Pod."""

from __future__ import annotations

from shoal.agent.drivers.base import Limits
from shoal.agent.podprocess import (
    assign_ports,
    owner_name,
    pod_environment,
    pod_limits,
    port_names_to_allocate,
    service_variable,
)
from shoal.api.meta import OwnerReference
from shoal.api.pod import Pod
from shoal.api.service import Service


def pod(**spec: object) -> Pod:
    p: Pod = Pod.new("web-abc-1", spec={"command": ["serve"], **spec})
    return p


def test_only_ports_without_a_number_are_allocated_unnamed_one_as_empty_name() -> None:
    spec = pod(ports=[{"name": "http"}, {"containerPort": 9000}, {}]).spec
    assert port_names_to_allocate(spec) == ["http", ""]


def test_assign_ports_names_fixed_ones_and_the_first_port_is_primary() -> None:
    spec = pod(ports=[{"containerPort": 9000}, {"name": "http"}, {"name": "admin"}]).spec
    ports, primary = assign_ports(spec, {"http": 20001, "admin": 20002})
    assert ports == {"port0": 9000, "http": 20001, "admin": 20002}
    assert primary == 9000


def test_assign_ports_without_ports_has_no_primary() -> None:
    assert assign_ports(pod().spec, {}) == ({}, None)


def test_service_variables_are_upper_snake_case() -> None:
    assert service_variable("catalog") == "SHOAL_SERVICE_CATALOG_URL"
    assert service_variable("new-checkout.v2") == "SHOAL_SERVICE_NEW_CHECKOUT_V2_URL"


def test_environment_has_server_namespace_own_services_and_spec_env_wins() -> None:
    mine = Service.new("catalog", spec={"selector": {"app": "c"}, "port": 8081})
    elsewhere = Service.new("orders", "other", spec={"selector": {"app": "o"}, "port": 8082})
    p = pod(env=[{"name": "SHOAL_SERVICE_CATALOG_URL", "value": "http://override"}, {"name": "A"}])
    env = pod_environment(p, [mine, elsewhere], "http://127.0.0.1:7070")
    assert env == {
        "SHOAL_SERVER": "http://127.0.0.1:7070",
        "SHOAL_NAMESPACE": "default",
        "SHOAL_SERVICE_CATALOG_URL": "http://override",
        "A": "",
    }


def test_limits_are_parsed_from_quantities() -> None:
    p = pod(resources={"limits": {"cpu": "250m", "memory": "64Mi", "pids": 50}})
    assert pod_limits(p.spec) == Limits(
        cpu_millis=250, memory_bytes=64 * 1024**2, pids=50, cpu_request_millis=250
    )
    assert pod_limits(pod().spec) == Limits()
    asked = pod(resources={"requests": {"cpu": "100m"}, "limits": {"cpu": "2"}})
    assert pod_limits(asked.spec) == Limits(cpu_millis=2000, cpu_request_millis=100)


def test_owner_name_is_the_deployment_behind_the_replica_set() -> None:
    p = pod()
    assert owner_name(p) == "web-abc-1", "no owner: the pod itself"
    p.metadata.owner_references = [
        OwnerReference(kind="ReplicaSet", name="web-abc", uid="u1", controller=True)
    ]
    assert owner_name(p) == "web-abc", "no template hash label: the ReplicaSet"
    p.metadata.labels = {"pod-template-hash": "abc"}
    assert owner_name(p) == "web"
