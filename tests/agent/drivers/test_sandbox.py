"""SandboxDriver with real processes (root, bubblewrap, cgroups): what a pod cannot do, limits
that hold (fork bomb, OOM), stop leaving nothing behind, re-adoption; translate_exit is pure.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import psutil
import pytest

from shoal.agent.drivers import sandbox as sandbox_module
from shoal.agent.drivers.base import ExitStatus, Limits, ProcessSpec, StartError, TaskHandle
from shoal.agent.drivers.sandbox import (
    REASON_OOM_KILLED,
    REASON_UNAVAILABLE,
    SandboxDriver,
    driver_name_for,
    translate_exit,
    unreachable_ancestor,
)
from shoal.agent.ports import PortAllocator
from shoal.agent.sandbox.availability import sandbox_available
from shoal.agent.sandbox.cgroups import PodCgroupV2, pod_cgroup_from_state
from shoal.agent.sandbox.identity import Identity

SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
PY = shutil.which("python3", path=SYSTEM_PATH) or "python3"
LIMIT = 20.0
AVAILABLE, WHY = sandbox_available()
needs_sandbox = pytest.mark.skipif(not AVAILABLE, reason=f"no sandbox: {WHY}")

HTTP_APP = textwrap.dedent(
    """
    import http.server, os
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = os.environ["SHOAL_POD_NAME"].encode()
            self.send_response(200); self.send_header("Content-Length", str(len(body)))
            self.end_headers(); self.wfile.write(body)
        def log_message(self, *args):
            pass
    http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
    """
)

# Each attempt prints one JSON line {"name": ..., "blocked": bool, "detail": ...}.
ESCAPES = textwrap.dedent(
    """
    import ctypes, fcntl, json, os, socket, subprocess, termios
    results = {}
    def attempt(name, fn):
        try:
            detail = fn()
            results[name] = (False, repr(detail))
        except Exception as error:
            results[name] = (True, repr(error))
    def read_shadow():
        return open("/etc/shadow").read()[:10]
    def write(path):
        with open(path, "w") as f:
            f.write("x")
        return path
    def host_procs():
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
        if int(os.environ["AGENT_PID"]) in pids or len(pids) > 5:
            return pids
        raise RuntimeError(f"only {pids}")
    def run_ok(argv):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        if done.returncode != 0:
            raise RuntimeError(done.returncode, done.stderr.strip()[-200:])
        return done.stdout.strip()
    def setuid_root():
        out = run_ok([os.environ["SUID_ID"]])
        if "euid=0" in out or out.startswith("uid=0"):
            return out
        raise RuntimeError(out)
    def ptrace_neighbour():
        libc = ctypes.CDLL(None, use_errno=True)
        pid = int(os.environ["NEIGHBOUR_PID"])
        if libc.ptrace(16, pid, None, None) == 0:  # PTRACE_ATTACH
            return "attached"
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    def raw_socket():
        return socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    def tiocsti(fd_source):
        fd = os.open("/dev/tty", os.O_RDWR) if fd_source == "tty" else 0
        fcntl.ioctl(fd, termios.TIOCSTI, b"x")
        return "injected"
    attempt("read /etc/shadow", read_shadow)
    attempt("write /etc", lambda: write("/etc/shoal-escape"))
    attempt("write /usr", lambda: write("/usr/shoal-escape"))
    attempt("write host dir", lambda: write(os.environ["HOST_DIR"] + "/escape"))
    attempt("see host processes", host_procs)
    attempt("setuid copy", setuid_root)
    attempt("su", lambda: run_ok(["su", "-c", "id", "root"]))
    attempt("mount", lambda: run_ok(["mount", "-t", "tmpfs", "none", "/tmp"]))
    attempt("nested userns mount", lambda: run_ok(["unshare", "-rm", "true"]))
    attempt("ptrace neighbour", ptrace_neighbour)
    attempt("raw socket", raw_socket)
    attempt("TIOCSTI stdin", lambda: tiocsti("stdin"))
    attempt("TIOCSTI /dev/tty", lambda: tiocsti("tty"))
    # positive controls: what a pod may do
    allowed = {
        "write workdir": write("own-file"),
        "write /tmp": write("/tmp/own-file"),
        "uid": os.getuid(),
        "caps": [l for l in open("/proc/self/status") if l.startswith("CapEff")][0].split()[1],
    }
    print(json.dumps({"results": results, "allowed": allowed}), flush=True)
    """
)


def searchable_directory(prefix: str) -> Path:
    """A fresh directory every uid may enter (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(dir="/var/tmp", prefix=prefix))
    path.chmod(0o755)
    return path


