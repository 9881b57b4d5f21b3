"""One cgroup per pod, on cgroup v1 or v2 (detected at runtime): create with limits, list and
kill every process in it, read usage and OOM kills, remove.

Called by the sandbox driver; `detect_cgroups()` also tells the agent whether the node can offer
sandboxed pods. The file layouts are pure functions in `cgroupfs`.

Where pod cgroups live (agent-owned parents, `<parent>/<node>/<pod-uid>`):
- v2: under the root of the unified tree (`/sys/fs/cgroup/shoal/<node>/<pod>`), because v2's
  "no internal processes" rule forbids children with controllers below the agent's own leaf.
  The controllers are enabled top-down through cgroup.subtree_control.
- v1: under the agent's own cgroup in each controller's hierarchy, so whatever limits the agent
  itself runs under (a systemd unit, a CI job) also bound its pods.
The paths are persisted in the task handle, so a restarted agent finds them again.

Killing: v2's cgroup.kill when the kernel has it (5.14+); otherwise freeze the cgroup (so nothing
can fork while we look), SIGKILL every pid in cgroup.procs, thaw, and repeat until it is empty.
That also catches processes that left the session (setsid daemons): membership of a cgroup
cannot be escaped without write access to another cgroup's files, which a pod does not have.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoal.agent.drivers.base import Limits
from shoal.agent.sandbox.cgroupfs import (
    V1_CONTROLLERS,
    V1_REQUIRED,
    V2_CONTROLLERS,
    V2_REQUIRED,
    Mounts,
    Usage,
    limit_files_v1,
    limit_files_v2,
    parse_flat_keyed,
    parse_mountinfo,
    parse_pid_list,
    parse_proc_cgroup,
    relative_to_mount,
    working_set,
)


class CgroupError(Exception):
    """A cgroup could not be created, limited or removed; the message says what to do."""


def read_file(path: Path, default: str = "") -> str:
    """A cgroup or /proc file's text; `default` when it (or its process) is gone."""
    try:
        return path.read_text()
    except (FileNotFoundError, ProcessLookupError):
        return default


def read_number(path: Path) -> int:
    """A file holding one number (a limit, a counter); 0 when gone or empty."""
    text = read_file(path).strip()
    return int(text) if text.isdigit() else 0


def release_oom_kills(memory_dir: Path) -> None:
    """v1: the kernel kills at the cgroup's memory limit again (`oom_killer` may hold the
    kills); this also wakes whoever waits at the limit."""
    with contextlib.suppress(OSError):
        (memory_dir / "memory.oom_control").write_text("0")


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as error:
        raise CgroupError(f"cannot write {value!r} to {path}: {error.strerror}") from error


