"""Target sources: addresses, the pure pod → address rule, and the pod watcher against an
in-process API server."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from differ_stubs import eventually

from shoal.api.pod import Pod, PodSpec, PodStatus
from shoal.client import AsyncClient
from shoal.differ.http import Address
from shoal.differ.targets import (
    Instance,
    PodTargetWatcher,
    Target,
    address_of,
    all_addresses,
    parse_address,
    pod_address,
    pod_instance,
)


def pod(name: str, labels: dict[str, str], **status: object) -> Pod:
    made: Pod = Pod.new(name, spec=PodSpec(command=["true"]))
    made.metadata.labels = labels
    made.status = PodStatus.model_validate(status)
    return made


def test_parse_address() -> None:
    assert parse_address("127.0.0.1:8001") == ("127.0.0.1", 8001)
    assert parse_address("[::1]:80") == ("::1", 80)
    assert parse_address("0.0.0.0:0", allow_any_port=True) == ("0.0.0.0", 0)
    for bad in ("127.0.0.1", ":80", "h:0", "h:70000", "h:x"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_address(bad)


def test_pod_address_only_for_ready_pods_with_a_port() -> None:
    labels = {"app": "web"}
    assert pod_address(pod("a", labels, ready=True, host_port=8001)) == ("127.0.0.1", 8001)
    assert pod_address(pod("a", labels, ready=True, host_port=8001, host_ip="10.0.0.2")) == (
        "10.0.0.2",
        8001,
    )
    assert pod_address(pod("a", labels, ready=False, host_port=8001)) is None
    assert pod_address(pod("a", labels, ready=True)) is None
    named = pod("a", labels, ready=True, host_port=1, host_ports={"http": 8002})
    assert pod_address(named, "http") == ("127.0.0.1", 8002)
    assert pod_address(named, "grpc") is None
    terminating = pod("a", labels, ready=True, host_port=8001)
    terminating.metadata.deletion_timestamp = datetime.now(UTC)
    assert pod_address(terminating) is None


def test_a_pod_instance_answers_on_every_port_it_names() -> None:
    labels = {"app": "web"}
    found = pod_instance(
        pod("a", labels, ready=True, host_port=8001, host_ports={"http": 8001, "admin": 8002})
    )
    assert found == Instance("127.0.0.1", 8001, (("admin", 8002), ("http", 8001)))
    assert address_of(found, None) == ("127.0.0.1", 8001)
    assert address_of(found, "admin") == ("127.0.0.1", 8002)
    assert address_of(found, "grpc") is None  # the sample is skipped, not sent elsewhere
    assert all_addresses((found,)) == {("127.0.0.1", 8001), ("127.0.0.1", 8002)}
    assert pod_instance(pod("a", labels, ready=False, host_port=8001)) is None
    assert pod_instance(pod("a", labels, ready=True)) is None
    fixed: Address = ("10.0.0.1", 9000)
    assert address_of(fixed, "admin") == fixed  # a fixed address names its port already


async def test_watcher_follows_ready_pods_of_its_selector(api_url: str) -> None:
    seen: list[tuple[Target, ...]] = []
    async with AsyncClient(api_url) as client:
        first = await client.create(pod("web-a", {"app": "web", "rev": "1"}))
        await client.create(pod("web-b", {"app": "web", "rev": "2"}))  # other revision
        watcher = PodTargetWatcher(client, "default", "app=web,rev=1", seen.append)
        task = asyncio.create_task(watcher.run())
        try:
            await eventually(lambda: seen == [()])
            first.status = PodStatus(ready=True, host_port=8101)
            first = await client.update_status(first)
            await eventually(lambda: seen[-1] == (Instance("127.0.0.1", 8101),))
            late = await client.create(pod("web-c", {"app": "web", "rev": "1"}))
            late.status = PodStatus(ready=True, host_port=8100)
            await client.update_status(late)
            await eventually(
                lambda: seen[-1] == (Instance("127.0.0.1", 8100), Instance("127.0.0.1", 8101))
            )
            await client.delete(Pod, "web-a", force=True)
            await eventually(lambda: seen[-1] == (Instance("127.0.0.1", 8100),))
        finally:
            task.cancel()
    assert all(Instance("127.0.0.1", 0) not in found for found in seen)
    assert len(seen) == 4  # one call per change, none for the other revision's pod
