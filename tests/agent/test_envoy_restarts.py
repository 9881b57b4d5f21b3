"""Publishing Envoy restarts (shoal.agent.envoy_restarts) against a real API server in this
event loop, with the data plane and the supervisor behind their small protocols: each restart
re-applies the table, then counts in Node.status.envoyRestarts (kept by heartbeats) and is an
EnvoyRestarted Event on the Node that says how Envoy ended and when its config was confirmed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from agent_api import eventually, running_api

from shoal.agent.envoy.supervisor import EnvoyRestart
from shoal.agent.envoy_restarts import EnvoyRestartReporter, restart_message
from shoal.agent.node import NodeRegistration
from shoal.api.event import Event
from shoal.api.node import Node
from shoal.client import AsyncClient
from shoal.events import EventRecorder


@dataclass
class FakeDataPlane:
    syncs: int = 0
    invalidated: int = 0
    synced: asyncio.Event = field(default_factory=asyncio.Event)

    def invalidate(self) -> None:
        self.invalidated += 1

    def confirm(self) -> None:
        """The data plane's sync confirmed by the new Envoy."""
        self.syncs += 1
        self.synced.set()

    async def wait_synced(self, after: int, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while self.syncs <= after:
                    self.synced.clear()
                    await self.synced.wait()
        return self.syncs > after


@dataclass
class FakeSupervisor:
    last_restart: EnvoyRestart | None = None


def restart(count: int, died_at: float) -> EnvoyRestart:
    return EnvoyRestart(count, 100 + count, 200 + count, "killed by SIGKILL", died_at, 0.25)


def test_the_message_says_how_envoy_ended_and_when_its_config_was_confirmed() -> None:
    message = restart_message(restart(1, 0.0), 0.8)
    assert message == (
        "Envoy pid 101 killed by SIGKILL; restarted as pid 201, ready 0.25s and its config "
        "confirmed 0.80s after it was found dead (restart 1 by this agent)"
    )
    assert "not confirmed within 30s" in restart_message(restart(1, 0.0), None)


async def restart_events(client: AsyncClient) -> list[Event]:
    events = (await client.list(Event)).items
    return [e for e in events if e.reason == "EnvoyRestarted" and e.involved_object.kind == "Node"]


async def test_each_restart_is_counted_on_the_node_and_recorded_as_an_event() -> None:
    async with running_api() as client:
        registration = NodeRegistration(client, "n1", address="127.0.0.1", envoy_admin_port=9901)
        await registration.register()
        dataplane, supervisor = FakeDataPlane(), FakeSupervisor()
        recorder = EventRecorder(client, "agent", host="n1")
        reporter = EnvoyRestartReporter(client, recorder, "n1", dataplane, supervisor)

        supervisor.last_restart = restart(1, time.monotonic())
        reporter()
        assert dataplane.invalidated == 1, "the table is re-applied to the new Envoy"
        await asyncio.sleep(0.1)
        node = await client.get(Node, "n1")
        assert node.status.envoy_restarts == 0, "published only once the config is confirmed"
        dataplane.confirm()
        await eventually(lambda: _count(client, 1))
        await recorder.flush()
        (event,) = await restart_events(client)
        assert event.type == "Warning" and event.involved_object.name == "n1"
        assert "Envoy pid 101 killed by SIGKILL; restarted as pid 201" in event.message

        await registration.heartbeat()  # a heartbeat keeps the count
        supervisor.last_restart = restart(2, time.monotonic())
        reporter()
        dataplane.confirm()
        await eventually(lambda: _count(client, 2))
        await recorder.flush()
        assert len(await restart_events(client)) == 2
        await reporter.close()
        await recorder.close()


async def _count(client: AsyncClient, expected: int) -> bool:
    return (await client.get(Node, "n1")).status.envoy_restarts == expected