@pytest.fixture
def pods_root() -> Iterator[Path]:
    path = searchable_directory("shoal-test-pods-")
    yield path
    shutil.rmtree(path)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """Stands for the agent's data directory: readable by anyone, so only the mask hides it."""
    path = searchable_directory("shoal-test-data-")
    (path / "secret").write_text("agent secret")
    yield path
    shutil.rmtree(path)


@pytest.fixture
async def driver(data_dir: Path) -> AsyncIterator[SandboxDriver]:
    parent = f"shoal-test-{os.getpid()}"
    sandbox_driver = SandboxDriver("node-t", masked_dirs=[data_dir], cgroup_parent=parent)
    yield sandbox_driver
    for handle in sandbox_driver.managed():
        await sandbox_driver.stop(handle, 0)
        cgroup = pod_cgroup_from_state(handle.driver_state)
        assert cgroup is not None
        assert not cgroup.pids()
        assert_removed(cgroup.to_state())
    sandbox_driver.remove_node_cgroups()


def pod_spec(pods_root: Path, name: str, argv: list[str], **changes: object) -> ProcessSpec:
    workdir = pods_root / name
    workdir.mkdir()
    workdir.chmod(0o777)  # the pod's uid must be able to write its own directory
    spec = ProcessSpec(
        argv=argv,
        cwd=workdir,
        log_path=pods_root / "logs" / f"{name}.log",
        pod_uid=f"uid-{name}",
        pod_name=name,
        owner=name,
        env={"PATH": SYSTEM_PATH},
    )
    return replace(spec, **changes)  # type: ignore[arg-type]


async def start(driver: SandboxDriver, spec: ProcessSpec) -> TaskHandle:
    handle = await driver.start(spec)
    assert isinstance(handle, TaskHandle), handle
    return handle


async def wait_for(path: Path, text: str) -> str:
    for _ in range(int(LIMIT / 0.02)):
        content = read(path)
        if text in content:
            return content
        await asyncio.sleep(0.02)
    raise AssertionError(f"{text!r} never appeared in {path}")


async def wait_http(port: int) -> str:
    async with httpx.AsyncClient() as client:
        for _ in range(int(LIMIT / 0.02)):
            try:
                return (await client.get(f"http://127.0.0.1:{port}/", timeout=1)).text
            except httpx.TransportError:
                await asyncio.sleep(0.02)
    raise AssertionError(f"nothing answered on {port}")


def assert_removed(cgroup_state: dict[str, object]) -> None:
    paths = [cgroup_state.get("cgroup_path")]
    dirs = cgroup_state.get("cgroup_dirs")
    if isinstance(dirs, dict):
        paths += list(dirs.values())
    for path in paths:
        assert path is None or not os.path.exists(str(path)), f"cgroup {path} left behind"