def _kill_pids(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


async def _rmdir_when_empty(path: Path, deadline: float) -> None:
    """rmdir, retrying briefly: the kernel may report EBUSY while the last tasks are reaped."""
    while True:
        try:
            os.rmdir(path)  # sysfs: instant, no thread needed
            return
        except FileNotFoundError:
            return
        except OSError as error:
            if error.errno != errno.EBUSY or time.monotonic() > deadline:
                raise CgroupError(f"cannot remove cgroup {path}: {error.strerror}") from error
        await asyncio.sleep(0.02)


@dataclass
class PodCgroupV2:
    """A pod's cgroup in the unified (v2) hierarchy."""

    path: Path
    root: Path  # the hierarchy's mount point: controllers are enabled from here down
    version: int = 2

    def procs_files(self) -> list[str]:
        return [str(self.path / "cgroup.procs")]

    def create(self, limits: Limits) -> None:
        _enable_v2_controllers(self.root, self.path.parent, limits)
        self.path.mkdir(parents=False, exist_ok=True)
        swap = (self.path / "memory.swap.max").exists()
        for name, value in limit_files_v2(limits, swap):
            best_effort = name == "cpu.weight" or limits.cpu_millis is None
            if name.startswith("cpu.") and best_effort and not (self.path / name).exists():
                continue  # no cpu controller: a weight is best effort, no quota to enforce
            _write(self.path / name, value)

    def create_without_controllers(self) -> None:
        """The pod's cgroup and its agent-owned parents, no controller enabled: membership,
        `populated`, kill and removal work on any v2 tree (limits need `create`)."""
        self.path.mkdir(parents=True, exist_ok=True)

    def populated(self) -> bool:
        """cgroup.events' `populated`: a live process in the cgroup (or below it)."""
        return parse_flat_keyed(read_file(self.path / "cgroup.events")).get("populated", 0) == 1

    def pids(self) -> list[int]:
        return parse_pid_list(read_file(self.path / "cgroup.procs"))

    def demote(self) -> bool:
        """cpu.idle=1 on the pod's cgroup; True when it was not idle yet (False also without
        the cpu controller). On v2 the pod stays where it is, so it is idle against its sibling
        pods only: moving it would move its memory and pids accounting too."""
        idle = self.path / "cpu.idle"
        if not idle.exists() or read_file(idle).strip() == "1":
            return False
        _write(idle, "1")
        return True

    def demote_before_start(self) -> bool:
        """cpu.idle=1 before the first process joins; False without the cpu controller."""
        return self.demote()

    def oom_kills(self) -> int:
        return parse_flat_keyed(read_file(self.path / "memory.events")).get("oom_kill", 0)

    def usage(self) -> Usage:
        cpu = parse_flat_keyed(read_file(self.path / "cpu.stat")).get("usage_usec", 0) * 1000
        current = read_number(self.path / "memory.current")
        stat = parse_flat_keyed(read_file(self.path / "memory.stat"))
        pids = read_number(self.path / "pids.current")
        return Usage(cpu, working_set(current, stat, "inactive_file"), pids)

    async def kill_all(self, within: float = 10.0, *, use_kill_file: bool = True) -> None:
        """SIGKILL everything in the cgroup; `use_kill_file=False` takes the pre-5.14 path."""
        deadline = time.monotonic() + within
        kill_file = self.path / "cgroup.kill"
        freeze_file = self.path / "cgroup.freeze"
        while pids := self.pids():
            if use_kill_file and kill_file.exists():
                _write(kill_file, "1")
            else:
                if freeze_file.exists():
                    _write(freeze_file, "1")
                _kill_pids(self.pids())
                if freeze_file.exists():
                    _write(freeze_file, "0")
            if time.monotonic() > deadline:
                raise CgroupError(f"processes {pids} in {self.path} survived SIGKILL")
            await asyncio.sleep(0.01)

    async def remove(self, within: float = 5.0) -> None:
        await _rmdir_when_empty(self.path, time.monotonic() + within)

    def to_state(self) -> dict[str, Any]:
        return {"cgroup_version": 2, "cgroup_path": str(self.path), "cgroup_root": str(self.root)}


@dataclass
class PodCgroupV1:
    """A pod's cgroup in each v1 hierarchy it joins (controller -> directory)."""

    dirs: dict[str, Path]
    # Where the pod's cpu membership moves when it is demoted (`demote`); None without cpu.
    demoted_cpu: Path | None = None
    starts_demoted: bool = False  # `demote_before_start` was called: the launcher goes there
    version: int = 1

    def _unique_dirs(self) -> list[Path]:
        # Co-mounted controllers (e.g. "cpu,cpuacct") share one directory.
        return list(dict.fromkeys(self.dirs.values()))

    def procs_files(self) -> list[str]:
        cpu = self.dirs.get("cpu") if self.starts_demoted else None
        return [
            str((self.demoted_cpu if path == cpu and self.demoted_cpu else path) / "cgroup.procs")
            for path in self._unique_dirs()
        ]

    def create(self, limits: Limits) -> None:
        for path in self._unique_dirs():
            path.mkdir(parents=True, exist_ok=True)
        memory = self.dirs["memory"]
        swap = (memory / "memory.memsw.limit_in_bytes").exists()
        for controller, name, value in limit_files_v1(limits, swap):
            if controller not in self.dirs:
                if controller == "cpu" and (name == "cpu.shares" or limits.cpu_millis is None):
                    continue  # a weight is best effort; only a quota needs the controller
                raise CgroupError(f"the {controller} cgroup controller is not mounted")
            _write(self.dirs[controller] / name, value)

    def pids(self) -> list[int]:
        found: set[int] = set()
        for path in self._unique_dirs():
            found.update(parse_pid_list(read_file(path / "cgroup.procs")))
        return sorted(found)

    def demote(self) -> bool:
        """Move the pod's processes' cpu membership (quota and weight with them) below the
        agent's demoted group, a sibling of its parent with cpu.idle=1: there any task waking
        outside it, Envoy's and the agent's included, preempts the pod at once, and the pod gets
        CPU only while nothing else wants it. Memory, pids and freezer stay where they are.
        True when it moved a process (False: none left to move, or no cpu hierarchy). A fork
        during the move lands in the old group and is moved by the next round; after the last
        round nothing can join the old group (a pod cannot write cgroup files)."""
        cpu, target = self.dirs.get("cpu"), self.demoted_cpu
        if cpu is None or target is None:
            return False
        pids = parse_pid_list(read_file(cpu / "cgroup.procs"))
        if not pids:
            return False
        self._prepare_demoted(cpu, target)
        for _ in range(100):  # a process forked meanwhile starts in the old cgroup
            for pid in pids:
                with contextlib.suppress(CgroupError):  # it may have exited meanwhile
                    _write(target / "cgroup.procs", str(pid))
            pids = parse_pid_list(read_file(cpu / "cgroup.procs"))
            if not pids:
                return True
        raise CgroupError(f"processes kept appearing in {cpu} while demoting the pod")

    def demote_before_start(self) -> bool:
        """Prepare the demoted group, and have `procs_files` name it instead of the pod's cpu
        cgroup: the launcher then places the run there from its first instruction. False
        without a cpu hierarchy."""
        cpu, target = self.dirs.get("cpu"), self.demoted_cpu
        if cpu is None or target is None:
            return False
        self._prepare_demoted(cpu, target)
        self.starts_demoted = True
        return True

    @staticmethod
    def _prepare_demoted(cpu: Path, target: Path) -> None:
        """The top-level idle group and the pod's group in it, with the pod's quota and weight."""
        if target.exists():
            return
        top = target.parent.parent
        try:
            top.mkdir(exist_ok=True)
            if not (top / "cpu.idle").exists():
                raise CgroupError("this kernel has no cpu.idle (Linux 5.15+): no idle group")
            if read_file(top / "cpu.idle").strip() != "1":
                _write(top / "cpu.idle", "1")
            target.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CgroupError(f"cannot create {target}: {error.strerror}") from error
        for name in ("cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.shares"):
            _write(target / name, read_file(cpu / name).strip())

    def oom_kills(self) -> int:
        control = parse_flat_keyed(read_file(self.dirs["memory"] / "memory.oom_control"))
        if "oom_kill" in control:
            return control["oom_kill"]
        # Kernels before 4.13 have no counter; an OOM in progress is the best we can see.
        return control.get("under_oom", 0)

    def usage(self) -> Usage:
        cpu_dir = self.dirs.get("cpuacct")
        cpu_dirs = [cpu_dir] if cpu_dir else []
        if cpu_dir is not None and cpu_dir == self.dirs.get("cpu") and self.demoted_cpu:
            cpu_dirs.append(self.demoted_cpu)  # co-mounted: the usage since the move is there
        cpu = sum(read_number(d / "cpuacct.usage") for d in cpu_dirs)
        memory = self.dirs["memory"]
        current = read_number(memory / "memory.usage_in_bytes")
        stat = parse_flat_keyed(read_file(memory / "memory.stat"))
        pids = read_number(self.dirs["pids"] / "pids.current")
        return Usage(cpu, working_set(current, stat, "total_inactive_file"), pids)

    async def kill_all(self, within: float = 10.0) -> None:
        """Freeze, SIGKILL every member, thaw, until empty. First the kernel gets the OOM kills
        back (`oom_killer` may hold them): a task waiting at the limit cannot be frozen."""
        release_oom_kills(self.dirs["memory"])
        deadline = time.monotonic() + within
        freezer = self.dirs.get("freezer")
        while pids := self.pids():
            if freezer is not None:
                _write(freezer / "freezer.state", "FROZEN")
                while read_file(freezer / "freezer.state").strip() == "FREEZING":
                    if time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.005)
            _kill_pids(self.pids())
            if freezer is not None:
                _write(freezer / "freezer.state", "THAWED")  # SIGKILL is delivered on thaw
            if time.monotonic() > deadline:
                raise CgroupError(f"processes {pids} in {list(self.dirs.values())} survived")
            await asyncio.sleep(0.01)

    async def remove(self, within: float = 5.0) -> None:
        deadline = time.monotonic() + within
        extra = [self.demoted_cpu] if self.demoted_cpu is not None else []
        for path in [*self._unique_dirs(), *extra]:
            await _rmdir_when_empty(path, deadline)

    def to_state(self) -> dict[str, Any]:
        dirs = {controller: str(path) for controller, path in self.dirs.items()}
        state: dict[str, Any] = {"cgroup_version": 1, "cgroup_dirs": dirs}
        if self.demoted_cpu is not None:
            state["cgroup_demoted_cpu"] = str(self.demoted_cpu)
        return state


