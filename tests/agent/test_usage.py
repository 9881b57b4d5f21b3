"""Pod usage: the CPU rate (pure), the sampler's window, and real readings of a plain pod's
process group through the ProcessDriver (a real `sleep`, stopped by the driver)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from shoal.agent.drivers.base import ProcessSpec, TaskHandle
from shoal.agent.drivers.process import ProcessDriver
from shoal.agent.records import PodRecord, PodRecords
from shoal.agent.usage import (
    PodReading,
    Reading,
    UsageSampler,
    cpu_millis,
    group_usage,
    read_usage,
    usage_document,
)


def test_cpu_rate() -> None:
    assert cpu_millis(None, 10**9, 1.0) is None  # no earlier reading
    assert cpu_millis(0, 10**9, 0.0) is None  # no time passed
    assert cpu_millis(0, 10**9, 2.0) == 500
    assert cpu_millis(3 * 10**9, 10**9, 1.0) == 0  # a member left with its CPU time


async def test_sampler_waits_the_minimum_window_once_then_reuses_the_last_reading() -> None:
    calls = 0

    async def read() -> Reading:
        nonlocal calls
        calls += 1
        return Reading(asyncio.get_running_loop().time(), calls * 10**6)

    sampler = UsageSampler(read, min_window=0.05)
    earlier, now = await sampler.measure()
    assert calls == 2 and now.at - earlier.at >= 0.05
    earlier_again, _ = await sampler.measure()
    assert earlier_again == now  # the previous call's reading starts the next window
    assert calls == 3


def test_document_filters_by_namespace_and_has_no_rate_for_new_pods() -> None:
    web = PodReading("u1", "shop", "web", "sandbox", 10**9, 100, 2)
    new = PodReading("u2", "shop", "new", "process", 10**8, 50, 1)
    other = PodReading("u3", "other", "x", "process", 0, 1, 1)
    earlier = Reading(0.0, 0, {"u1": PodReading("u1", "shop", "web", "sandbox", 0, 90, 2)})
    now = Reading(1.0, 2 * 10**9, {"u1": web, "u2": new, "u3": other})
    document = usage_document("n", earlier, now, "shop")
    assert document["cpuMillis"] == 2000
    assert [(p["name"], p["cpuMillis"]) for p in document["pods"]] == [("new", None), ("web", 1000)]
    assert len(usage_document("n", earlier, now)["pods"]) == 3


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
async def test_plain_pods_are_read_over_their_process_group(tmp_path: Path) -> None:
    driver = ProcessDriver()
    spec = ProcessSpec(
        argv=["sh", "-c", "sleep 30 & sleep 30 & wait"],
        cwd=tmp_path,
        log_path=tmp_path / "log",
        pod_uid="u1",
        pod_name="web",
    )
    handle = await driver.start(spec)
    assert isinstance(handle, TaskHandle)
    records = PodRecords(tmp_path / "records")
    records.save(PodRecord("u1", "default", "web", handle=handle))
    records.save(PodRecord("u2", "default", "not-started"))
    try:
        for _ in range(500):  # the shell starts its two children
            if group_usage({handle.pgid}).get(handle.pgid, (0, 0, 0))[2] == 3:
                break
            await asyncio.sleep(0.02)
        reading = read_usage(records, {"process": driver})
        [pod] = reading.pods.values()
        assert (pod.uid, pod.driver) == ("u1", "process")
        assert pod.pids == 3 and pod.memory_bytes > 0
    finally:
        await driver.stop(handle, 5)