def read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def gone(pids: list[int], within: float = 5.0) -> bool:
    """Every pid exited (a zombie awaiting its reaper counts as gone). A killed process leaves
    its cgroup before it finishes exiting (freeing its memory), so a stop that waited for an
    empty cgroup may return a moment before the last one is a zombie: allow `within` seconds
    for that, far below the 60 s a survivor would live."""
    deadline = time.monotonic() + within
    while True:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                continue
        if not alive or time.monotonic() > deadline:
            return not alive
        pids = alive
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("raw", "oom", "expected"),
    [
        ((0, None, "Completed"), 0, (0, None, "Completed")),
        ((3, None, "Error"), 0, (3, None, "Error")),
        ((137, None, "Error"), 0, (None, 9, "Error")),
        ((137, None, "Error"), 1, (None, 9, REASON_OOM_KILLED)),
        ((None, None, "UnknownExit"), 2, (None, None, REASON_OOM_KILLED)),
        ((0, None, "Completed"), 1, (0, None, "Completed")),
        ((125, None, "Error"), 0, (125, None, "SandboxError")),
    ],
)
def test_translate_exit(
    raw: tuple[int | None, int | None, str], oom: int, expected: tuple[object, ...]
) -> None:
    status = translate_exit(ExitStatus(raw[0], raw[1], raw[2], 1.0, 2.0), oom)
    assert (status.exit_code, status.signal, status.reason) == expected


async def test_unavailable_sandbox_fails_clearly(
    pods_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        sandbox_module, "sandbox_available", lambda: (False, "bubblewrap not installed")
    )
    result = await SandboxDriver("n").start(pod_spec(pods_root, "p", ["true"]))
    assert isinstance(result, StartError)
    assert result.reason == REASON_UNAVAILABLE
    assert "bubblewrap not installed" in result.message
    assert "isolation: none" in result.message


@pytest.mark.e2e
@needs_sandbox
async def test_pod_cannot_escape(driver: SandboxDriver, pods_root: Path) -> None:
    neighbour = await start(driver, pod_spec(pods_root, "neighbour", ["sleep", "60"]))
    spec = pod_spec(pods_root, "attacker", [PY, "-c", ESCAPES])
    # A setuid-root copy of `id` in the pod's own directory; outside a sandbox it gives euid=0
    # (test_setuid_copy_would_work_outside_the_sandbox).
    suid = spec.cwd / "suid-id"
    shutil.copy(shutil.which("id", path=SYSTEM_PATH) or "id", suid)
    os.chown(suid, 0, 0)
    suid.chmod(0o4755)
    assert suid.stat().st_mode & stat.S_ISUID
    # A world-writable host directory outside /tmp: only the read-only root protects it.
    with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="shoal-escape-") as host_dir:
        os.chmod(host_dir, 0o777)
        env = {
            **spec.env,
            "AGENT_PID": str(os.getpid()),
            "NEIGHBOUR_PID": str(neighbour.pid),
            "HOST_DIR": host_dir,
            "SUID_ID": str(suid),
        }
        handle = await start(driver, replace(spec, env=env))
        status = await asyncio.wait_for(driver.wait(handle), LIMIT)
        assert os.listdir(host_dir) == []
    log = spec.log_path.read_text()
    assert status.exit_code == 0, log
    report = json.loads(log.strip().splitlines()[-1])
    escaped = {name: detail for name, (blocked, detail) in report["results"].items() if not blocked}
    assert escaped == {}
    assert len(report["results"]) == 13
    allowed = report["allowed"]
    assert allowed["uid"] == handle.driver_state["uid"] and allowed["uid"] >= 200_000
    assert allowed["caps"] == "0000000000000000"
    assert (spec.cwd / "own-file").read_text() == "x"  # the workdir is the host's


@pytest.mark.e2e
@needs_sandbox
async def test_agent_data_is_masked_and_exit_codes_pass_through(
    driver: SandboxDriver, pods_root: Path, data_dir: Path
) -> None:
    secret = data_dir / "secret"
    script = f"import os,sys; print(os.listdir({str(secret.parent)!r})); sys.exit(3)"
    spec = pod_spec(pods_root, "masked", [PY, "-c", script])
    status = await asyncio.wait_for(driver.wait(await start(driver, spec)), LIMIT)
    assert (status.exit_code, status.signal) == (3, None)
    assert "[]" in spec.log_path.read_text()
    spec = pod_spec(pods_root, "signalled", ["sh", "-c", "kill -TERM $$"])
    status = await asyncio.wait_for(driver.wait(await start(driver, spec)), LIMIT)
    assert (status.exit_code, status.signal) == (None, signal.SIGTERM)


