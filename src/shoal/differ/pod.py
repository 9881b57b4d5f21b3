"""The differ as a Pod: `python -m shoal.differ.pod`, the command of the differ Pods that the
deployment controller creates for a ParallelRun (`shoal.controllers.parallel_run`).

The configuration comes from the Pod's environment, so no file has to reach the node:
`SHOAL_DIFFER_CONFIG` (the JSON of `shoal.differ.config.DifferConfig` without `listen` and
`server`), `PORT` (the port the agent allocated: the differ listens there, Envoy's mirror
cluster points there) and `SHOAL_SERVER` (the API server, to watch pods and publish the
DiffReport). `SHOAL_DIFFER_PORTS` lists the app's port names (comma-separated): the differ Pod
declares the same names, so whichever port a Service targets, its mirror cluster reaches the
differ; the differ listens on each `PORT_<NAME>` too and replays what arrives there to that
port of the comparison instances. Everything else is `shoal.differ.main`: signals, niceness,
the admin API.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Mapping

from pydantic import ValidationError

from shoal.agent.drivers.base import port_variable
from shoal.differ import main as differ_main
from shoal.differ.config import DifferConfig, describe_invalid

CONFIG_VARIABLE = "SHOAL_DIFFER_CONFIG"
PORTS_VARIABLE = "SHOAL_DIFFER_PORTS"


def config_from_environment(env: Mapping[str, str]) -> DifferConfig:
    """Raises ValueError (with field paths) when a variable is missing or invalid."""
    missing = [name for name in (CONFIG_VARIABLE, "PORT", "SHOAL_SERVER") if not env.get(name)]
    if missing:
        raise ValueError(f"missing environment variables: {', '.join(missing)}")
    document = json.loads(env[CONFIG_VARIABLE])
    document["listen"] = f"127.0.0.1:{env['PORT']}"
    document["server"] = env["SHOAL_SERVER"]
    document["ports"] = named_listeners(env)
    try:
        return DifferConfig.from_json(document)
    except ValidationError as error:
        raise ValueError(describe_invalid(error)) from None


def named_listeners(env: Mapping[str, str]) -> dict[str, str]:
    """The extra listen address of each app port named in `SHOAL_DIFFER_PORTS`; the port that
    is `$PORT` already (the first one) is the default listener and is left out."""
    names = [n.strip() for n in env.get(PORTS_VARIABLE, "").split(",") if n.strip()]
    listeners = {}
    for name in names:
        number = env.get(port_variable(name))
        if not number:
            raise ValueError(f"missing environment variable {port_variable(name)} (port {name})")
        if number != env["PORT"]:
            listeners[name] = f"127.0.0.1:{number}"
    return listeners


def main() -> None:
    try:
        config = config_from_environment(os.environ)
    except ValueError as error:
        print(f"shoal differ pod: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    differ_main.lower_priority(config.nice, config.idle)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s differ %(message)s"
    )
    with asyncio.Runner(loop_factory=differ_main._loop_factory()) as runner:
        runner.run(differ_main.run(config))


if __name__ == "__main__":
    main()
