"""Can this node run sandboxed pods? `sandbox_available()` answers with a reason.

Called by the agent (to advertise the node feature) and by the sandbox driver (a pod that asks
for a sandbox on a node without one fails with this reason, never silently runs unsandboxed).
The answer comes from a real trial run of the exact command line pods get, so a kernel or a
security module that forbids unprivileged user namespaces (e.g. Ubuntu's AppArmor restriction)
shows up here rather than as a mysterious pod failure. The result is cached per process.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile

from shoal.agent.sandbox.bwrap import SandboxLayout, bwrap_argv, setpriv_argv
from shoal.agent.sandbox.cgroups import CgroupHierarchy, detect_cgroups
from shoal.agent.sandbox.identity import UID_BASE, Identity

UNAVAILABLE_REASON = "SandboxUnavailable"
ADVICE = "set isolation: none to run without a sandbox"
# Test knob, never for production: when set (to a reason), the node pretends it cannot sandbox,
# so tests on machines that can sandbox still see the SandboxUnavailable path end to end.
PRETEND_UNAVAILABLE_VARIABLE = "SHOAL_TEST_SANDBOX_UNAVAILABLE"


def unavailable_message(reason: str) -> str:
    """The pod status message for a sandbox this node cannot provide."""
    return f"{UNAVAILABLE_REASON}: {reason}; {ADVICE}"


def _trial_run(bwrap: str, setpriv: str) -> str | None:
    """Run `true` the way a pod would run; None when it works, else what went wrong."""
    with tempfile.TemporaryDirectory(prefix="shoal-sandbox-probe-") as workdir:
        os.chmod(workdir, 0o755)  # the probe identity must be able to enter it
        argv = [
            *setpriv_argv(Identity(UID_BASE, UID_BASE), setpriv),
            *bwrap_argv(SandboxLayout(workdir=workdir), bwrap),
            "--",
            "true",
        ]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"bubblewrap trial run failed: {error}"
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        return "bubblewrap trial run failed: " + (
            detail[-1] if detail else f"exit {done.returncode}"
        )
    return None


@functools.cache
def sandbox_available() -> tuple[bool, str]:
    """(True, "bubblewrap X, cgroup vN") or (False, why not)."""
    pretended = os.environ.get(PRETEND_UNAVAILABLE_VARIABLE)
    if pretended:
        return False, f"{pretended} (pretended: {PRETEND_UNAVAILABLE_VARIABLE} is set)"
    if os.geteuid() != 0:
        return False, "the agent is not running as root"
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return False, "bubblewrap not installed (run `make install` or apt-get install bubblewrap)"
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return False, "setpriv (util-linux) not installed"
    hierarchy = detect_cgroups()
    if not isinstance(hierarchy, CgroupHierarchy):
        return False, hierarchy
    failure = _trial_run(bwrap, setpriv)
    if failure is not None:
        return False, failure
    return True, f"bubblewrap at {bwrap}, cgroup v{hierarchy.version}"