PodCgroup = PodCgroupV1 | PodCgroupV2


def demoted_parent(cpu_parent: Path) -> Path:
    """v1: the demoted pods' group, a sibling of the agent's cpu parent (`shoal-demoted`)."""
    return cpu_parent.with_name(f"{cpu_parent.name}-demoted")


def _enable_v2_controllers(root: Path, parent: Path, limits: Limits) -> None:
    """Create `parent` below `root` and enable the pod controllers on every level down to it.

    One write per level with all controllers: the kernel applies such a list all or nothing.
    """
    wanted = list(V2_REQUIRED) + (["cpu"] if limits.cpu_millis is not None else [])
    levels = [root]
    for part in parent.relative_to(root).parts:
        levels.append(levels[-1] / part)
    for level in levels:
        level.mkdir(exist_ok=True)
        available = read_file(level / "cgroup.controllers").split()
        enabled = read_file(level / "cgroup.subtree_control").split()
        missing = [c for c in wanted if c not in available]
        if missing:
            raise CgroupError(
                f"cgroup v2 controllers {missing} are not available in {level}; "
                "enable them in its parent's cgroup.subtree_control"
            )
        extra = [c for c in V2_CONTROLLERS if c not in wanted and c in available]
        todo = [c for c in wanted + extra if c not in enabled]
        if not todo:
            continue
        try:
            (level / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in todo))
        except OSError as error:
            raise CgroupError(
                f"cannot enable cgroup controllers {todo} in {level}: {error.strerror}; "
                "the agent needs a cgroup v2 subtree it may delegate (run it as root, "
                "outside a leaf cgroup with processes)"
            ) from error


