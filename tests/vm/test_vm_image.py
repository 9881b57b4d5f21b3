"""vm_image's pure parts: reading the guest's serial console, the qemu command line, and the
clear error (naming `make install`) when qemu, busybox or the kernel is missing."""

from __future__ import annotations

from pathlib import Path

import pytest
import vm_image
from initramfs import EXIT_MARK, START_MARK
from vm_image import VmUnavailable, check_installed, parse_console, qemu_argv

CONSOLE = (
    "[    0.000000] Linux version 6.1.0\r\n"
    f"{START_MARK} uptime 12.5 s; in /system.slice/x.service; cgroup2 controllers: cpu memory\r\n"
    "collecting ... collected 3 items\r\n"
    "tests/a/test_x.py::test_one PASSED [ 33%]\r\n"
    "tests/a/test_x.py::test_two[p] SKIPPED (no) [ 66%]\r\n"
    "tests/a/test_x.py::test_three FAILED [100%]\r\n"
    "FAILED tests/a/test_x.py::test_three - assert 1 == 2\r\n"
    "==== 1 failed, 1 passed, 1 skipped, 2 warnings in 41.20s (0:00:41) ====\r\n"
    "[   12.3] Memory cgroup out of memory: Killed process 114 (python)\r\n"
    f"{EXIT_MARK}1\r\n"
    "[   13.0] reboot: Power down\r\n"
)


def test_parse_console_reads_outcomes_controllers_and_exit_code() -> None:
    run = parse_console(CONSOLE)
    assert run.exit_code == 1
    assert run.controllers == ["cpu", "memory"]
    assert run.cgroup == "/system.slice/x.service"
    assert run.outcomes == {
        "tests/a/test_x.py::test_one": "PASSED",
        "tests/a/test_x.py::test_two[p]": "SKIPPED",
        "tests/a/test_x.py::test_three": "FAILED",
    }
    assert run.summary == {"failed": 1, "passed": 1, "skipped": 1, "warnings": 2}


def test_parse_console_without_an_exit_code() -> None:
    assert parse_console("[ 1.0] Kernel panic - not syncing\n").exit_code is None
    assert parse_console(f"{EXIT_MARK}init-failed: 9p mount\n").exit_code is None
    assert parse_console("==== 3 passed in 1.00s ====\n").summary == {"passed": 3}


def test_qemu_argv_is_tcg_with_a_read_only_host_root() -> None:
    argv = qemu_argv(Path("/k/vmlinuz"), Path("/t/initrd"))
    assert argv[argv.index("-accel") + 1] == "tcg"
    virtfs = argv[argv.index("-virtfs") + 1]
    assert "path=/," in virtfs and "readonly=on" in virtfs and "mount_tag=host" in virtfs
    append = argv[argv.index("-append") + 1]
    assert "cgroup_no_v1=all" in append and "console=ttyS0" in append
    assert argv[argv.index("-kernel") + 1] == "/k/vmlinuz"


def test_missing_kernel_names_make_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vm_image, "KERNEL_DIR", tmp_path / "nothing")
    with pytest.raises(VmUnavailable, match=r"test kernel in .*nothing.*make install"):
        check_installed()
