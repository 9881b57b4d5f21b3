from __future__ import annotations

import pathlib
import subprocess

import pytest

from shoal.agent.sandbox.bwrap import (
    LAUNCH_SCRIPT,
    SandboxLayout,
    bwrap_argv,
    check_workdir,
    launcher_argv,
    sandbox_argv,
    setpriv_argv,
)
from shoal.agent.sandbox.identity import Identity

ID = Identity(200_123, 200_123)


def test_bwrap_isolates_and_keeps_host_network() -> None:
    argv = bwrap_argv(SandboxLayout(workdir="/srv/pod", hostname="web-1"))
    for flag in (
        "--unshare-user",
        "--disable-userns",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--new-session",
    ):
        assert flag in argv
    assert "--unshare-net" not in argv and "--unshare-all" not in argv
    assert "--die-with-parent" not in argv  # pods must survive an agent kill -9
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    assert argv[argv.index("--hostname") + 1] == "web-1"
    joined = " ".join(argv)
    assert "--ro-bind / /" in joined
    assert "--proc /proc" in joined and "--dev /dev" in joined and "--tmpfs /tmp" in joined
    assert "--bind /srv/pod /srv/pod" in joined
    assert argv[-2:] == ["--chdir", "/srv/pod"]


def test_masks_come_before_the_workdir_bind() -> None:
    layout = SandboxLayout(workdir="/var/lib/shoal/pods/u1", masked=("/var/lib/shoal",))
    argv = bwrap_argv(layout)
    mask = argv.index("/var/lib/shoal")
    bind = argv.index("--bind")
    assert argv[mask - 1] == "--tmpfs" and mask < bind
    assert argv.index("/") < mask  # the read-only root first


def test_setpriv_drops_everything_and_refuses_root() -> None:
    argv = setpriv_argv(ID)
    assert "--reuid=200123" in argv and "--regid=200123" in argv
    for flag in ("--clear-groups", "--no-new-privs", "--bounding-set=-all", "--inh-caps=-all"):
        assert flag in argv
    with pytest.raises(ValueError, match="root"):
        setpriv_argv(Identity(0, 0))
    with pytest.raises(ValueError, match="root"):
        setpriv_argv(Identity(200_000, 0))


def test_launcher_places_itself_then_execs() -> None:
    argv = launcher_argv(["/cg/a/cgroup.procs", "/cg/b/cgroup.procs"], ["true"])
    assert argv[:4] == ["/bin/sh", "-c", LAUNCH_SCRIPT, "sh"]
    assert argv[4:] == ["/cg/a/cgroup.procs", "/cg/b/cgroup.procs", "--", "true"]
    with pytest.raises(ValueError):
        launcher_argv(["--"], ["true"])


def test_whole_chain_order() -> None:
    argv = sandbox_argv(["python3", "-m", "http.server"], ID, SandboxLayout(workdir="/w"), ["/p"])
    setpriv = argv.index("setpriv")
    bwrap = argv.index("bwrap")
    assert argv.index("/p") < setpriv < bwrap
    # the pod's argv follows bwrap's own "--" and stays untouched
    assert argv[-4:] == ["--", "python3", "-m", "http.server"]


def test_launch_script_really_places_and_execs(tmp_path: pathlib.Path) -> None:
    base = tmp_path
    procs = base / "cgroup.procs"
    out = subprocess.run(
        launcher_argv([str(procs)], ["sh", "-c", "echo $$"]),
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    assert procs.read_text().strip() == out.stdout.strip()  # exec kept the pid
    bad = subprocess.run(
        launcher_argv([str(base / "missing" / "x")], ["true"]),
        timeout=10,
        capture_output=True,
        check=False,
    )
    assert bad.returncode == 125


def test_workdir_must_not_open_the_host() -> None:
    assert check_workdir("/srv/pods/u1") is None
    assert check_workdir("/var/lib/shoal/pods/u1", masked=["/var/lib/shoal"]) is None
    for bad in ("/", "/etc", "/usr/", "/tmp", "relative/dir"):
        assert check_workdir(bad) is not None, bad
    assert "expose" in (check_workdir("/data", masked=["/data/shoal"]) or "")
    assert "expose" in (check_workdir("/data/shoal", masked=["/data/shoal"]) or "")
