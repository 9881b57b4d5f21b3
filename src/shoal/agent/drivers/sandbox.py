"""SandboxDriver: a pod as an unprivileged process tree in its own namespaces and cgroup.

Called by the agent runner through the `Driver` protocol, for pods whose `isolation` is
`sandbox` or absent (`none` uses ProcessDriver). It composes the ProcessDriver (spawning, log
files, pidfd exit watching, re-adoption by pid + start time) with the sandbox parts:
`sandbox.identity` (uid per namespace + deployment), `sandbox.bwrap` (the command line) and
`sandbox.cgroups` (limits, kill-all, usage, OOM).

Why bubblewrap: it is the namespace tool Flatpak and many build systems rely on, so its few
thousand lines of C are exercised and reviewed far more than anything we could write; it is a
small Debian package (`make install` adds it); it runs unprivileged inside a user namespace, so
nothing in the pod's process tree is ever root; it has no daemon or image format. nsjail has
more knobs (seccomp policy language, rlimits) but is not packaged everywhere and we would carry
its config; our own unshare/mount code would be the least reviewed part of shoal.

Process tree: agent -> bwrap (the handle's pid; host PID namespace) -> bwrap init (pid 1 of the
pod's PID namespace) -> the pod's command (pid 2) and its children. bwrap does not forward
signals, so `signal` and `stop` send them to every process of the pod's cgroup except the two
bwrap processes; when the command exits, bwrap's init exits with its status, the kernel kills
whatever else is left in the PID namespace, and the outer bwrap exits with the same status
(128 + N for a signal N, translated back here). Not --die-with-parent: pods outlive an agent
`kill -9` and are re-adopted; the cgroup path travels in `handle.driver_state`.

Exit reasons: OOMKilled when the pod did not succeed and the cgroup saw an OOM kill (the
kernel's, or on cgroup v1 the agent's own: `sandbox.oom_killer` kills at the limit instead,
noting each kill under `oom_ledger_dir` so that the agent after a `kill -9` still counts it);
SandboxUnavailable when the node cannot sandbox (no silent downgrade to a plain process).

Requirements on the caller: the pod's working directory is bound read-write and everything else
is read-only, so give each pod its own directory, owned by (or writable for) its uid, whose
ancestors are searchable by any uid (bwrap runs as the pod's uid; a 0700 parent such as
pytest's tmp dir or /root fails with a clear StartError). Pass the agent's data directory in
`masked_dirs` so pods see it empty (its logs, state and the other pods' directories). Pods without
a pids limit get `default_pids_limit`, so a fork bomb never takes the node down. A working
directory directly or indirectly under `pods_root` (the agent's per-pod directories) is chowned
to the pod's uid at start, so the runner only has to create it.

Zombies: bwrap's outer process may exit a moment before its init child, which is then reparented
to the host's init (or the nearest subreaper) and reaped there; it is already out of the cgroup.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import stat
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from shoal.agent.drivers.base import (
    ExitStatus,
    ProcessSpec,
    StartError,
    TaskHandle,
    TaskInfo,
    build_environment,
)
from shoal.agent.drivers.process import ProcessDriver, resolve_executable
from shoal.agent.sandbox.availability import sandbox_available, unavailable_message
from shoal.agent.sandbox.bwrap import (
    LAUNCH_FAILED_EXIT_CODE,
    SandboxLayout,
    check_workdir,
    sandbox_argv,
)
from shoal.agent.sandbox.cgroupfs import Usage
from shoal.agent.sandbox.cgroups import (
    CgroupError,
    CgroupHierarchy,
    PodCgroup,
    PodCgroupV1,
    detect_cgroups,
    pod_cgroup_from_state,
)
from shoal.agent.sandbox.demotion import OomDemotion
from shoal.agent.sandbox.identity import Identity, allocate_identity, identity_key
from shoal.agent.sandbox.oom_killer import AgentOomKiller, KillLedger, memory_limited

LOG = logging.getLogger(__name__)
REASON_OOM_KILLED = "OOMKilled"
REASON_UNAVAILABLE = "SandboxUnavailable"
REASON_SANDBOX_ERROR = "SandboxError"


@dataclass
class _Sandbox:
    handle: TaskHandle
    cgroup: PodCgroup
    key: str
    ledger: KillLedger  # the agent's OOM kills in this run (the killer notes them)
    killer: AgentOomKiller | None = None  # the agent kills at the memory limit (v1)
    demoted: str | None = None  # why the run started demoted
    finished: asyncio.Task[ExitStatus] | None = None


class _Steps:
    """Milliseconds spent in each named step of a start, in order (for the debug log)."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self.elapsed: dict[str, float] = {}

    def mark(self, step: str) -> None:
        now = time.perf_counter()
        self.elapsed[step] = 1000 * (now - self._last)
        self._last = now

    def describe(self) -> str:
        return " ".join(f"{step}={ms:.2f}" for step, ms in self.elapsed.items())


