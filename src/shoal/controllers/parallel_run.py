"""ParallelRun's side effects: the differ Pod and the DiffReport of a Deployment's candidate.

Called by the progressive glue (`shoal.controllers.rollouts`): `observed_report` for the pure
gate, `sync` after each reconcile. Both are level-triggered on the *stored* rollout status
(`status.rollout`), so the differ exists exactly while a comparison may run:

    ParallelRun, a candidate (`newHash`) other than the primary (`stableHash`), not aborted,
    the routing state written (`traffic.stable`)  ──► differ Pod + DiffReport wanted
    anything else (promoted, aborted, another strategy)  ──► differ Pods deleted

Why the differ is a Pod (owned by the Deployment, created here, run by the normal agent path)
rather than a process the agent spawns on the side: the agent already knows how to run,
supervise, restart (restartPolicy Always), re-adopt after its own restart (pid + start time
records), drain and stop a Pod, and the scheduler places it; its logs are `shoal logs`. A
second supervision path would duplicate all of that for one process. The Pod carries the
Deployment's template labels (so its Services select it: the agent finds the differ's
address among a Service's endpoints, `shoal.agent.parallel_routing`, which takes it out of
the live clusters and makes it the Service's mirror target) plus `DIFFER_LABEL`.

The controller creates the DiffReport (owner: the Deployment) so the differ only writes its
status. The differ runs as `python -m shoal.differ.pod` with the interpreter of the control
plane, so the node must have shoal installed at that path (true for the embedded agent) and
the Pod runs with `isolation: none` (it is shoal's own code, like the agent).
"""

from __future__ import annotations

import contextlib
import json
import sys

from shoal.api.deployment import POD_TEMPLATE_HASH_LABEL, Deployment
from shoal.api.diffreport import DiffReport, DiffReportSpec, report_name
from shoal.api.errors import AlreadyExists, NotFound
from shoal.api.meta import ObjectMeta, OwnerReference
from shoal.api.pod import (
    ContainerPort,
    EnvVar,
    HTTPGetAction,
    Pod,
    PodSpec,
    PodTemplateSpec,
    Probe,
)
from shoal.api.rollout import RolloutStatus
from shoal.controllers.context import ControllerContext
from shoal.controllers.strategies.parallel import ATTEMPT_ANNOTATION
from shoal.differ.config import DifferConfig
from shoal.differ.pod import CONFIG_VARIABLE

#: Marks a differ Pod; the value is the Deployment's name.
DIFFER_LABEL = "shoal.dev/differ"
DIFFER_PORT_NAME = "differ"


def comparing(deployment: Deployment) -> tuple[str, str, int] | None:
    """(primary hash, candidate hash, attempt) while a parallel run of `deployment` may
    compare."""
    rollout: RolloutStatus | None = deployment.status.rollout
    if deployment.spec.strategy.type != "ParallelRun" or rollout is None:
        return None
    if deployment.metadata.deletion_timestamp is not None:
        return None
    primary, candidate = rollout.stable_hash, rollout.new_hash
    if primary is None or candidate is None or primary == candidate or rollout.aborted:
        return None
    if rollout.traffic.stable is None:  # the agents would still route to every pod alike
        return None
    return primary, candidate, rollout.attempt


def differ_pod_name(deployment: str, candidate: str, attempt: int = 0) -> str:
    """`web-differ-7d9f8c`, `web-differ-7d9f8c-1` after a retry (a fresh differ, fresh counts)."""
    return f"{deployment}-differ-{candidate}" + (f"-{attempt}" if attempt else "")


def _owner(deployment: Deployment) -> OwnerReference:
    meta = deployment.metadata
    return OwnerReference(
        kind="Deployment",
        name=meta.name,
        uid=meta.uid or "",
        controller=True,
        block_owner_deletion=True,
    )


def _port_name(template: PodTemplateSpec) -> str:
    """The differ listens under the name of the app's first port, so that a Service whose
    targetPort names it sends the mirrored copies to the differ."""
    ports = template.spec.ports
    return (ports[0].name if ports and ports[0].name else None) or DIFFER_PORT_NAME


