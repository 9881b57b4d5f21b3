"""The guest initramfs' pure parts: the cpio writer (read back by busybox's own cpio), module
dependencies and load order, and the /init script (syntax-checked by busybox sh)."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
from pathlib import Path

import pytest
from initramfs import (
    CHAR_DEVICE,
    DIR,
    EXIT_MARK,
    FILE,
    SYMLINK,
    Entry,
    builtin_names,
    cpio_newc,
    init_script,
    initramfs_entries,
    kernel_modules,
    load_order,
    module_depends,
)
from vm_image import BUSYBOX


def busybox() -> str:
    if not BUSYBOX.exists():
        pytest.fail(f"{BUSYBOX} missing: run `make install` (Debian package busybox-static)")
    return str(BUSYBOX)


def modinfo(name: str, depends: str) -> bytes:
    """The strings a .ko's .modinfo section holds, amid other bytes."""
    return b"\x7fELF\0junk\0license=GPL\0depends=" + depends.encode() + b"\0name=" + name.encode()


def test_cpio_newc_is_read_back_by_busybox_cpio(tmp_path: Path) -> None:
    archive = cpio_newc(
        [
            Entry("bin", DIR),
            Entry("bin/tool", FILE, b"#!/bin/sh\necho hi\n"),
            Entry("bin/sh", SYMLINK, b"tool"),
            Entry("odd", 0o100644, b"12345"),  # a size that needs padding
        ]
    )
    assert len(archive) % 4 == 0
    (tmp_path / "a.cpio").write_bytes(archive)
    out = tmp_path / "out"
    out.mkdir()
    with (tmp_path / "a.cpio").open("rb") as stdin:
        subprocess.run([busybox(), "cpio", "-i", "-d"], stdin=stdin, cwd=out, check=True)
    assert (out / "bin" / "tool").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert stat.S_IMODE((out / "bin" / "tool").stat().st_mode) == 0o755
    assert os.readlink(out / "bin" / "sh") == "tool"
    assert (out / "odd").read_bytes() == b"12345"


def test_module_depends_reads_modinfo() -> None:
    assert module_depends(modinfo("9p", "9pnet,fscache,netfs")) == ["9pnet", "fscache", "netfs"]
    assert module_depends(modinfo("netfs", "")) == []
    assert module_depends(b"no modinfo at all") == []


def test_load_order_puts_dependencies_first_once() -> None:
    depends = {
        "9p": ["9pnet", "fscache", "netfs"],
        "fscache": ["netfs"],
        "netfs": [],
        "9pnet": [],
        "9pnet_virtio": ["virtio", "9pnet"],
        "virtio": [],
    }
    order = load_order(["9pnet_virtio", "9p"], depends)
    assert order == ["virtio", "9pnet", "9pnet_virtio", "netfs", "fscache", "9p"]
    with pytest.raises(KeyError):
        load_order(["9p"], {"9p": ["gone"]})
    with pytest.raises(ValueError, match="cycle"):
        load_order(["a"], {"a": ["b"], "b": ["a"]})


def test_kernel_modules_resolve_from_ko_files(tmp_path: Path) -> None:
    (tmp_path / "fs").mkdir()
    (tmp_path / "fs" / "9p.ko").write_bytes(modinfo("9p", "netfs"))
    (tmp_path / "netfs.ko").write_bytes(modinfo("netfs", ""))
    (tmp_path / "unused.ko").write_bytes(modinfo("unused", ""))
    assert list(kernel_modules(tmp_path, ["9p"])) == ["netfs", "9p"]
    with pytest.raises(FileNotFoundError, match="virtio_pci"):
        kernel_modules(tmp_path, ["virtio_pci"])
    # built into the kernel: nothing to load
    builtin = builtin_names("kernel/drivers/virtio/virtio_pci.ko\nkernel/fs/9p/9p.ko\n")
    assert builtin == {"virtio_pci", "9p"}
    assert kernel_modules(tmp_path, ["virtio_pci", "9p"], builtin) == {}


def test_init_script_parses_and_loads_modules_in_order(tmp_path: Path) -> None:
    script = init_script(["netfs", "9p"], "/repo dir", "/venv/bin/python", ["-v", "tests/x.py"])
    assert script.index("insmod /modules/netfs.ko") < script.index("insmod /modules/9p.ko")
    assert "mount -t cgroup2 cgroup2 /host/sys/fs/cgroup" in script
    assert "cgroup v1" not in script and "-t cgroup " not in script  # nothing binds v1
    switch = next(line for line in script.splitlines() if line.startswith("exec switch_root "))
    inside = shlex.split(shlex.split(switch)[-1])  # what the new root's sh runs, as it parses it
    assert inside[:3] == ["cd", "/repo dir", "&&"]
    run = inside.index("/venv/bin/python")
    assert inside[run : run + 5] == ["/venv/bin/python", "-m", "pytest", "-v", "tests/x.py;"]
    assert f'echo "{EXIT_MARK}$code"' in switch
    (tmp_path / "init").write_text(script)
    subprocess.run([busybox(), "sh", "-n", str(tmp_path / "init")], check=True)


def test_initramfs_has_a_console_busybox_and_init() -> None:
    entries = {e.path: e for e in initramfs_entries(b"BB", {"netfs": b"ko"}, "#!/bin/sh\n")}
    assert entries["dev/console"].mode == CHAR_DEVICE and entries["dev/console"].rdev == (5, 1)
    assert entries["bin/busybox"].data == b"BB"
    assert entries["bin/insmod"].mode == SYMLINK and entries["bin/insmod"].data == b"busybox"
    assert entries["modules/netfs.ko"].data == b"ko"
    assert entries["init"].mode == FILE