def translate_exit(status: ExitStatus, oom_kills: int) -> ExitStatus:
    """bwrap's 128+N back to signal N; OOMKilled when the cgroup saw an OOM kill (pure)."""
    exit_code, signum, message = status.exit_code, status.signal, status.message
    reason = status.reason
    if exit_code is not None and signum is None and 128 < exit_code <= 128 + 64:
        signum = exit_code - 128
        exit_code = None
        name = signal.Signals(signum).name if signum in signal.valid_signals() else str(signum)
        message = f"killed by signal {name}"
    if exit_code == LAUNCH_FAILED_EXIT_CODE:
        reason, message = REASON_SANDBOX_ERROR, "could not place the pod in its cgroup"
    succeeded = exit_code == 0 and signum is None
    if oom_kills > 0 and not succeeded:
        reason = REASON_OOM_KILLED
        message = f"{oom_kills} process(es) killed at the pod's memory limit"
    return dataclasses.replace(
        status, exit_code=exit_code, signal=signum, reason=reason, message=message
    )


def unreachable_ancestor(workdir: Path, identity: Identity) -> str | None:
    """Why the pod's uid cannot reach its working directory (bwrap runs as that uid, so every
    ancestor must be searchable by it), or None."""
    for directory in [*reversed(workdir.parents), workdir]:
        try:
            info = directory.stat()
        except OSError as error:
            return f"cannot stat {directory}: {error.strerror}"
        if info.st_uid == identity.uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid == identity.gid:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            return (
                f"the pod's uid {identity.uid} cannot enter {directory} "
                f"(mode {stat.S_IMODE(info.st_mode):o}); make it searchable (chmod o+x) or "
                "give the pod a working directory elsewhere"
            )
    return None


def driver_name_for(isolation: str | None) -> str:
    """Which driver runs a pod: `isolation: none` -> "process", absent or "sandbox" ->
    "sandbox" (which fails with SandboxUnavailable where the node cannot sandbox)."""
    return "process" if isolation == "none" else "sandbox"


