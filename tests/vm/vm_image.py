"""Boots Debian's kernel under qemu (TCG: software emulation, no KVM needed) with the host's /
mounted read-only over 9p and a cgroup2-only hierarchy, runs pytest inside, and reads back what
the guest printed on its serial console.

Called by test_cgroup2_vm.py (the e2e test) and unit-tested by test_vm_image.py (the console
parser, the qemu command line). The kernel comes from scripts/fetch-test-kernel.sh, qemu and
busybox-static from scripts/install-system-packages.sh: both run by `make install`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from initramfs import (
    EXIT_MARK,
    START_MARK,
    WANTED_MODULES,
    builtin_names,
    cpio_newc,
    init_script,
    initramfs_entries,
    kernel_modules,
)

KERNEL_DIR = Path(os.environ.get("SHOAL_VM_KERNEL_DIR", "/var/cache/shoal-vm/kernel"))
BUSYBOX = Path("/bin/busybox")
QEMU = "qemu-system-x86_64"
# No cgroup v1 at all, so memory/cpu/pids can only be bound to the v2 tree; loglevel 3 keeps
# the OOM killer's reports (which tests provoke) off the console that carries pytest's output.
KERNEL_ARGS = (
    "console=ttyS0 panic=-1 loglevel=3 cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1"
)
OUTCOME = re.compile(r"^(\S+::\S+) (PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)\b")
# pytest's last line, e.g. `==== 57 passed, 1 skipped, 2 warnings in 41.20s (0:00:41) ====`
SUMMARY = re.compile(r"^=+ (\d+ \w+(?:, \d+ \w+)*) in [\d.]+s\b.*=+$")


class VmUnavailable(Exception):
    """qemu, busybox-static or the test kernel is missing; the message says to `make install`."""


@dataclass(frozen=True)
class GuestRun:
    """What the guest reported: pytest's exit code (None if it never got there) and outcomes."""

    exit_code: int | None
    outcomes: dict[str, str] = field(default_factory=dict)
    # pytest's own count per outcome (`passed`, `skipped`, `warnings`...), from its last line:
    # it counts tests whose -v line the console may have garbled or lost.
    summary: dict[str, int] = field(default_factory=dict)
    controllers: list[str] = field(default_factory=list)
    cgroup: str = ""  # where the guest's pytest ran, as /proc/self/cgroup says
    console: str = ""
    seconds: float = 0.0


def parse_console(text: str) -> GuestRun:
    """The guest's serial output -> exit code, `test id -> PASSED/...` (pytest -v lines) and
    pytest's summary counts."""
    exit_code: int | None = None
    outcomes: dict[str, str] = {}
    summary: dict[str, int] = {}
    controllers: list[str] = []
    cgroup = ""
    for raw in text.splitlines():
        line = raw.strip("\r")
        if line.startswith(START_MARK):
            controllers = line.partition("controllers:")[2].split()
            cgroup = line.partition("; in ")[2].partition(";")[0]
        elif line.startswith(EXIT_MARK):
            value = line[len(EXIT_MARK) :].strip()
            exit_code = int(value) if value.isdigit() else None
        elif match := OUTCOME.match(line):
            outcomes[match.group(1)] = match.group(2)
        elif match := SUMMARY.match(line):
            counts = (part.split(" ") for part in match.group(1).split(", "))
            summary = {name: int(count) for count, name in counts}
    return GuestRun(exit_code, outcomes, summary, controllers, cgroup, text)


def qemu_argv(kernel: Path, initrd: Path, memory_mb: int = 1024) -> list[str]:
    """One vCPU (TCG runs it on one host core), no default devices, the host's / as 9p.

    TCG always: this kind of machine has a /dev/kvm, but a KVM guest hangs in early boot there
    (nested virtualisation), and TCG takes about a minute for the whole run."""
    return [
        QEMU,
        "-accel", "tcg",
        "-cpu", "max",
        "-smp", "1",
        "-m", str(memory_mb),
        "-nodefaults",
        "-no-user-config",
        "-display", "none",
        "-serial", "stdio",
        "-no-reboot",
        "-kernel", str(kernel),
        "-initrd", str(initrd),
        "-append", KERNEL_ARGS,
        "-virtfs",
        "local,path=/,mount_tag=host,security_model=passthrough,readonly=on,multidevs=remap",
    ]  # fmt: skip


def check_installed() -> None:
    """Raise VmUnavailable naming what is missing and how to get it."""
    missing = []
    if shutil.which(QEMU) is None:
        missing.append(f"{QEMU} (Debian package qemu-system-x86)")
    if not BUSYBOX.exists() or b"/ld-linux" in BUSYBOX.read_bytes()[:4096]:
        missing.append(f"a static {BUSYBOX} (Debian package busybox-static)")
    if not (KERNEL_DIR / "vmlinuz").exists():
        missing.append(f"the test kernel in {KERNEL_DIR} (scripts/fetch-test-kernel.sh)")
    if missing:
        raise VmUnavailable(
            "the cgroup v2 VM test needs " + "; ".join(missing) + ": run `make install` as root"
        )


def run_pytest_in_vm(
    repo: Path, python: str, pytest_args: Sequence[str], workdir: Path, timeout: float
) -> GuestRun:
    """Boot the guest, run `python -m pytest ARGS` in `repo` there, power off; qemu is killed
    (by pid) if the guest is not done within `timeout` seconds."""
    check_installed()
    builtin_file = KERNEL_DIR / "modules.builtin"
    builtin = builtin_names(builtin_file.read_text()) if builtin_file.exists() else set()
    modules = kernel_modules(KERNEL_DIR / "modules", WANTED_MODULES, builtin)
    init = init_script(list(modules), str(repo), python, pytest_args)
    initrd = workdir / "initramfs.cpio"
    initrd.write_bytes(cpio_newc(initramfs_entries(BUSYBOX.read_bytes(), modules, init)))
    log = workdir / "console.log"
    started = time.monotonic()
    with log.open("wb") as out:
        qemu = subprocess.Popen(
            qemu_argv(KERNEL_DIR / "vmlinuz", initrd),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            qemu.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        finally:  # also when pytest-timeout interrupts the wait
            if qemu.poll() is None:
                qemu.kill()
                qemu.wait()
    seconds = time.monotonic() - started
    return replace(parse_console(log.read_text(errors="replace")), seconds=seconds)