@dataclass(frozen=True)
class CgroupHierarchy:
    """Where this node puts pod cgroups. `version` 1 or 2."""

    version: int
    base: Mapping[str, Path]  # v2: {"": parent dir, "root": mount}; v1: {controller: parent dir}

    def pod(self, node: str, pod_uid: str) -> PodCgroup:
        if self.version == 2:
            return PodCgroupV2(self.base[""] / node / pod_uid, self.base["root"])
        cpu = self.base.get("cpu")
        demoted = demoted_parent(cpu) / node / pod_uid if cpu is not None else None
        return PodCgroupV1({c: path / node / pod_uid for c, path in self.base.items()}, demoted)

    def remove_node(self, node: str) -> None:
        """Best effort at agent shutdown: drop `<parent>/<node>` and `<parent>` when empty."""
        bases = [path for key, path in self.base.items() if key != "root"]
        if self.version == 1 and "cpu" in self.base:
            bases.append(demoted_parent(self.base["cpu"]))
        for base in dict.fromkeys(bases):
            for level in (base / node, base):
                with contextlib.suppress(OSError):
                    os.rmdir(level)


def pod_cgroup_from_state(state: Mapping[str, Any]) -> PodCgroup | None:
    """Rebuild a pod's cgroup from a persisted task handle (None when it had none)."""
    if state.get("cgroup_version") == 2:
        return PodCgroupV2(Path(str(state["cgroup_path"])), Path(str(state["cgroup_root"])))
    if state.get("cgroup_version") == 1:
        dirs = state["cgroup_dirs"]
        demoted = state.get("cgroup_demoted_cpu")
        return PodCgroupV1(
            {str(c): Path(str(p)) for c, p in dict(dirs).items()},
            Path(str(demoted)) if demoted else None,
        )
    return None


def hierarchy_from(
    mounts: Mounts, own_v1: Mapping[str, str], parent: str = "shoal"
) -> CgroupHierarchy | str:
    """Choose v2 when the unified tree carries memory and pids, else v1; or say why neither."""
    if mounts.unified is not None:
        root = Path(mounts.unified)
        if set(V2_REQUIRED) <= set(read_file(root / "cgroup.controllers").split()):
            return CgroupHierarchy(2, {"": root / parent, "root": root})
    missing = [c for c in V1_REQUIRED if c not in mounts.v1]
    if missing:
        return (
            "no usable cgroup hierarchy (v2 without memory/pids, v1 without "
            + ", ".join(missing)
            + ")"
        )
    base: dict[str, Path] = {}
    for controller, mount_point in mounts.v1.items():
        own = relative_to_mount(own_v1.get(controller, "/"), mounts.v1_roots.get(controller, "/"))
        base[controller] = Path(mount_point) / own / parent
    return CgroupHierarchy(1, base)


def detect_cgroups(parent: str = "shoal", proc: Path = Path("/proc")) -> CgroupHierarchy | str:
    """This node's cgroup hierarchy for pods, or a reason why pods cannot have cgroups."""
    if os.geteuid() != 0:
        return "the agent is not root, so it cannot create cgroups"
    mounts = parse_mountinfo(read_file(proc / "self" / "mountinfo"))
    _, own_v1 = parse_proc_cgroup(read_file(proc / "self" / "cgroup"))
    return hierarchy_from(mounts, own_v1, parent)


__all__ = [
    "V1_CONTROLLERS",
    "CgroupError",
    "CgroupHierarchy",
    "PodCgroup",
    "PodCgroupV1",
    "PodCgroupV2",
    "Usage",
    "detect_cgroups",
    "hierarchy_from",
    "pod_cgroup_from_state",
]
