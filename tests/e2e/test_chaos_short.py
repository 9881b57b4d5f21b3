"""The reliability suite's short version inside `make test` (the CI run): each chaos scenario
as one test, run exactly as `make chaos` runs it (`python -m chaos.run --short`), plus the
tests of the tests (scenarios 1 and 3 with drain confirmation or retries switched off must
fail). The suite starts and stops its own processes by pid and checks that none is left."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = ["1", "2", "3", "4", "5", "6", "7", "8", "9"]
SABOTAGED = ["1", "3"]


def run_chaos(*args: str) -> None:
    answer = subprocess.run(
        [sys.executable, "-m", "chaos.run", "--short", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert answer.returncode == 0, answer.stdout[-6000:] + answer.stderr[-4000:]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_keeps_its_promise(scenario: str) -> None:
    run_chaos("--only", scenario, "--no-sabotage")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("scenario", SABOTAGED)
def test_scenario_fails_without_its_mechanism(scenario: str) -> None:
    run_chaos("--only", scenario, "--sabotage-only")