def differ_pod(deployment: Deployment, primary: str, candidate: str, attempt: int = 0) -> Pod:
    """The differ Pod comparing `candidate` with `primary` (pure)."""
    meta = deployment.metadata
    namespace = meta.namespace or "default"
    settings = deployment.spec.strategy.parallel_run
    assert settings is not None  # DeploymentStrategy fills it in for type ParallelRun
    config = DifferConfig.for_parallel_run(
        settings,
        deployment=meta.name,
        namespace=namespace,
        selector=deployment.spec.selector,
        primary_revision=primary,
        candidate_revision=candidate,
        server="http://127.0.0.1",  # replaced by the Pod's $SHOAL_SERVER
        listen="127.0.0.1:0",  # replaced by the Pod's $PORT
    )
    document = {k: v for k, v in config.to_json().items() if k not in ("listen", "server")}
    labels = dict(deployment.spec.template.metadata.labels)
    labels.pop(POD_TEMPLATE_HASH_LABEL, None)
    labels[DIFFER_LABEL] = meta.name
    port = _port_name(deployment.spec.template)
    return Pod(
        kind="Pod",
        metadata=ObjectMeta(
            name=differ_pod_name(meta.name, candidate, attempt),
            namespace=namespace,
            labels=labels,
            owner_references=[_owner(deployment)],
        ),
        spec=PodSpec(
            command=[sys.executable, "-m", "shoal.differ.pod"],
            env=[EnvVar(name=CONFIG_VARIABLE, value=json.dumps(document, sort_keys=True))],
            ports=[ContainerPort(name=port)],
            readiness_probe=Probe(
                http_get=HTTPGetAction(path="/healthz", port=port), period_seconds=1
            ),
            termination_grace_period_seconds=5,
            isolation="none",
        ),
    )


def diff_report(
    deployment: Deployment, primary: str, candidate: str, attempt: int = 0
) -> DiffReport:
    meta = deployment.metadata
    return DiffReport(
        kind="DiffReport",
        metadata=ObjectMeta(
            name=report_name(meta.name, candidate),
            namespace=meta.namespace or "default",
            annotations={ATTEMPT_ANNOTATION: str(attempt)},
            owner_references=[_owner(deployment)],
        ),
        spec=DiffReportSpec(
            deployment=meta.name, primary_revision=primary, candidate_revision=candidate
        ),
    )


def observed_report(ctx: ControllerContext, deployment: Deployment) -> DiffReport | None:
    """The report of the Deployment's current candidate, as cached by the informer."""
    if deployment.spec.strategy.type != "ParallelRun":
        return None
    rollout = deployment.status.rollout
    candidate = rollout.new_hash if rollout is not None else None
    if candidate is None:
        return None
    meta = deployment.metadata
    return ctx.diff_reports.get(meta.namespace or "default", report_name(meta.name, candidate))


async def sync(ctx: ControllerContext, deployment: Deployment) -> None:
    """Create the wanted differ Pod and DiffReport; delete differ Pods no longer wanted."""
    meta = deployment.metadata
    namespace = meta.namespace or "default"
    wanted_run = comparing(deployment)
    wanted = differ_pod_name(meta.name, *wanted_run[1:]) if wanted_run is not None else None
    for pod in ctx.pods.owned_by(meta.uid or ""):
        if DIFFER_LABEL not in pod.metadata.labels or pod.metadata.name == wanted:
            continue
        if pod.metadata.deletion_timestamp is None:
            with contextlib.suppress(NotFound):
                await ctx.client.delete(Pod, pod.metadata.name, namespace)
            ctx.recorder.record(
                deployment, "Normal", "DifferStopped", f"Stopped differ pod {pod.metadata.name}"
            )
    if wanted_run is None or wanted is None:
        return
    primary, candidate, attempt = wanted_run
    report = diff_report(deployment, primary, candidate, attempt)
    await _ensure_report(ctx, report, str(attempt))
    if ctx.pods.get(namespace, wanted) is None:
        try:
            created = await ctx.client.create(differ_pod(deployment, primary, candidate, attempt))
        except AlreadyExists:
            return
        ctx.pods.remember(created)
        ctx.recorder.record(
            deployment,
            "Normal",
            "DifferStarted",
            f"Started differ pod {wanted}: comparing {candidate} with {primary}",
        )


async def _ensure_report(ctx: ControllerContext, report: DiffReport, attempt: str) -> None:
    """Create the report; one of an earlier attempt (before `shoal rollout retry`) is deleted
    first, so that the new differ starts from zero instead of continuing its counts."""
    namespace = report.metadata.namespace or "default"
    existing = ctx.diff_reports.get(namespace, report.metadata.name)
    if existing is not None:
        if existing.metadata.annotations.get(ATTEMPT_ANNOTATION, "0") == attempt:
            return
        with contextlib.suppress(NotFound):
            await ctx.client.delete(DiffReport, report.metadata.name, namespace)
        ctx.diff_reports.deleted(existing)
    with contextlib.suppress(AlreadyExists):  # the informer had not seen it yet
        ctx.diff_reports.remember(await ctx.client.create(report))
