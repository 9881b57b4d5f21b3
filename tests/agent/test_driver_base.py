"""Driver data: the pod environment (PORT, PORT_<NAME>, passthrough) and handle persistence."""

from __future__ import annotations

import json
from pathlib import Path

from shoal.agent.drivers.base import (
    ExitStatus,
    ProcessSpec,
    TaskHandle,
    build_environment,
    port_environment,
    port_variable,
)


def test_port_variables() -> None:
    assert port_variable("admin-api") == "PORT_ADMIN_API"
    assert port_environment({"http": 20001, "metrics-v2": 20002}, 20001) == {
        "PORT": "20001",
        "PORT_HTTP": "20001",
        "PORT_METRICS_V2": "20002",
    }
    assert port_environment({"": 20003}, 20003) == {"PORT": "20003"}
    assert port_environment({}, None) == {}


def test_environment_passthrough_and_precedence() -> None:
    spec = ProcessSpec(
        argv=["app"], cwd=Path("."), log_path=Path("log"), pod_uid="u1", pod_name="web-1",
        namespace="shop", env={"MODE": "blue", "PORT": "9999"}, ports={"http": 20001},
        primary_port=20001,
    )  # fmt: skip
    env = build_environment(spec, {"PATH": "/bin", "SECRET_TOKEN": "x", "HOME": "/root"})
    assert env == {
        "PATH": "/bin",
        "HOME": "/root",
        "SHOAL_POD_NAME": "web-1",
        "SHOAL_POD_NAMESPACE": "shop",
        "SHOAL_POD_UID": "u1",
        "PORT": "9999",
        "PORT_HTTP": "20001",
        "MODE": "blue",
    }, "the agent's other variables stay out; the pod's own env wins"


def test_handle_round_trips_through_json() -> None:
    handle = TaskHandle("process", "u1", 123, 123, 1700000000.25, 1700000000.5, {"cgroup": "/x"})
    assert TaskHandle.from_json(json.loads(json.dumps(handle.to_json()))) == handle


def test_exit_status_success() -> None:
    assert ExitStatus(0, None, "Completed", 0, 1).succeeded
    assert not ExitStatus(None, 9, "Error", 0, 1).succeeded
    assert not ExitStatus(None, None, "UnknownExit", 0, 1).succeeded
