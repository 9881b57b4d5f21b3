"""What every executor shares: the client, the clock, the event recorder and the informers.

Built once by `shoal.controllers.manager.run_controllers`; handed to each controller.
"""

from __future__ import annotations

from dataclasses import dataclass

from shoal.api.analysis import AnalysisRun, AnalysisTemplate
from shoal.api.deployment import Deployment
from shoal.api.diffreport import DiffReport
from shoal.api.meta import Resource
from shoal.api.node import Node
from shoal.api.pod import Pod
from shoal.api.replicaset import ReplicaSet
from shoal.client import AsyncClient
from shoal.controllers.clock import Clock, SystemClock
from shoal.controllers.informer import Informer
from shoal.events import EventRecorder


@dataclass
class ControllerContext:
    client: AsyncClient
    clock: Clock
    recorder: EventRecorder
    deployments: Informer[Deployment]
    replica_sets: Informer[ReplicaSet]
    pods: Informer[Pod]
    nodes: Informer[Node]
    analysis_runs: Informer[AnalysisRun]
    analysis_templates: Informer[AnalysisTemplate]
    diff_reports: Informer[DiffReport]

    @classmethod
    def create(
        cls, client: AsyncClient, clock: Clock | None = None, resync_seconds: float = 300.0
    ) -> ControllerContext:
        clock = clock or SystemClock()
        return cls(
            client=client,
            clock=clock,
            recorder=EventRecorder(client, "controller-manager"),
            deployments=Informer(client, Deployment, clock=clock, resync_seconds=resync_seconds),
            replica_sets=Informer(client, ReplicaSet, clock=clock, resync_seconds=resync_seconds),
            pods=Informer(client, Pod, clock=clock, resync_seconds=resync_seconds),
            nodes=Informer(client, Node, clock=clock, resync_seconds=resync_seconds),
            analysis_runs=Informer(client, AnalysisRun, clock=clock, resync_seconds=resync_seconds),
            analysis_templates=Informer(
                client, AnalysisTemplate, clock=clock, resync_seconds=resync_seconds
            ),
            diff_reports=Informer(client, DiffReport, clock=clock, resync_seconds=resync_seconds),
        )

    def informer_for(self, kind: str) -> Informer[Resource] | None:
        table: dict[str, Informer[Resource]] = {
            "Deployment": self.deployments,  # type: ignore[dict-item]
            "ReplicaSet": self.replica_sets,  # type: ignore[dict-item]
            "Pod": self.pods,  # type: ignore[dict-item]
            "Node": self.nodes,  # type: ignore[dict-item]
            "AnalysisRun": self.analysis_runs,  # type: ignore[dict-item]
            "AnalysisTemplate": self.analysis_templates,  # type: ignore[dict-item]
            "DiffReport": self.diff_reports,  # type: ignore[dict-item]
        }
        return table.get(kind)

    def all_informers(self) -> list[Informer[Resource]]:
        return [
            i
            for i in (
                self.informer_for(k)
                for k in (
                    "Deployment",
                    "ReplicaSet",
                    "Pod",
                    "Node",
                    "AnalysisRun",
                    "AnalysisTemplate",
                    "DiffReport",
                )
            )
            if i is not None
        ]
