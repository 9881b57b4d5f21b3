"""The sandbox command line, as a pure function: launcher + setpriv + bubblewrap + the pod's argv.

Called by the sandbox driver; unit-tested without running anything.

    sh -c LAUNCH sh <cgroup.procs files> -- setpriv <drop to uid> -- bwrap <namespaces> -- argv

1. `sh` (runs as root, ~1 ms) writes its own pid into the pod's cgroup.procs file(s) and then
   execs the rest, so every process of the pod is born inside the cgroup: limits apply before
   the user's command runs, and nothing can fork outside before it is placed. (A preexec_fn
   would do the same in Python, but it runs in a forked child of a multi-threaded asyncio
   process, where Python itself warns that it may deadlock; exec'ing a tiny shell has no such
   hazard and costs about a millisecond.) The writes follow each other at once on purpose: the
   first one waits for the kernel (an RCU grace period for the cgroup thread-group lock, 5-20
   ms), the next ones then cost ~0.1 ms each instead of a wait of their own.
2. `setpriv` (util-linux, always installed) drops to the pod's uid/gid with no supplementary
   groups, an empty capability bounding set and no_new_privs. From here on nothing is root.
3. `bwrap` runs unprivileged and creates a user namespace (mapping only the pod's own uid) plus
   new mount, PID, IPC, UTS and cgroup namespaces; host network is kept so Envoy reaches the pod
   on 127.0.0.1. The host filesystem is mounted read-only, /proc is fresh (host processes are
   invisible), /dev is minimal, /tmp is a private tmpfs, the agent's data directories are
   masked with empty tmpfs, and only the pod's working directory is bound read-write.
   `--new-session` prevents TIOCSTI on a terminal; `--disable-userns` forbids nested user
   namespaces (so the pod cannot become "root" in one to mount things); all capabilities are
   dropped. Not `--die-with-parent`: the agent may be killed with -9 and pods must survive it to
   be re-adopted; the cgroup is what guarantees nothing outlives a stop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from shoal.agent.sandbox.identity import Identity

# Writes its pid to each cgroup.procs file given before "--", then execs what follows "--".
# Exit code 125 (like env/chroot for "the wrapper failed") when placement is impossible.
LAUNCH_SCRIPT = (
    'while [ "$1" != "--" ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'
)
LAUNCH_FAILED_EXIT_CODE = 125


# Directories a pod may never get read-write: binding one would undo the read-only host.
PROTECTED_DIRS = frozenset(
    [
        "/",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib64",
        "/opt",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/srv",
        "/sys",
        "/tmp",
        "/usr",
        "/var",
        "/var/lib",
        "/var/tmp",
    ]
)


def check_workdir(workdir: str, masked: Sequence[str] = ()) -> str | None:
    """Why `workdir` cannot be a pod's read-write directory, or None when it can."""
    normal = "/" + workdir.strip("/")
    if not workdir.startswith("/"):
        return f"working directory {workdir!r} must be an absolute path"
    if normal in PROTECTED_DIRS:
        return f"working directory {normal} is a system directory; give the pod its own directory"
    for hidden in masked:
        hidden_normal = "/" + hidden.strip("/")
        if hidden_normal == normal or hidden_normal.startswith(normal + "/"):
            return f"working directory {normal} would expose the agent's directory {hidden_normal}"
    return None


@dataclass(frozen=True)
class SandboxLayout:
    """What the pod sees of the host filesystem and how it is named inside."""

    workdir: str
    hostname: str = "pod"
    masked: Sequence[str] = field(default_factory=tuple)
    writable: Sequence[str] = field(default_factory=tuple)


def launcher_argv(
    procs_files: Sequence[str], command: Sequence[str], shell: str = "/bin/sh"
) -> list[str]:
    """`sh -c LAUNCH_SCRIPT sh FILE... -- COMMAND...`."""
    if any(path == "--" for path in procs_files):
        raise ValueError("a cgroup.procs path cannot be '--'")
    return [shell, "-c", LAUNCH_SCRIPT, "sh", *procs_files, "--", *command]


def setpriv_argv(identity: Identity, setpriv: str = "setpriv") -> list[str]:
    """Drop to the pod's identity: no groups, no capabilities (bounding set too), no_new_privs."""
    if identity.uid == 0 or identity.gid == 0:
        raise ValueError("a sandboxed pod never runs as root")
    return [
        setpriv,
        f"--reuid={identity.uid}",
        f"--regid={identity.gid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
    ]


def bwrap_argv(layout: SandboxLayout, bwrap: str = "bwrap") -> list[str]:
    """bubblewrap options for one pod; the caller appends `--` and the pod's argv.

    Order matters: bwrap applies mounts in sequence, so the masks (tmpfs over the agent's
    directories) come before the pod's own working directory, which may live inside one.
    """
    argv = [
        bwrap,
        "--unshare-user",
        "--disable-userns",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        layout.hostname,
        "--new-session",
        "--cap-drop",
        "ALL",
        "--ro-bind",
        "/",
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
    ]
    for path in layout.masked:
        argv += ["--tmpfs", path]
    argv += ["--tmpfs", "/tmp"]
    for path in (layout.workdir, *layout.writable):
        argv += ["--bind", path, path]
    argv += ["--chdir", layout.workdir]
    return argv


def sandbox_argv(
    command: Sequence[str],
    identity: Identity,
    layout: SandboxLayout,
    procs_files: Sequence[str],
    *,
    shell: str = "/bin/sh",
    setpriv: str = "setpriv",
    bwrap: str = "bwrap",
) -> list[str]:
    """The whole chain the driver executes for one sandboxed pod."""
    inner = [*setpriv_argv(identity, setpriv), *bwrap_argv(layout, bwrap), "--", *command]
    return launcher_argv(procs_files, inner, shell)