@pytest.mark.e2e
@needs_sandbox
async def test_fork_bomb_is_contained_and_neighbour_answers(
    driver: SandboxDriver, pods_root: Path
) -> None:
    port = PortAllocator().allocate("web")[""]
    web = pod_spec(pods_root, "web", [PY, "-c", HTTP_APP], ports={"": port}, primary_port=port)
    await start(driver, web)
    assert await wait_http(port) == "web"
    bomb = textwrap.dedent(
        """
        import os, time
        born = refused = 0
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and refused < 200:
            try:
                if os.fork() == 0:
                    time.sleep(60); os._exit(0)
                born += 1
            except OSError:
                refused += 1
        print("born", born, "refused", refused, flush=True)
        time.sleep(60)
        """
    )
    spec = pod_spec(pods_root, "bomb", [PY, "-c", bomb], limits=Limits(pids=50))
    handle = await start(driver, spec)
    log = await wait_for(spec.log_path, "refused")
    born = int(log.split()[1])
    assert born < 50 and "refused 200" in log
    assert driver.usage(handle).pids <= 50
    assert await wait_http(port) == "web"  # the neighbour still answers
    pids = (await driver.inspect(handle)).pids
    await driver.stop(handle, 1)
    assert gone(pids)


@pytest.mark.e2e
@needs_sandbox
async def test_twice_the_memory_limit_is_oom_killed(driver: SandboxDriver, pods_root: Path) -> None:
    code = "b = bytearray(128 << 20)\nimport time; time.sleep(30)"
    spec = pod_spec(pods_root, "hog", [PY, "-c", code], limits=Limits(memory_bytes=64 << 20))
    status = await asyncio.wait_for(driver.wait(await start(driver, spec)), LIMIT)
    assert status.reason == REASON_OOM_KILLED
    assert status.signal == signal.SIGKILL
    assert status.message == "1 process(es) killed at the pod's memory limit"


def demoted(handle: TaskHandle) -> bool:
    """The pod's CPU is idle: on v1 its processes are in the demoted cpu cgroup, on v2 its own
    cgroup has cpu.idle=1."""
    cgroup = pod_cgroup_from_state(handle.driver_state)
    if isinstance(cgroup, PodCgroupV2):
        idle = cgroup.path / "cpu.idle"
        return idle.exists() and idle.read_text().strip() == "1"
    assert cgroup is not None and cgroup.demoted_cpu is not None
    procs = cgroup.demoted_cpu / "cgroup.procs"
    return procs.exists() and bool(procs.read_text().split())


async def until_demoted(handle: TaskHandle) -> None:
    deadline = time.monotonic() + LIMIT
    while not demoted(handle):
        assert time.monotonic() < deadline, "the pod was not demoted"
        await asyncio.sleep(0.05)


@pytest.mark.e2e
@needs_sandbox
async def test_a_pod_that_is_oom_killed_yields_the_cpu(
    driver: SandboxDriver, pods_root: Path
) -> None:
    limits = Limits(memory_bytes=64 << 20, cpu_millis=500, cpu_request_millis=500)
    # A healthy pod is never demoted.
    calm = await start(
        driver,
        pod_spec(pods_root, "calm", [PY, "-c", "import time; time.sleep(60)"], limits=limits),
    )
    # A pod whose children allocate twice its memory limit: demoted at the first OOM kill.
    loop = (
        "import os, time\n"
        "while True:\n"
        "    child = os.fork()\n"
        "    if child == 0:\n"
        "        b = b'x' * (128 << 20); os._exit(0)\n"
        "    os.waitpid(child, 0); time.sleep(0.2)\n"
    )
    looper = await start(driver, pod_spec(pods_root, "looper", [PY, "-c", loop], limits=limits))
    await until_demoted(looper)
    assert not demoted(calm)
    await driver.stop(looper, 0)
    # A run that ends OOM-killed: the pod's next run (same uid) is demoted from its start.
    spec = pod_spec(
        pods_root,
        "hog",
        [PY, "-c", "b = bytearray(128 << 20)\nimport time; time.sleep(60)"],
        limits=limits,
    )
    hog = await start(driver, spec)
    status = await asyncio.wait_for(driver.wait(hog), LIMIT)
    assert status.reason == REASON_OOM_KILLED
    await driver.stop(hog, 0)  # as the agent does before a restart
    again = await start(driver, replace(spec, argv=[PY, "-c", "import time; time.sleep(60)"]))
    await until_demoted(again)
    assert not demoted(calm)


