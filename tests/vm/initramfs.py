"""The guest's initramfs for the cgroup v2 VM test: a static busybox, the kernel modules that
mount the host's / read-only over 9p (virtio), and an /init script that makes that / the root
(switch_root) and runs pytest with a pure cgroup2 hierarchy at /sys/fs/cgroup.

Called by `vm_image` (which reads the modules and busybox, writes the archive and boots it
under qemu) and unit-tested by test_initramfs.py. Everything here but `kernel_modules` (which
reads the .ko files) is pure: the cpio writer, module load order, the init script.
"""

from __future__ import annotations

import shlex
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# What the guest needs to reach the host's /: the virtio PCI transport and 9p over it.
# Their dependencies (netfs, fscache, virtio_ring...) are read from the modules themselves.
WANTED_MODULES = ("virtio_pci", "9pnet_virtio", "9p")
START_MARK = "SHOAL-VM-PYTEST-START"
EXIT_MARK = "SHOAL-VM-EXIT="  # followed by pytest's exit code

DIR = 0o040755
FILE = 0o100755
SYMLINK = 0o120777
CHAR_DEVICE = 0o020600


@dataclass(frozen=True)
class Entry:
    """One cpio member: `data` is the file's bytes or a symlink's target."""

    path: str
    mode: int
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


def cpio_newc(entries: Iterable[Entry]) -> bytes:
    """A cpio archive in the "newc" format, the one the kernel unpacks as initramfs."""
    out = bytearray()

    def member(number: int, entry: Entry) -> None:
        name = entry.path.encode() + b"\0"
        fields = (
            number,  # inode: unique per member, or the kernel takes them for hard links
            entry.mode,
            0,  # uid
            0,  # gid
            2 if entry.mode & 0o170000 == DIR else 1,
            0,  # mtime
            len(entry.data),
            0,  # devmajor
            0,  # devminor
            entry.rdev[0],
            entry.rdev[1],
            len(name),
            0,  # check
        )
        out.extend(b"070701" + b"".join(b"%08X" % value for value in fields) + name)
        out.extend(b"\0" * (-len(out) % 4))
        out.extend(entry.data)
        out.extend(b"\0" * (-len(out) % 4))

    for number, entry in enumerate(entries, start=1):
        member(number, entry)
    member(0, Entry("TRAILER!!!", 0))
    return bytes(out)


def module_depends(ko: bytes) -> list[str]:
    """The `depends=` of a kernel module's .modinfo section (what modinfo -F depends says)."""
    start = ko.find(b"\0depends=")
    if start < 0:
        return []
    end = ko.index(b"\0", start + 1)
    value = ko[start + len(b"\0depends=") : end].decode()
    return [name for name in value.split(",") if name]


def load_order(wanted: Sequence[str], depends: Mapping[str, Sequence[str]]) -> list[str]:
    """Modules to insmod, dependencies first; KeyError names a module that is missing."""
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in order:
            return
        if name in path:
            raise ValueError(f"module dependency cycle: {' -> '.join((*path, name))}")
        for dependency in depends[name]:
            visit(dependency, (*path, name))
        order.append(name)

    for name in wanted:
        visit(name, ())
    return order


