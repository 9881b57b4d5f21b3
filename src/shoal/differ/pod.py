"""The differ as a Pod: `python -m shoal.differ.pod`, the command of the differ Pods that the
deployment controller creates for a ParallelRun (`shoal.controllers.parallel_run`).

The configuration comes from the Pod's environment, so no file has to reach the node:
`SHOAL_DIFFER_CONFIG` (the JSON of `shoal.differ.config.DifferConfig` without `listen` and
`server`), `PORT` (the port the agent allocated: the differ listens there, Envoy's mirror
cluster points there) and `SHOAL_SERVER` (the API server, to watch pods and publish the
DiffReport). Everything else is `shoal.differ.main`: signals, niceness, the admin API.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Mapping

from pydantic import ValidationError

from shoal.differ import main as differ_main
from shoal.differ.config import DifferConfig, describe_invalid

CONFIG_VARIABLE = "SHOAL_DIFFER_CONFIG"


def config_from_environment(env: Mapping[str, str]) -> DifferConfig:
    """Raises ValueError (with field paths) when a variable is missing or invalid."""
    missing = [name for name in (CONFIG_VARIABLE, "PORT", "SHOAL_SERVER") if not env.get(name)]
    if missing:
        raise ValueError(f"missing environment variables: {', '.join(missing)}")
    document = json.loads(env[CONFIG_VARIABLE])
    document["listen"] = f"127.0.0.1:{env['PORT']}"
    document["server"] = env["SHOAL_SERVER"]
    try:
        return DifferConfig.from_json(document)
    except ValidationError as error:
        raise ValueError(describe_invalid(error)) from None


def main() -> None:
    try:
        config = config_from_environment(os.environ)
    except ValueError as error:
        print(f"shoal differ pod: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    if config.nice:
        os.nice(config.nice)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s differ %(message)s"
    )
    with asyncio.Runner(loop_factory=differ_main._loop_factory()) as runner:
        runner.run(differ_main.run(config))


if __name__ == "__main__":
    main()