class SandboxDriver:
    """Driver for sandboxed pods. One per node; `node_name` names the cgroup parent."""

    name = "sandbox"

    def __init__(
        self,
        node_name: str,
        *,
        masked_dirs: Sequence[Path] = (),
        pods_root: Path | None = None,
        host_env: Mapping[str, str] | None = None,
        cgroup_parent: str = "shoal",
        leftover_timeout: float = 5.0,
        default_pids_limit: int | None = 4096,
        on_demoted: Callable[[str, str], None] | None = None,
        oom_ledger_dir: Path | None = None,
    ) -> None:
        """`on_demoted(pod_uid, why)` is told when a pod is demoted for OOM kills. The agent's
        own OOM kills are noted in a file per pod under `oom_ledger_dir` (None: in memory, lost
        with the agent's process)."""
        self._node = node_name
        self._masked = [str(path) for path in masked_dirs]
        self._pods_root = pods_root
        self._host_env = dict(os.environ if host_env is None else host_env)
        self._cgroup_parent = cgroup_parent
        self._default_pids = default_pids_limit
        self._processes = ProcessDriver(self._host_env, leftover_timeout)
        self._sandboxes: dict[int, _Sandbox] = {}
        self._bwrap = shutil.which("bwrap") or "bwrap"
        self._bwrap_real = os.path.realpath(self._bwrap)
        self._setpriv = shutil.which("setpriv") or "setpriv"
        self._hierarchy: CgroupHierarchy | str | None = None
        self._demotion = OomDemotion(notify=on_demoted)
        self._agent_oom_kills = True  # until the kernel refuses it (oom_killer)
        self._ledger_dir = oom_ledger_dir
        # Where the last successful start spent its time (ms per step): the bench prints it.
        self.last_start_steps: dict[str, float] = {}

    def _cgroups(self) -> CgroupHierarchy | str:
        if self._hierarchy is None:
            self._hierarchy = detect_cgroups(self._cgroup_parent)
        return self._hierarchy

    def _identity(self, spec: ProcessSpec) -> tuple[str, Identity]:
        key = identity_key(spec.namespace, spec.owner or spec.pod_name)
        held = {int(box.handle.driver_state["uid"]): box.key for box in self._sandboxes.values()}
        return key, allocate_identity(key, held)

    async def start(self, spec: ProcessSpec) -> TaskHandle | StartError:
        """Checks, uid, cgroup with limits, then one spawn of the launcher chain. The time of
        each step (ms) is kept in `last_start_steps` and logged at debug level."""
        steps = _Steps()
        available, why = sandbox_available()
        hierarchy = self._cgroups()
        if not available or not isinstance(hierarchy, CgroupHierarchy):
            reason = why if not available else str(hierarchy)
            return StartError(REASON_UNAVAILABLE, unavailable_message(reason))
        if not spec.argv:
            return StartError("StartError", "empty command")
        workdir_problem = check_workdir(str(spec.cwd), self._masked)
        if workdir_problem is not None:
            return StartError("StartError", workdir_problem)
        if not spec.cwd.is_dir():
            return StartError("StartError", f"working directory {spec.cwd} does not exist")
        key, identity = self._identity(spec)
        steps.mark("uid")
        if self._pods_root is not None and self._pods_root in spec.cwd.parents:
            # The agent made this directory for the pod: hand it to the pod's uid.
            os.chown(spec.cwd, identity.uid, identity.gid)
        unreachable = unreachable_ancestor(spec.cwd, identity)
        if unreachable is not None:
            return StartError("StartError", unreachable)
        # A sandboxed process has no use for root's HOME or USER; its own dir is its home.
        env = {"HOME": str(spec.cwd), "USER": f"pod-{identity.uid}", "TMPDIR": "/tmp"}
        spec = dataclasses.replace(spec, env={**env, **spec.env})
        found = resolve_executable(spec.argv[0], spec.cwd, build_environment(spec, self._host_env))
        if isinstance(found, StartError):
            return found
        steps.mark("checks")
        cgroup = hierarchy.pod(self._node, spec.pod_uid)
        try:
            if cgroup.pids():  # a leftover of this pod's previous run
                await cgroup.kill_all()
            await cgroup.remove()
            limits = spec.limits
            if limits.pids is None and self._default_pids is not None:
                limits = dataclasses.replace(limits, pids=self._default_pids)
            cgroup.create(limits)
        except CgroupError as error:
            return StartError(REASON_SANDBOX_ERROR, str(error))
        ledger = self._ledger(spec.pod_uid)
        ledger.clear()  # a new run: the last one's end was counted, or never will be
        killer = self._take_over_oom(cgroup, ledger) if limits.memory_bytes is not None else None
        demoted = self._demotion.demote_at_start(spec.pod_uid, f"{key} ({spec.pod_uid})", cgroup)
        steps.mark("cgroup")
        layout = SandboxLayout(
            workdir=str(spec.cwd), hostname=spec.pod_name[:63], masked=self._masked
        )
        argv = sandbox_argv(
            spec.argv,
            identity,
            layout,
            cgroup.procs_files(),
            setpriv=self._setpriv,
            bwrap=self._bwrap,
        )
        started = await self._processes.start(dataclasses.replace(spec, argv=argv))
        steps.mark("spawn")
        if isinstance(started, StartError):
            if killer is not None:
                killer.close()
            await cgroup.remove()
            return started
        state = {**cgroup.to_state(), "uid": identity.uid, "gid": identity.gid, "key": key}
        handle = dataclasses.replace(started, driver=self.name, driver_state=state)
        self._track(_Sandbox(handle, cgroup, key, ledger, killer, demoted))
        self.last_start_steps = steps.elapsed
        LOG.debug("sandbox start of %s, ms per step: %s", spec.pod_name, steps.describe())
        return handle

    def _ledger(self, pod_uid: str) -> KillLedger:
        return KillLedger(None if self._ledger_dir is None else self._ledger_dir / pod_uid)

    def _take_over_oom(self, cgroup: PodCgroup, ledger: KillLedger) -> AgentOomKiller | None:
        """On v1, the agent kills at the pod's memory limit (`oom_killer`), unless the kernel
        refused that once already on this node."""
        if not isinstance(cgroup, PodCgroupV1) or not self._agent_oom_kills:
            return None
        killer = AgentOomKiller.take_over(cgroup.dirs["memory"], ledger)
        self._agent_oom_kills = killer is not None
        return killer

    def _track(self, box: _Sandbox) -> None:
        box.finished = asyncio.get_running_loop().create_task(
            self._finish(box), name=f"shoal-sandbox-{box.handle.pid}"
        )
        self._sandboxes[box.handle.pid] = box

    async def _finish(self, box: _Sandbox) -> ExitStatus:
        """While bwrap runs, watch for OOMs (kill at the limit on v1, demote: `demotion`); when
        it exits, count the OOM kills, kill any leftover, remove the cgroup."""
        uid = box.handle.pod_uid
        name = f"{box.key} ({uid})"
        watch = asyncio.create_task(
            self._demotion.watch(uid, name, box.cgroup, box.killer, box.demoted)
        )
        try:
            status = await self._processes.wait(box.handle)
        finally:
            watch.cancel()
            await asyncio.wait({watch})  # it no longer waits on the killer's eventfd
            if box.killer is not None:
                box.killer.close()
        return await self._clean_up(uid, box.cgroup, status, box.ledger)

    async def _clean_up(
        self, pod_uid: str, cgroup: PodCgroup, status: ExitStatus, ledger: KillLedger
    ) -> ExitStatus:
        """Count the run's OOM kills (the kernel's and the agent's: `ledger`, then cleared),
        kill any leftover, remove the cgroup."""
        oom_kills = cgroup.oom_kills() + ledger.count()
        ledger.clear()
        if oom_kills:
            self._demotion.record(pod_uid)
        with contextlib.suppress(CgroupError):
            await cgroup.kill_all()
            await cgroup.remove()
        return translate_exit(status, oom_kills)

    def _box(self, handle: TaskHandle) -> _Sandbox:
        try:
            return self._sandboxes[handle.pid]
        except KeyError:
            raise LookupError(f"pid {handle.pid} is not managed by this driver") from None

    def _pod_processes(self, box: _Sandbox) -> list[int]:
        """The pod's own processes: its cgroup minus the bwrap helpers (which ignore or die
        of signals without passing them on)."""
        own: list[int] = []
        for pid in box.cgroup.pids():
            try:
                exe = os.readlink(f"/proc/{pid}/exe")
            except OSError:
                continue
            if exe != self._bwrap_real:
                own.append(pid)
        return own

    async def wait(self, handle: TaskHandle) -> ExitStatus:
        box = self._box(handle)
        assert box.finished is not None
        return await asyncio.shield(box.finished)

    async def signal(self, handle: TaskHandle, signum: int) -> None:
        box = self._box(handle)
        if box.finished is not None and not box.finished.done():
            for pid in self._pod_processes(box):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signum)

    async def stop(self, handle: TaskHandle, grace_seconds: float) -> ExitStatus:
        """SIGTERM the pod's processes, wait up to the grace period, then kill the cgroup."""
        box = self._box(handle)
        assert box.finished is not None
        if not box.finished.done():
            await self.signal(handle, signal.SIGTERM)
            await asyncio.wait({box.finished}, timeout=max(grace_seconds, 0))
            if not box.finished.done():
                with contextlib.suppress(CgroupError):
                    await box.cgroup.kill_all()
        status = await asyncio.shield(box.finished)
        await self._processes.stop(handle, 0)  # only its bookkeeping is left
        del self._sandboxes[handle.pid]
        return status

    async def recover(self, handle: TaskHandle) -> TaskHandle | ExitStatus:
        """Re-adopt after an agent restart: bwrap's pid + start time, and the cgroup path."""
        if handle.pid in self._sandboxes:
            return self._sandboxes[handle.pid].handle
        cgroup = pod_cgroup_from_state(handle.driver_state)
        if cgroup is None:
            now = time.time()
            message = "sandbox handle without a cgroup; cannot re-adopt"
            return ExitStatus(None, None, REASON_SANDBOX_ERROR, handle.started_at, now, message)
        recovered = await self._processes.recover(handle)
        ledger = self._ledger(handle.pod_uid)  # the kills of the agent that ran it before
        if isinstance(recovered, ExitStatus):
            return await self._clean_up(handle.pod_uid, cgroup, recovered, ledger)
        key = str(handle.driver_state.get("key", ""))
        killer = None
        if isinstance(cgroup, PodCgroupV1) and memory_limited(cgroup.dirs["memory"]):
            killer = self._take_over_oom(cgroup, ledger)  # again: the last agent's eventfd is gone
        self._track(_Sandbox(handle, cgroup, key, ledger, killer))
        return handle

    def usage(self, handle: TaskHandle) -> Usage:
        """CPU ns, memory bytes (working set) and pids of the pod, from its cgroup."""
        box = self._sandboxes.get(handle.pid)
        cgroup = box.cgroup if box is not None else pod_cgroup_from_state(handle.driver_state)
        return cgroup.usage() if cgroup is not None else Usage()

    def usage_all(self) -> dict[str, Usage]:
        """Usage of every pod this driver runs, by pod uid (`shoal top pods`, node accounting)."""
        return {box.handle.pod_uid: box.cgroup.usage() for box in self._sandboxes.values()}

    async def inspect(self, handle: TaskHandle) -> TaskInfo:
        box = self._sandboxes.get(handle.pid)
        if box is None or box.finished is None or box.finished.done():
            return TaskInfo(False, [])
        usage = box.cgroup.usage()
        return TaskInfo(True, box.cgroup.pids(), usage.cpu_ns / 1e9, usage.memory_bytes)

    def remove_node_cgroups(self) -> None:
        """At graceful agent shutdown, after every pod stopped: remove the empty parents."""
        hierarchy = self._cgroups()
        if isinstance(hierarchy, CgroupHierarchy):
            hierarchy.remove_node(self._node)

    def managed(self) -> list[TaskHandle]:
        """Handles this driver currently watches (started or recovered, not yet stopped)."""
        return [box.handle for box in self._sandboxes.values()]
