"""`python -m chaos.run [--short] [--only 1,5] [--no-sabotage]`: the reliability suite.

Runs each fault scenario (one module per scenario in this package) against real shoal
processes on 127.0.0.1, prints each scenario's figures as it goes, then one summary table
(scenario, load, failed, lost, recovery time, verdict). Exits 1 when any promise broke.

After the scenarios come the tests of the tests: scenarios 1 and 3 again with the mechanism
that makes them pass switched off (drain confirmation, Envoy retries). Those rows pass only
when the scenario FAILS, which shows that the scenario can fail. `--short` is the CI version
(fewer kills, shorter loads); `make chaos` runs the full one.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import ModuleType
from typing import Any, cast

from chaos.harness import Context, Result

# key -> module; the order is the order of the issue.
SCENARIOS: dict[str, str] = {
    "1": "chaos.control_plane_kill",
    "2": "chaos.agent_kill",
    "3": "chaos.pod_kills",
    "4": "chaos.outliers",
    "5": "chaos.store_durability",
    "6": "chaos.watch_contract",
    "7": "chaos.bad_input",
    "8": "chaos.exhaustion",
    "9": "chaos.envoy_kill",
}
# Scenarios whose passing mechanism can be switched off (see each module's SABOTAGE).
SABOTAGED = ("1", "3")
SABOTAGE_ATTEMPTS = 3

Runner = Callable[[Context, Result], Coroutine[Any, Any, None]]


def load(key: str) -> ModuleType:
    return importlib.import_module(SCENARIOS[key])


def run_one(key: str, *, short: bool, sabotage: bool, root: Path, keep: bool = False) -> Result:
    module = load(key)
    title = f"{key}. {module.TITLE}" + (f" [{module.SABOTAGE}]" if sabotage else "")
    print(f"\n== {title}", flush=True)
    result = Result(title, expect_failure=sabotage)
    ctx = Context(module.__name__.rsplit(".", 1)[1], short=short, sabotage=sabotage, root=root)
    started = time.monotonic()
    try:
        asyncio.run(cast(Runner, module.run)(ctx, result))
    except Exception as error:  # a scenario that crashes has broken its promise too
        traceback.print_exc()
        result.check(False, f"scenario crashed: {type(error).__name__}: {error}")
    finally:
        left = ctx.stop_all()
        result.check(not left, f"processes left running (killed now): {left}")
        if result.problems and not sabotage:
            for child in ctx.children:
                print(f"  --- last lines of {child.log}:\n{child.tail()}", flush=True)
        if keep or (result.problems and not sabotage):
            print(f"  (work directory kept: {ctx.dir})")
        else:
            ctx.remove_dir()
    result.seconds = time.monotonic() - started
    print(f"  -> {result.verdict} in {result.seconds:.0f}s", flush=True)
    return result


def run_sabotaged(key: str, *, short: bool, root: Path, keep: bool) -> Result:
    """A test of the test: the scenario without its mechanism must break, in one of
    SABOTAGE_ATTEMPTS runs. A race it loses (requests in flight while a pod stops undrained)
    usually does at once, but a quiet machine can win it a few times in a row."""
    for attempt in range(1, SABOTAGE_ATTEMPTS + 1):
        result = run_one(key, short=short, sabotage=True, root=root, keep=keep)
        if result.passed or attempt == SABOTAGE_ATTEMPTS:
            return result
        print(f"  (did not break: attempt {attempt + 1} of {SABOTAGE_ATTEMPTS})", flush=True)
    raise AssertionError("unreachable")


def table(results: list[Result]) -> str:
    rows = [("scenario", "load", "failed", "lost", "recovery", "verdict")]
    rows += [(r.scenario, r.load, r.failed, r.lost, r.recovery, r.verdict) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
             for row in rows]  # fmt: skip
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--short", action="store_true", help="the CI version: fewer, shorter")
    parser.add_argument("--only", help="comma-separated scenario numbers, e.g. 1,5")
    parser.add_argument(
        "--no-sabotage", action="store_true", help="skip the tests of the tests (1 and 3 again)"
    )
    parser.add_argument(
        "--sabotage-only", action="store_true", help="run only the tests of the tests"
    )
    parser.add_argument("--keep", action="store_true", help="keep every work directory")
    args = parser.parse_args(argv)
    keys = args.only.split(",") if args.only else list(SCENARIOS)
    unknown = [k for k in keys if k not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios {unknown}; known: {', '.join(SCENARIOS)}")
    root = Path(tempfile.gettempdir())
    started = time.monotonic()
    results: list[Result] = []
    if not args.sabotage_only:
        results += [
            run_one(k, short=args.short, sabotage=False, root=root, keep=args.keep) for k in keys
        ]
    if not args.no_sabotage:
        results += [
            run_sabotaged(k, short=args.short, root=root, keep=args.keep)
            for k in keys
            if k in SABOTAGED
        ]
    mode = "short" if args.short else "full"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"\nchaos summary ({mode} run, {time.monotonic() - started:.0f}s; load average now "
        f"{load} on {os.cpu_count()} CPUs):"
    )
    print(table(results))
    for result in results:
        for problem in result.problems if not result.expect_failure else ():
            print(f"  {result.scenario}: {problem}")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
