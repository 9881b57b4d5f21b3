"""shoal's cgroup v2 limits on a real kernel: boots Debian's kernel under qemu with a cgroup2-only
hierarchy (memory, cpu and pids free for it) and runs the sandbox tests there with the project's
own python over a read-only 9p view of this machine's /, requiring every one of them to pass:
- tests/agent/sandbox/test_cgroups_v2.py: PodCgroupV2 itself, its limit tests included (they
  skip on this hybrid v1/v2 host);
- tests/agent/sandbox/test_cgroups.py: its `test_real_*` tests, on the hierarchy the agent
  detects (v2 in the guest, v1 here);
- tests/agent/drivers/test_sandbox.py: the sandbox driver (bubblewrap, setpriv, OOMKilled, fork
  bomb, stop, re-adoption) on v2.

One source of truth: the guest runs the same modules as the host. ~65 s under TCG (software
emulation, one host core). Run alone with `make test-cgroup2`; qemu, busybox-static and the
kernel come from `make install` (vm_image.check_installed says so when they are missing).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from vm_image import VmUnavailable, run_pytest_in_vm

REPO = Path(__file__).resolve().parents[2]
MODULES = (
    "tests/agent/sandbox/test_cgroups_v2.py",
    "tests/agent/sandbox/test_cgroups.py",
    "tests/agent/drivers/test_sandbox.py",
)
LIMIT_TESTS = {
    "test_v2_limits_where_the_controllers_are",
    "test_v2_limits_pids_max_stops_a_fork_bomb",
    "test_v2_limits_cpu_quota_throttles_and_usage_is_read",
    "test_v2_limits_kill_all_takes_a_setsid_daemon",
}


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_cgroup_v2_module_passes_in_a_cgroup2_only_guest(tmp_path: Path) -> None:
    # Without plugins these modules do not use: their import cost ~15 s of the run under TCG.
    unused = ["-p", "no:schemathesis", "-p", "no:hypothesispytest"]
    pytest_args = ["-p", "no:cacheprovider", *unused, "-v", "--color=no", "-rs", *MODULES]
    try:
        run = run_pytest_in_vm(REPO, sys.executable, pytest_args, tmp_path, timeout=480)
    except VmUnavailable as error:
        pytest.fail(str(error))
    tail = "\n".join(run.console.splitlines()[-60:])
    assert run.exit_code is not None, f"the guest never reported ({run.seconds:.0f} s):\n{tail}"
    assert {"memory", "cpu", "pids"} <= set(run.controllers), tail
    assert run.cgroup == "/system.slice/shoal-test.service", tail  # a leaf, as under systemd
    assert run.exit_code == 0, f"pytest in the guest failed:\n{tail}"
    names = {test_id.split("::")[1] for test_id in run.outcomes}
    assert names >= LIMIT_TESTS, f"limit tests not run in the guest: {LIMIT_TESTS - names}"
    ran = {test_id.split("::")[0] for test_id in run.outcomes}
    assert ran == set(MODULES), f"modules without a test run in the guest: {set(MODULES) - ran}"
    not_passed = {test: outcome for test, outcome in run.outcomes.items() if outcome != "PASSED"}
    assert not not_passed, f"in the guest every test must pass, none skip: {not_passed}\n{tail}"
    # pytest's own count: a skip whose -v line the console garbled (so not in outcomes) or a
    # run cut before its summary still fails here.
    counts = {name: n for name, n in run.summary.items() if name not in ("warning", "warnings")}
    assert counts == {"passed": len(run.outcomes)}, f"pytest's summary in the guest: {counts}"