@pytest.mark.e2e
@needs_sandbox
async def test_stop_leaves_no_daemon_and_usage_is_read(
    driver: SandboxDriver, pods_root: Path
) -> None:
    code = textwrap.dedent(
        """
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(120)
            os._exit(0)
        print("daemonized", flush=True)
        time.sleep(120)
        """
    )
    spec = pod_spec(pods_root, "daemon", [PY, "-c", code], limits=Limits(cpu_millis=500))
    handle = await start(driver, spec)
    await wait_for(spec.log_path, "daemonized")
    info = await driver.inspect(handle)
    assert info.running and len(info.pids) >= 4  # bwrap, bwrap init, leader, daemon
    usage = driver.usage(handle)
    assert usage.memory_bytes > 0 and usage.pids >= len(info.pids)  # + unreaped zombies
    assert driver.usage_all()[spec.pod_uid].pids >= len(info.pids)
    cgroup = pod_cgroup_from_state(handle.driver_state)
    assert cgroup is not None
    if cgroup.version == 1:  # the default pids limit applies when the pod sets none
        assert cgroup.to_state()["cgroup_dirs"]["pids"]
        pids_max = Path(cgroup.to_state()["cgroup_dirs"]["pids"]) / "pids.max"
        assert pids_max.read_text().strip() == "4096"
    status = await driver.stop(handle, 5)
    assert status.signal == signal.SIGTERM  # the leader got SIGTERM, not bwrap
    assert gone(info.pids)


@pytest.mark.e2e
@needs_sandbox
async def test_readoption_after_agent_restart(driver: SandboxDriver, pods_root: Path) -> None:
    port = PortAllocator().allocate("readopt")[""]
    spec = pod_spec(pods_root, "readopt", [PY, "-c", HTTP_APP], ports={"": port}, primary_port=port)
    handle = await start(driver, spec)
    assert await wait_http(port) == "readopt"
    persisted = json.loads(json.dumps(handle.to_json()))
    restarted = SandboxDriver("node-t", cgroup_parent=f"shoal-test-{os.getpid()}")
    recovered = await restarted.recover(TaskHandle.from_json(persisted))
    assert isinstance(recovered, TaskHandle)
    assert recovered.pid == handle.pid
    assert (await restarted.inspect(recovered)).running
    assert restarted.usage(recovered).pids >= 3
    pids = (await restarted.inspect(recovered)).pids
    await restarted.stop(recovered, 5)
    assert gone(pids)
    status = await asyncio.wait_for(driver.wait(handle), LIMIT)  # the old instance saw it too
    assert status.finished_at >= status.started_at
    await driver.stop(handle, 0)


