"""ParallelRun's side effects: the differ Pod, the comparison Pods and the DiffReport of a
Deployment's candidate.

Called by the progressive glue (`shoal.controllers.rollouts`): `observed_report` for the pure
gate, `sync` after each reconcile. Both are level-triggered on the *stored* rollout status
(`status.rollout`), so the differ exists exactly while a comparison may run:

    ParallelRun, a candidate (`newHash`) other than the primary (`stableHash`), not aborted,
    the routing state written (`traffic.stable`)  ──► differ Pod + comparison Pods + report
    anything else (promoted, aborted, another strategy)  ──► differ and comparison Pods deleted

Comparison Pods (as Diffy's primary, secondary and candidate instances): the differ never
replays to the pods that serve live traffic. It replays to three Pods of its own, owned by the
Deployment: `<deployment>-compare-<primary hash>-primary` and `-secondary` (the primary's
template, taken from its ReplicaSet) and `<deployment>-compare-<candidate hash>-candidate`.
They carry only `shoal.dev/compare: <deployment>`, their role and `pod-template-hash`, none
of the template's labels, so no Service selects them (no live request, no Envoy cluster) and
no ReplicaSet counts them. Their command runs under `nice -n 19`: on a busy node the live pods
get the CPU first, and a comparison that cannot keep up loses samples (the differ's bounded
queue drops and counts them) instead of slowing live answers. Niceness alone is not enough on
Linux: with autogroup scheduling (the default on desktop and many server kernels) every session
is a scheduling group of equal weight, and every pod starts a session of its own, so the
wrapper (`BACKGROUND_WRAPPER`, plain `sh`) also sets its session's autogroup niceness (where
`/proc/self/autogroup` exists) before it execs `nice -n 19 <command>`, under `chrt --idle 0`
(SCHED_IDLE) where util-linux's `chrt` exists and works. SCHED_IDLE is about latency, not
share: a live task that wakes preempts a SCHED_IDLE task at once, whatever their groups, while
a nice 19 task may first finish its time slice (EEVDF's run-to-parity), a millisecond or more
that a live request waits. Why a wrapper rather than a field the agent applies: it needs
nothing from the node but POSIX `sh` and `nice` (`chrt` optional; all present in the sandbox
too, which binds /usr), is inherited by every child of the app, and shows in
`shoal get pod -o yaml`. The niceness weighs against the processes of the same CPU
cgroup; a pod with a CPU limit in a sandbox has a cgroup of its own, bounded by the limit.
They request no CPU from the scheduler (`requests.cpu: 0`; a CPU limit stays): they use what
the live pods leave, and must neither keep a real pod from fitting nor stay Pending on a node
the live pods fill; memory requests stay (memory is not handed back under pressure).
Fixed port numbers of the template are dropped (a second process cannot bind them beside the
live pod on the same node); the app must listen on `$PORT` / `$PORT_<NAME>`, as shoal pods do.

Why the differ is a Pod (owned by the Deployment, created here, run by the normal agent path)
rather than a process the agent spawns on the side: the agent already knows how to run,
supervise, restart (restartPolicy Always), re-adopt after its own restart (pid + start time
records), drain and stop a Pod, and the scheduler places it; its logs are `shoal logs`. A
second supervision path would duplicate all of that for one process. The Pod carries the
Deployment's template labels (so its Services select it: the agent finds the differ's
address among a Service's endpoints, `shoal.agent.parallel_routing`, which takes it out of
the live clusters and makes it the Service's mirror target) plus `DIFFER_LABEL`. It declares
every port name of the template (allocated numbers), so whichever port a Service targets, the
mirror reaches the differ, which replays to the same port of the comparison Pods.

The differ's command is `<python> -m shoal.differ.pod`, `<python>` being the interpreter of
the controller manager (`sys.executable`), with `isolation: none`, whatever the node's default
for pods (sandbox). Why: the differ is shoal's own code, trusted like the agent and Envoy; a
sandboxed pod runs as an unprivileged uid that may not even read shoal's virtualenv (it often
sits under a 0700 home), and a system `python3` has neither shoal nor its dependencies. So a
node must have shoal installed at the control plane's path: true for the embedded agent and
for nodes installed alike; a node that cannot start it shows the pod's ExecutableNotFound
event, and the rollout waits (no samples: it never promotes untested). The app's own pods,
comparison Pods included, keep the template's isolation.

The controller creates the DiffReport (owner: the Deployment) so the differ only writes its
status.
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
from shoal.api.selectors import LabelSelector
from shoal.controllers.context import ControllerContext
from shoal.controllers.strategies.parallel import ATTEMPT_ANNOTATION
from shoal.differ.config import DifferConfig
from shoal.differ.pod import CONFIG_VARIABLE, PORTS_VARIABLE

#: Marks a differ Pod; the value is the Deployment's name.
DIFFER_LABEL = "shoal.dev/differ"
DIFFER_PORT_NAME = "differ"
#: Marks a comparison Pod (value: the Deployment's name) and its role.
COMPARE_LABEL = "shoal.dev/compare"
COMPARE_ROLE_LABEL = "shoal.dev/compare-role"
#: Niceness of the comparison Pods and the differ: background work, the live pods come first.
BACKGROUND_NICE = 19
#: The command prefix of a comparison Pod: lower the session's autogroup, then the process.
#: The kernel lets an unprivileged process change an autogroup's niceness once per 100 ms
#: machine-wide (EAGAIN otherwise), and a parallel run starts three comparison pods at once
#: under sandbox uids, so the write is retried for up to a second.
BACKGROUND_WRAPPER = [
    "sh",
    "-c",
    "n=0; while [ -e /proc/self/autogroup ] && [ $n -lt 20 ] && "
    f"! {{ echo {BACKGROUND_NICE} > /proc/self/autogroup; }} 2>/dev/null; "
    "do n=$((n + 1)); sleep 0.05 2>/dev/null; done; "
    f'chrt --idle 0 true 2>/dev/null && exec chrt --idle 0 nice -n {BACKGROUND_NICE} "$@"; '
    f'exec nice -n {BACKGROUND_NICE} "$@"',
    "shoal-compare",  # $0 of the script
]
#: The differ Pod's replay bounds: samples in flight (x3 requests) and samples waiting; more
#: is dropped and counted. A comparison needs hundreds of samples, not every request.
REPLAY_CONCURRENCY = 4
REPLAY_QUEUE = 16
#: Samples per second the differ Pod replays at most: the comparison's CPU stays bounded
#: however much live traffic is mirrored (3,000 samples a minute are plenty for a gate).
REPLAY_RATE = 50.0


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
    return OwnerReference.controller_of("Deployment", deployment.metadata)


def _differ_ports(template: PodTemplateSpec) -> list[ContainerPort]:
    """The app's port names, numbers left to the node: a Service targeting any of them, or no
    port (the first, `$PORT`), finds the differ there. An unnamed first port is called
    `differ` (a Service cannot name it anyway); other unnamed ports can only be targeted by a
    fixed number, which a second process cannot take, so they are left out."""
    names = [port.name for port in template.spec.ports]
    first = (names[0] if names else None) or DIFFER_PORT_NAME
    return [ContainerPort(name=first), *(ContainerPort(name=n) for n in names[1:] if n)]


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
        primary_revision=primary,
        candidate_revision=candidate,
        server="http://127.0.0.1",  # replaced by the Pod's $SHOAL_SERVER
        listen="127.0.0.1:0",  # replaced by the Pod's $PORT
        selector=LabelSelector(match_labels={COMPARE_LABEL: meta.name}),
    ).model_copy(
        update={
            "concurrency": REPLAY_CONCURRENCY,
            "queue_size": REPLAY_QUEUE,
            "max_rate": REPLAY_RATE,
            "nice": BACKGROUND_NICE,
            "idle": True,
        }
    )
    document = {k: v for k, v in config.to_json().items() if k not in ("listen", "server")}
    labels = dict(deployment.spec.template.metadata.labels)
    labels.pop(POD_TEMPLATE_HASH_LABEL, None)
    labels[DIFFER_LABEL] = meta.name
    ports = _differ_ports(deployment.spec.template)
    names = ",".join(port.name for port in ports if port.name)
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
            env=[
                EnvVar(name=CONFIG_VARIABLE, value=json.dumps(document, sort_keys=True)),
                EnvVar(name=PORTS_VARIABLE, value=names),
            ],
            ports=ports,
            readiness_probe=Probe(
                http_get=HTTPGetAction(path="/healthz", port=ports[0].name or DIFFER_PORT_NAME),
                period_seconds=1,
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


def comparison_pod_name(deployment: str, revision: str, role: str) -> str:
    """`web-compare-5c8f7b-primary`: named by revision, so a new candidate keeps the primaries."""
    return f"{deployment}-compare-{revision}-{role}"


def comparison_pod(
    deployment: Deployment, template: PodTemplateSpec, revision: str, role: str
) -> Pod:
    """A comparison instance of `template` (pure): no template label (no Service, no
    ReplicaSet selects it), allocated ports, the command under `BACKGROUND_WRAPPER`."""
    meta = deployment.metadata
    spec = template.spec.model_copy(deep=True)
    spec.command = [*BACKGROUND_WRAPPER, *spec.command]
    spec.ports = [ContainerPort(name=port.name) for port in spec.ports]
    spec.resources.requests.cpu = "0"  # background work reserves no CPU
    return Pod(
        kind="Pod",
        metadata=ObjectMeta(
            name=comparison_pod_name(meta.name, revision, role),
            namespace=meta.namespace or "default",
            labels={
                COMPARE_LABEL: meta.name,
                COMPARE_ROLE_LABEL: role,
                POD_TEMPLATE_HASH_LABEL: revision,
            },
            annotations=dict(template.metadata.annotations),
            owner_references=[_owner(deployment)],
        ),
        spec=spec,
    )


def comparison_pods(
    deployment: Deployment, primary_template: PodTemplateSpec | None, primary: str, candidate: str
) -> list[Pod]:
    """The primary, secondary and candidate instances (the primaries only once the primary's
    template is known)."""
    pods = [comparison_pod(deployment, deployment.spec.template, candidate, "candidate")]
    if primary_template is not None:
        pods[:0] = [
            comparison_pod(deployment, primary_template, primary, role)
            for role in ("primary", "secondary")
        ]
    return pods


def _template_of(
    ctx: ControllerContext, deployment: Deployment, revision: str
) -> PodTemplateSpec | None:
    for rs in ctx.replica_sets.owned_by(deployment.metadata.uid or ""):
        if rs.metadata.labels.get(POD_TEMPLATE_HASH_LABEL) == revision:
            return rs.spec.template
    return None


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


def wanted_pods(deployment: Deployment, primary_template: PodTemplateSpec | None) -> list[Pod]:
    """The differ and comparison Pods this Deployment should have now (pure)."""
    run = comparing(deployment)
    if run is None:
        return []
    primary, candidate, attempt = run
    return [
        *comparison_pods(deployment, primary_template, primary, candidate),
        differ_pod(deployment, primary, candidate, attempt),
    ]


async def sync(ctx: ControllerContext, deployment: Deployment) -> None:
    """Create the wanted differ Pod, comparison Pods and DiffReport; delete the differ and
    comparison Pods no longer wanted."""
    meta = deployment.metadata
    namespace = meta.namespace or "default"
    run = comparing(deployment)
    primary_template = _template_of(ctx, deployment, run[0]) if run is not None else None
    wanted = {pod.metadata.name: pod for pod in wanted_pods(deployment, primary_template)}
    for pod in ctx.pods.owned_by(meta.uid or ""):
        labels = pod.metadata.labels
        if (DIFFER_LABEL not in labels and COMPARE_LABEL not in labels) or (
            pod.metadata.name in wanted
        ):
            continue
        if pod.metadata.deletion_timestamp is None:
            with contextlib.suppress(NotFound):
                await ctx.client.delete(Pod, pod.metadata.name, namespace)
            reason = "DifferStopped" if DIFFER_LABEL in labels else "ComparisonStopped"
            ctx.recorder.record(deployment, "Normal", reason, f"Stopped pod {pod.metadata.name}")
    if run is None:
        return
    primary, candidate, attempt = run
    await _ensure_report(ctx, diff_report(deployment, primary, candidate, attempt), str(attempt))
    for name, pod in wanted.items():
        if ctx.pods.get(namespace, name) is not None:
            continue
        try:
            created = await ctx.client.create(pod)
        except AlreadyExists:
            continue
        ctx.pods.remember(created)
        if DIFFER_LABEL in pod.metadata.labels:
            reason, what = "DifferStarted", f"differ pod {name}"
        else:
            reason, what = "ComparisonStarted", f"comparison pod {name}"
        ctx.recorder.record(
            deployment, "Normal", reason, f"Started {what}: comparing {candidate} with {primary}"
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