def init_script(modules: Sequence[str], repo: str, python: str, pytest_args: Sequence[str]) -> str:
    """The guest's /init: mount the host's / over 9p and a cgroup2-only /sys/fs/cgroup, make it
    the root, run pytest there, print EXIT_MARK with its exit code (and the kernel log when it
    failed), and power off. Nothing mounts cgroup v1, so every controller is free for v2.

    switch_root rather than chroot: the kernel refuses user namespaces (bubblewrap's) to a
    process whose root is not its mount namespace's root."""
    command = " ".join(shlex.quote(arg) for arg in [python, "-m", "pytest", *pytest_args])
    env = (
        "env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp "
        "LANG=C.UTF-8 TERM=dumb PYTHONDONTWRITEBYTECODE=1 "
        "HYPOTHESIS_STORAGE_DIRECTORY=/tmp/hypothesis"  # the repo's .hypothesis is read-only
    )
    # Runs as pid 1 on the host's /, whose /bin/busybox is the one the initramfs holds (the
    # VM test requires busybox-static): its poweroff -f, as pid 1 must not exit.
    inside = (
        f"cd {shlex.quote(repo)} && {env} {command}; code=$?; "
        '[ "$code" -eq 0 ] || dmesg | tail -n 40; '
        f'echo "{EXIT_MARK}$code"; exec /bin/busybox poweroff -f'
    )
    inserts = "\n".join(f"insmod /modules/{name}.ko || fail insmod {name}" for name in modules)
    return f"""#!/bin/sh
export PATH=/bin
fail() {{ echo "{EXIT_MARK}init-failed: $*"; poweroff -f; }}
mount -t proc proc /proc && mount -t sysfs sys /sys && mount -t devtmpfs dev /dev || fail mounts
{inserts}
mkdir -p /host
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 host /host \\
  || fail 9p mount
mount -t tmpfs -o mode=1777 tmp /host/tmp && mount -t proc proc /host/proc \\
  && mount -t sysfs sys /host/sys && mount -t cgroup2 cgroup2 /host/sys/fs/cgroup \\
  && mount -t devtmpfs dev /host/dev || fail mounts on the host root
mkdir -p /host/dev/shm && mount -t tmpfs shm /host/dev/shm \
  && mount -t tmpfs -o mode=1777 vartmp /host/var/tmp && mount -t tmpfs run /host/run \
  || fail tmpfs mounts
# Tests talk over 127.0.0.1; nothing else of a network exists here.
ip link set lo up || fail loopback
# As on a systemd machine: controllers enabled at the root, the service (here pytest, which
# starts the agent's code) in a leaf below system.slice, never in the root cgroup itself.
cg=/host/sys/fs/cgroup
echo "+memory +pids +cpu" > $cg/cgroup.subtree_control || fail enabling controllers
mkdir -p $cg/system.slice/shoal-test.service
echo $$ > $cg/system.slice/shoal-test.service/cgroup.procs || fail moving into a leaf
echo "{START_MARK} uptime $(cut -d' ' -f1 /proc/uptime) s; in $(cut -d: -f3 /proc/self/cgroup);" \\
  "cgroup2 controllers: $(cat $cg/cgroup.controllers)"
exec switch_root /host /bin/sh -c {shlex.quote(inside)}
"""


def builtin_names(modules_builtin: str) -> set[str]:
    """Module names from a kernel's modules.builtin (`kernel/fs/9p/9p.ko` lines)."""
    return {Path(line).name.removesuffix(".ko") for line in modules_builtin.split()}


def kernel_modules(
    modules_dir: Path, wanted: Sequence[str], builtin: Collection[str] = ()
) -> dict[str, bytes]:
    """`wanted` (less those built into the kernel) and what they depend on, from the .ko files
    under `modules_dir`, in load order."""
    wanted = [name for name in wanted if name not in builtin]
    found = {path.name.removesuffix(".ko"): path for path in modules_dir.rglob("*.ko")}
    missing = [name for name in wanted if name not in found]
    if missing:
        raise FileNotFoundError(f"kernel modules {missing} not in {modules_dir}")
    blobs = {name: path.read_bytes() for name, path in found.items()}
    depends = {name: module_depends(blob) for name, blob in blobs.items()}
    return {name: blobs[name] for name in load_order(wanted, depends)}


def initramfs_entries(busybox: bytes, modules: Mapping[str, bytes], init: str) -> list[Entry]:
    """The guest's whole initramfs; `modules` in load order (the init script insmods them)."""
    entries = [Entry(d, DIR) for d in ("bin", "dev", "proc", "sys", "modules")]
    entries.append(Entry("dev/console", CHAR_DEVICE, rdev=(5, 1)))  # init's stdio before /dev
    entries.append(Entry("bin/busybox", FILE, busybox))
    # Every command the init script runs before switch_root (after it, the host's own).
    applets = ("sh", "mount", "insmod", "mkdir", "cat", "cut", "ip", "switch_root", "poweroff")
    entries.extend(Entry(f"bin/{applet}", SYMLINK, b"busybox") for applet in applets)
    entries.extend(Entry(f"modules/{name}.ko", 0o100644, blob) for name, blob in modules.items())
    entries.append(Entry("init", FILE, init.encode()))
    return entries