def test_setuid_copy_would_work_outside_the_sandbox(tmp_path: Path) -> None:
    """Control for test_pod_cannot_escape: the same setuid binary does give root to the same
    kind of uid when it runs without the sandbox (so that test can fail)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv")
    with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="shoal-suid-") as directory:
        Path(directory).chmod(0o755)
        suid = Path(directory) / "suid-id"
        shutil.copy(shutil.which("id", path=SYSTEM_PATH) or "id", suid)
        suid.chmod(0o4755)
        done = subprocess.run(
            ["setpriv", "--reuid=200000", "--regid=200000", "--clear-groups", str(suid)],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    assert "euid=0" in done.stdout


@pytest.mark.e2e
@needs_sandbox
async def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(
    driver: SandboxDriver, pods_root: Path
) -> None:
    code = "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"  # noqa: E501
    spec = pod_spec(pods_root, "stubborn", [PY, "-c", code])
    handle = await start(driver, spec)
    await wait_for(spec.log_path, "up")
    pids = (await driver.inspect(handle)).pids
    status = await asyncio.wait_for(driver.stop(handle, 0.3), LIMIT)
    assert status.signal == signal.SIGKILL
    assert gone(pids)


def test_isolation_selects_the_driver() -> None:
    assert driver_name_for("none") == "process"
    assert driver_name_for("sandbox") == "sandbox"
    assert driver_name_for(None) == "sandbox"  # never a silent downgrade


def test_workdir_must_be_reachable_by_the_pod_uid(pods_root: Path) -> None:
    identity = Identity(200_321, 200_321)
    private = pods_root / "private"
    private.mkdir(mode=0o700)
    (private / "work").mkdir()
    assert unreachable_ancestor(pods_root, identity) is None
    problem = unreachable_ancestor(private / "work", identity)
    assert problem is not None and str(private) in problem and "chmod o+x" in problem
    os.chown(private, identity.uid, identity.gid)  # its own directory is fine
    assert unreachable_ancestor(private / "work", identity) is None


AGENT = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path
    from shoal.agent.drivers.base import Limits, ProcessSpec
    from shoal.agent.drivers.sandbox import SandboxDriver
    async def main():
        fields = json.loads(sys.argv[1])
        spec = ProcessSpec(**{**fields, "cwd": Path(fields["cwd"]),
                              "log_path": Path(fields["log_path"]),
                              "limits": Limits(**fields["limits"])})
        driver = SandboxDriver("node-t", cgroup_parent=sys.argv[2],
                               oom_ledger_dir=Path(sys.argv[3]))
        handle = await driver.start(spec)
        print(json.dumps(handle.to_json()), flush=True)
        await asyncio.sleep(120)
    asyncio.run(main())
    """
)


@contextlib.asynccontextmanager
async def agent_process(
    spec: ProcessSpec, ledgers: Path
) -> AsyncIterator[tuple[asyncio.subprocess.Process, TaskHandle]]:
    """A SandboxDriver in another process (an agent to `kill -9`) that started `spec`: (that
    process, the pod's handle). At exit the process is killed if still running, and the pod,
    unless a driver of this process manages it, is taken down through its cgroup."""
    fields = {
        "argv": spec.argv,
        "cwd": str(spec.cwd),
        "log_path": str(spec.log_path),
        "pod_uid": spec.pod_uid,
        "pod_name": spec.pod_name,
        "owner": spec.owner,
        "env": dict(spec.env),
        "primary_port": spec.primary_port,
        "limits": dataclasses.asdict(spec.limits),
    }
    parent = f"shoal-test-{os.getpid()}"
    agent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", AGENT, json.dumps(fields), parent, str(ledgers),
        stdout=subprocess.PIPE,
    )  # fmt: skip
    handle: TaskHandle | None = None
    try:
        assert agent.stdout is not None
        line = await asyncio.wait_for(agent.stdout.readline(), LIMIT)
        handle = TaskHandle.from_json(json.loads(line))
        yield agent, handle
    finally:
        if agent.returncode is None:
            agent.kill()
            await agent.wait()
        cgroup = None if handle is None else pod_cgroup_from_state(handle.driver_state)
        if cgroup is not None and cgroup.pids():  # the test failed half-way
            await cgroup.kill_all()
            await cgroup.remove()


@pytest.mark.e2e
@needs_sandbox
async def test_pod_survives_agent_kill_9_and_is_readopted(
    driver: SandboxDriver, pods_root: Path
) -> None:
    port = PortAllocator().allocate("survivor")[""]
    spec = pod_spec(pods_root, "survivor", [PY, "-c", HTTP_APP], primary_port=port)
    async with agent_process(spec, pods_root / "ledgers") as (agent, handle):
        assert await wait_http(port) == "survivor"
        agent.kill()  # kill -9: no cleanup runs in the agent
        await asyncio.wait_for(agent.wait(), LIMIT)
        assert await wait_http(port) == "survivor"  # the pod outlived its agent
        recovered = await driver.recover(handle)
        assert isinstance(recovered, TaskHandle)
        pids = (await driver.inspect(recovered)).pids
        assert len(pids) >= 3
        status = await asyncio.wait_for(driver.stop(recovered, 5), LIMIT)
        assert status.reason == "UnknownExit"  # not our child: its exit code is unknowable
        assert gone(pids)


