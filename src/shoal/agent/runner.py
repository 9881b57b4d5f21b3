"""The node agent: makes the pods bound to this node real and keeps Envoy routing to them.

`Agent.run(stop)` is called by `shoal agent` and by `shoal server` (the embedded agent); both
talk to the API only through the client. On start it registers the Node, starts (or re-adopts)
Envoy, waits for its caches, stops processes whose pods no longer exist, and then runs one
`PodWorker` per pod bound here. Every change of Services, Nodes or a Pod a Service selects
(`routing.may_route`) invalidates the routing table, which the data plane recomputes (a pure
function, `routing.build_routing`) and applies.
Nothing is applied to Envoy before every cache is synced: a half-filled cache after a restart
would otherwise withdraw endpoints that are serving.

Shutdown has two flavours: `stop_pods=True` (SIGINT/SIGTERM of the process: every pod is
stopped, then Envoy; nothing is left running) and `stop_pods=False` (the agent steps away and
leaves pods and Envoy serving, as after kill -9; the next agent re-adopts them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from dataclasses import replace
from functools import partial
from pathlib import Path

from shoal.agent.context import AgentContext, DriverChoice
from shoal.agent.dataplane import DataPlane, EnvoyNode
from shoal.agent.drivers.base import TaskHandle
from shoal.agent.endpoints import EndpointsPublisher
from shoal.agent.envoy import EnvoySink, RoutingTable
from shoal.agent.envoy_restarts import EnvoyRestartReporter
from shoal.agent.http import AgentHttp
from shoal.agent.listener_ports import can_listen
from shoal.agent.logs import DEFAULT_KEEP, DEFAULT_MAX_BYTES, rotate_logs
from shoal.agent.node import NodeRegistration
from shoal.agent.node_drivers import node_drivers
from shoal.agent.ports import PortAllocator, can_bind
from shoal.agent.records import PodRecord, PodRecords
from shoal.agent.rollout_routing import RolloutRouting, TrafficReporter
from shoal.agent.routing import (
    Membership,
    ServiceRouteBuilder,
    build_routing,
    may_route,
    node_addresses,
)
from shoal.agent.sandbox.availability import sandbox_available
from shoal.agent.worker import FINALIZER, PodWorker
from shoal.api.deployment import Deployment
from shoal.api.node import Node
from shoal.api.pod import Pod
from shoal.api.service import Service
from shoal.client import AsyncClient
from shoal.controllers.informer import EventKind, Informer
from shoal.events import EventRecorder

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0
LOG_CHECK_SECONDS = 10.0  # how often pods' log sizes are looked at for rotation
RESYNC_SECONDS = 300.0
PORT_RETRY_SECONDS = 5.0  # a taken Service port is tried again this often
NODE_SHUTDOWN_GRACE_CAP = 10.0
# Test knob, never for production: "1" stops pods without waiting for Envoy to drain them, so
# the zero-downtime tests can show that they fail without the drain (a test of the test).
SKIP_DRAIN_VARIABLE = "SHOAL_TEST_SKIP_DRAIN"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def agent_settings(data_dir: Path) -> dict[str, int]:
    """Ports that must stay the same across agent restarts (so Envoy can be re-adopted)."""
    path = data_dir / "agent.json"
    try:
        settings: dict[str, int] = json.loads(path.read_text())
        port = settings["envoy_admin_port"]
        if can_bind("127.0.0.1", port) or _listening(port):
            return settings
    except (OSError, ValueError, KeyError, TypeError):
        pass
    settings = {"envoy_admin_port": free_port()}
    path.write_text(json.dumps(settings))
    return settings


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Agent:
    def __init__(
        self,
        client: AsyncClient,
        *,
        server_url: str,
        node_name: str,
        data_dir: Path,
        address: str = "127.0.0.1",
        drain_timeout: float = 30.0,
        drivers: DriverChoice | None = None,
        sink: EnvoySink | None = None,
    ) -> None:
        """`drivers` and `sink` replace the real drivers and Envoy (unit tests pass FakeDriver
        and MemoryEnvoySink; then no Envoy process is started)."""
        self.client = client
        self.node_name = node_name
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        data_dir.chmod(0o755)  # sandboxed pods (other uids) must reach their own dirs below
        settings = agent_settings(data_dir)
        # Swappable: BlueGreen/Canary Deployments split a Service into per-revision clusters
        # and confirm their traffic versions in Node.status.traffic (rollout_routing.py).
        self.deployments: Informer[Deployment] = Informer(
            client, Deployment, resync_seconds=RESYNC_SECONDS
        )
        self.rollouts = RolloutRouting(self.deployments.items, TrafficReporter(client, node_name))
        self.route_builder: ServiceRouteBuilder = self.rollouts.build
        self.envoy: EnvoyNode | None = None
        if sink is None:
            self.envoy = EnvoyNode(
                data_dir / "envoy", node_name=node_name, admin_port=settings["envoy_admin_port"]
            )
            sink = self.envoy.sink
        self.dataplane = DataPlane(
            self.rollouts.confirming(sink),
            source=self.rollouts.tracking(self.compute_routing),
            port_probe=can_listen if self.envoy is not None else None,
            held=self.envoy.listener_addresses() if self.envoy is not None else (),
        )
        self.dataplane.on_ports_taken = self._ports_taken
        self.pods: Informer[Pod] = Informer(client, Pod, resync_seconds=RESYNC_SECONDS)
        self.services: Informer[Service] = Informer(client, Service, resync_seconds=RESYNC_SECONDS)
        self.nodes: Informer[Node] = Informer(client, Node, resync_seconds=RESYNC_SECONDS)
        self.endpoints = EndpointsPublisher(
            client, node=node_name, address=address, services=self.services, pods=self.pods,
            confirmed=lambda: self.dataplane.confirmed,
        )  # fmt: skip
        self.dataplane.on_confirmed = self.endpoints.changed
        self.recorder = EventRecorder(client, "agent", host=node_name)
        self.envoy_restarts: EnvoyRestartReporter | None = None
        if self.envoy is not None:  # re-apply, then an EnvoyRestarted Event and a count
            self.envoy_restarts = EnvoyRestartReporter(
                client, self.recorder, node_name, self.dataplane, self.envoy.supervisor
            )
            self.envoy.on_restart = self.envoy_restarts
        self.sandbox_ok = False
        if drivers is None:
            self.sandbox_ok, sandbox_reason = sandbox_available()
            drivers = node_drivers(
                node_name, data_dir, self.sandbox_ok, sandbox_reason, on_demoted=self._demoted
            )
        self.context = AgentContext(
            client=client,
            node_name=node_name,
            server_url=server_url,
            data_dir=data_dir,
            dataplane=self.dataplane,
            drivers=drivers,
            ports=PortAllocator(),
            records=PodRecords(data_dir / "records"),
            recorder=self.recorder,
            pods=self.pods,
            services=self.services,
            routing_changed=self.routing_changed,
            address=address,
            drain_timeout=drain_timeout,
            drain_before_stop=os.environ.get(SKIP_DRAIN_VARIABLE) != "1",
        )
        self.workers: dict[str, PodWorker] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        # The agent's own API (logs, usage, Envoy stats for analysis): shoal.agent.http.
        self.http = AgentHttp.for_agent(
            node_name=node_name, data_dir=data_dir, address=address, pods=self.pods.get,
            records=self.context.records, drivers=self.context.drivers.drivers,
            envoy_admin_port=settings["envoy_admin_port"] if self.envoy is not None else None,
        )  # fmt: skip
        self.registration = NodeRegistration(
            client, node_name, address=address,
            envoy_admin_port=settings["envoy_admin_port"], agent_port=self.http.port,
            features=["sandbox"] if self.sandbox_ok else [],
        )  # fmt: skip
        self.ready = asyncio.Event()
        self._stopping = False
        self._addresses: dict[str, str] = {}
        self._unscheduled: set[str] = set()  # uids of pods seen without a node
        self._last_versions: dict[str, Pod] = {}  # each pod's version before its next event
        self.log_max_bytes, self.log_keep = DEFAULT_MAX_BYTES, DEFAULT_KEEP
        self.log_check_seconds = LOG_CHECK_SECONDS

    # -- routing --------------------------------------------------------------------------------
    def _demoted(self, uid: str, why: str) -> None:
        """A sandboxed pod yields the CPU after OOM kills (sandbox.demotion): say so on it."""
        worker = self.workers.get(uid)
        if worker is not None:
            message = f"its CPU now runs at idle priority: {why}"
            self.recorder.record(worker.pod, "Warning", "Demoted", message)

    def _ports_taken(self, taken: dict[str, int]) -> None:
        """Services whose port another process holds: say so on each, and try again later."""
        for listener, port in taken.items():
            namespace, _, rest = listener.partition(".")
            service = self.services.get(namespace, rest.removesuffix(".preview"))
            if service is not None:
                self.recorder.record(
                    service, "Warning", "PortInUse",
                    f"port {port} is held by another process; the Service does not listen "
                    f"there until it is free (shoal retries every {PORT_RETRY_SECONDS:g} s)",
                )  # fmt: skip
        asyncio.get_running_loop().call_later(PORT_RETRY_SECONDS, self.dataplane.invalidate)

    def compute_routing(self) -> tuple[RoutingTable, Membership]:
        # This node's own pods are reached on loopback (they may listen on 127.0.0.1 only);
        # other nodes' at their Node.status.address.
        addresses = {**self._addresses, self.node_name: "127.0.0.1"}
        table, membership = build_routing(
            self.services.items(), self.pods.items(), addresses, self.route_builder,
            self.context.locally_ready,
        )  # fmt: skip
        if self.context.address != "127.0.0.1":  # the Services listen on the node's address
            listeners = tuple(replace(lst, address=self.context.address) for lst in table.listeners)
            table = replace(table, listeners=listeners)
        return table, membership

    def routing_changed(self) -> None:
        if self.ready.is_set():
            self.dataplane.invalidate()

    def _on_node(self, _kind: EventKind, _node: Node) -> None:
        addresses = node_addresses(self.nodes.items())
        if addresses != self._addresses:  # heartbeats change nothing that routes
            self._addresses = addresses
            self.routing_changed()

    def _on_deployment(self, _kind: EventKind, deployment: Deployment) -> None:
        switch = self.rollouts.saw(deployment)  # a new traffic version: promote, undo, abort
        if self.ready.is_set():
            self.dataplane.invalidate(urgent=switch)

    # -- pods -----------------------------------------------------------------------------------
    def _on_pod(self, kind: EventKind, pod: Pod) -> None:
        uid = pod.metadata.uid or ""
        before = self._last_versions.pop(uid, None)
        if kind != "DELETED":
            self._last_versions[uid] = pod
        if may_route(self.services.items(), (before, pod)):
            self.routing_changed()
        if pod.spec.node_name is None and kind != "DELETED":
            self._unscheduled.add(pod.metadata.uid or "")
        elif kind == "DELETED" or pod.spec.node_name != self.node_name:
            self._unscheduled.discard(pod.metadata.uid or "")
        if pod.spec.node_name == self.node_name and self.ready.is_set() and not self._stopping:
            self._feed(kind, pod)

    def _feed(self, kind: EventKind, pod: Pod) -> None:
        uid = pod.metadata.uid or ""
        worker = self.workers.get(uid)
        if kind == "DELETED":
            if worker is not None:
                worker.vanish()
            return
        if worker is not None:
            worker.update(pod)
            return
        if (
            pod.metadata.deletion_timestamp is not None
            and FINALIZER not in pod.metadata.finalizers
            and self.context.records.load(uid) is None
        ):
            return  # being deleted before it ever ran here: nothing to stop
        # Seen unbound: the scheduler is about to write PodScheduled; the worker's first write
        # waits for it rather than race it into a 409 Conflict.
        worker = PodWorker(self.context, pod, scheduling=uid in self._unscheduled)
        self._unscheduled.discard(uid)
        self.workers[uid] = worker
        task = asyncio.create_task(worker.run(), name=f"pod-{pod.metadata.name}")
        self.tasks[uid] = task
        task.add_done_callback(partial(self._worker_done, uid))

    def _worker_done(self, uid: str, _task: asyncio.Task[None]) -> None:
        self.workers.pop(uid, None)
        self.tasks.pop(uid, None)

    async def _stop_orphans(self) -> None:
        """Processes recorded here whose pods are gone from the API (deleted while we were
        away): stop them, so nothing runs that nobody asked for."""
        known = {pod.metadata.uid for pod in self.pods.items()}
        for record in self.context.records.all():
            if record.uid not in known:
                log.warning("stopping orphaned process of %s/%s", record.namespace, record.name)
                await self._stop_record(record)

    async def _stop_record(self, record: PodRecord) -> None:
        """Stop a recorded process (re-adopting it first if no worker holds it)."""
        if record.handle is not None:
            driver = self.context.drivers.by_name(record.handle.driver)
            pod = next((p for p in self.pods.items() if p.metadata.uid == record.uid), None)
            grace = pod.spec.termination_grace_period_seconds if pod else 5.0
            try:
                recovered = await driver.recover(record.handle)
                if isinstance(recovered, TaskHandle):
                    await driver.stop(recovered, min(grace, NODE_SHUTDOWN_GRACE_CAP))
            except Exception:  # keep stopping the others
                log.exception("could not stop %s/%s", record.namespace, record.name)
        self.context.records.remove(record.uid)

    # -- life -------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event, *, stop_pods: bool = True) -> None:
        if self.envoy is not None:
            await self.envoy.start()
        await self.http.start()
        self.registration.agent_port = self.http.port
        await self.registration.register()
        self.pods.add_handler(self._on_pod)
        self.services.add_handler(lambda _kind, _service: self.routing_changed())
        self.nodes.add_handler(self._on_node)
        self.deployments.add_handler(self._on_deployment)
        background_stop = asyncio.Event()
        informers = (self.pods, self.services, self.nodes, self.deployments)
        background = [asyncio.create_task(informer.run(background_stop)) for informer in informers]
        background.append(asyncio.create_task(self.dataplane.run(background_stop)))
        background.append(asyncio.create_task(self._heartbeats(background_stop)))
        background.append(asyncio.create_task(self._rotate_logs(background_stop)))
        background.append(asyncio.create_task(self.endpoints.run(background_stop)))
        try:
            for informer in informers:
                await informer.synced.wait()
            self._addresses = node_addresses(self.nodes.items())
            await self._stop_orphans()
            self.ready.set()
            self.routing_changed()
            for pod in self.pods.items():
                if pod.spec.node_name == self.node_name:
                    self._feed("ADDED", pod)
            port = self.registration.envoy_admin_port
            log.info("agent %s ready (envoy admin port %s)", self.node_name, port)
            await stop.wait()
        finally:
            # From here a pod event must not start a worker: it would start the process again
            # right after `_stop_record` stopped it, and nothing would stop that one.
            self._stopping = True
            await self._cancel_workers()
            if stop_pods:
                await asyncio.gather(*map(self._stop_record, self.context.records.all()))
            background_stop.set()
            await asyncio.gather(*background, return_exceptions=True)
            if self.envoy_restarts is not None:
                await self.envoy_restarts.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.recorder.flush(), 2.0)
            if self.envoy is not None and stop_pods:
                await self.envoy.stop()
            elif self.envoy is not None:
                await self.envoy.detach()
            await self.http.stop()

    async def _cancel_workers(self) -> None:
        for task in list(self.tasks.values()):
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)

    async def _rotate_logs(self, stop: asyncio.Event) -> None:
        """Copy-truncate pods' logs that outgrew `log_max_bytes`, in one thread per round."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.log_check_seconds)
            logs = [worker.logs for worker in self.workers.values()]
            await asyncio.to_thread(rotate_logs, logs, self.log_max_bytes, self.log_keep)

    async def _heartbeats(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), HEARTBEAT_SECONDS)
            if stop.is_set():
                return
            try:
                await self.registration.heartbeat()
            except Exception as error:  # server briefly away: try again next beat
                log.debug("heartbeat failed: %s", error)


def default_node_name() -> str:
    return os.environ.get("SHOAL_NODE_NAME") or socket.gethostname().split(".")[0].lower()