# A small parent whose child allocates twice the pod's limit (the OOM victim); the parent
# reports the child's end, lingers (so a test can kill -9 the agent first), then exits 1.
OOM_CHILD = textwrap.dedent(
    """
    import os, sys, time
    child = os.fork()
    if child == 0:
        b = bytearray(128 << 20)
        os._exit(0)
    _, status = os.waitpid(child, 0)
    print("child signal", os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0, flush=True)
    time.sleep(float(sys.argv[1]))
    sys.exit(1)
    """
)


@pytest.mark.e2e
@needs_sandbox
@pytest.mark.parametrize("exits_while_down", [False, True], ids=["readopted", "exited-meanwhile"])
async def test_an_oom_kill_just_before_an_agent_kill_9_still_reads_oomkilled(
    pods_root: Path, data_dir: Path, exits_while_down: bool
) -> None:
    """On cgroup v1 the agent kills at the limit (no kernel counter moves): its kill must outlive
    the agent, whether the next agent finds the pod running or already ended. (On v2 the
    kernel kills and counts, and this holds through the cgroup's counter.)"""
    linger = "3" if exits_while_down else "120"
    limits = Limits(memory_bytes=64 * 2**20, pids=20)
    spec = pod_spec(pods_root, "oom-before-crash", [PY, "-c", OOM_CHILD, linger], limits=limits)
    ledgers = data_dir / "oom-kills"
    async with agent_process(spec, ledgers) as (agent, handle):
        assert "child signal 9" in await wait_for(spec.log_path, "child signal")
        agent.kill()  # kill -9 right after its OOM kill, before the run ends
        await asyncio.wait_for(agent.wait(), LIMIT)
        parent = f"shoal-test-{os.getpid()}"
        restarted = SandboxDriver("node-t", cgroup_parent=parent, oom_ledger_dir=ledgers)
        if exits_while_down:
            assert gone([handle.pid], within=LIMIT)
            status = await restarted.recover(handle)
            assert isinstance(status, ExitStatus), status
        else:
            recovered = await restarted.recover(handle)
            assert isinstance(recovered, TaskHandle)
            status = await asyncio.wait_for(restarted.stop(recovered, 5), LIMIT)
        assert status.reason == REASON_OOM_KILLED, status
        assert status.message == "1 process(es) killed at the pod's memory limit"
        assert not (ledgers / spec.pod_uid).exists()  # counted once, then forgotten
        restarted.remove_node_cgroups()


@pytest.mark.e2e
@needs_sandbox
async def test_pod_directories_under_pods_root_are_handed_to_the_pod(
    pods_root: Path, data_dir: Path
) -> None:
    parent = f"shoal-test-{os.getpid()}"
    driver = SandboxDriver(
        "node-t", masked_dirs=[data_dir], pods_root=pods_root, cgroup_parent=parent
    )
    workdir = pods_root / "owned"
    workdir.mkdir(mode=0o755)
    spec = replace(pod_spec(pods_root, "owned-pod", ["sh", "-c", "echo hi > mine"]), cwd=workdir)
    try:
        handle = await start(driver, spec)
        status = await asyncio.wait_for(driver.wait(handle), LIMIT)
        assert status.exit_code == 0, read(spec.log_path)
        assert workdir.stat().st_uid == handle.driver_state["uid"]
        assert (workdir / "mine").read_text() == "hi\n"
        await driver.stop(handle, 0)
    finally:
        for leftover in driver.managed():
            await driver.stop(leftover, 0)
        driver.remove_node_cgroups()
