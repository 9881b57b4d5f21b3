"""Configuration of a differ process: command-line flags or a JSON file (camelCase keys).

    {
      "listen": "127.0.0.1:7081",                  # where Envoy's differ cluster points
      "ports": {"admin": "127.0.0.1:7082"},        # more listeners, by app port name: mirrors
                                                   # received there replay to that port
      "server": "http://127.0.0.1:7070",           # API server; omit to publish nothing
      "namespace": "default",
      "deployment": "web",
      "primaryRevision": "5c8f7b", "candidateRevision": "7d9f8c",
      "report": "web-7d9f8c",                      # default <deployment>-<candidateRevision>
      "primary":   {"selector": "app=web,pod-template-hash=5c8f7b"},
      "candidate": {"addresses": ["127.0.0.1:8003"]},
      "methods": ["GET", "HEAD"],                  # the differ replays only these
      "compare": {"ignoreHeaders": [], "ignoreFields": ["requestId"], "statusOnly": false},
      "concurrency": 32, "queueSize": 1000, "timeoutSeconds": 5, "publishIntervalSeconds": 1,
      "maxRate": 50,                               # samples/s at most (default: no bound)
      "nice": 10,                                  # lower CPU priority than the services
      "idle": false                                # SCHED_IDLE: run only on CPU time nobody
                                                   # else wants (a differ Pod: true)
    }

Each side is either `selector` (the differ watches Pods through the API; `portName` picks
`status.hostPorts[name]` instead of `status.hostPort`) or `addresses`. A file given with
`--config` is reread when it changes: new targets, methods and compare rules apply to the
next samples; `listen`, `server` and the report's identity need a restart.

The same keys exist as flags (`--primary ADDR`, repeatable, or `--primary-selector SEL`...),
for a quick `shoal differ` by hand; `--config` excludes them. Parsed by `shoal.differ.main`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field, ValidationError, model_validator

from shoal.api.base import ApiModel
from shoal.api.deployment import POD_TEMPLATE_HASH_LABEL
from shoal.api.diffreport import report_name
from shoal.api.errors import causes_from_validation
from shoal.api.parallelrun import DEFAULT_METHODS, CompareSettings, Method, ParallelRunSettings
from shoal.api.selectors import LabelSelector
from shoal.differ.http import Address
from shoal.differ.targets import parse_address


def _check_address(text: str) -> str:
    parse_address(text)
    return text


def _check_listen(text: str) -> str:
    parse_address(text, allow_any_port=True)
    return text


AddressText = Annotated[str, AfterValidator(_check_address)]
ListenText = Annotated[str, AfterValidator(_check_listen)]


class TargetSpec(ApiModel):
    """One side of the comparison: a label selector over Pods, or fixed addresses."""

    selector: str | None = None
    port_name: str | None = None
    addresses: list[AddressText] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_source(self) -> TargetSpec:
        if (self.selector is None) == (not self.addresses):
            raise ValueError("give exactly one of selector and addresses")
        return self

    def fixed(self) -> tuple[Address, ...]:
        return tuple(parse_address(text) for text in self.addresses)


class DifferConfig(ApiModel):
    listen: ListenText = "127.0.0.1:7081"
    # More listeners, by the name of the app port whose mirrors they receive (a Service whose
    # targetPort names a second port of the app mirrors to the differ's port of that name).
    ports: dict[str, ListenText] = Field(default_factory=dict)
    server: str | None = None
    namespace: str = "default"
    deployment: str = Field(min_length=1)
    primary_revision: str | None = None
    candidate_revision: str | None = None
    report: str | None = None
    primary: TargetSpec
    candidate: TargetSpec
    methods: list[Method] = Field(default_factory=lambda: list(DEFAULT_METHODS), min_length=1)
    compare: CompareSettings = Field(default_factory=CompareSettings)
    concurrency: int = Field(default=32, ge=1, le=4096)
    queue_size: int = Field(default=1000, ge=1)
    # Samples replayed per second at most (the rest dropped and counted); None: no bound.
    max_rate: float | None = Field(default=None, gt=0)
    timeout_seconds: float = Field(default=5.0, gt=0)
    publish_interval_seconds: float = Field(default=1.0, gt=0)
    max_body_bytes: int = Field(default=1 << 20, ge=0)
    # Added to the process's niceness at start: the differ is background work and must not
    # take CPU from the services whose live requests it copies.
    nice: int = Field(default=10, ge=0, le=19)
    # SCHED_IDLE as well: any other task that wakes preempts the differ at once (niceness only
    # lowers its share, and a woken task may still wait for the running one's time slice).
    idle: bool = False

    @model_validator(mode="after")
    def _selectors_need_a_server(self) -> DifferConfig:
        if self.server is None and (self.primary.selector or self.candidate.selector):
            raise ValueError("a selector needs `server` (pods are watched through the API)")
        return self

    @property
    def report_name(self) -> str:
        return self.report or report_name(self.deployment, self.candidate_revision)

    @property
    def listen_address(self) -> Address:
        return parse_address(self.listen, allow_any_port=True)

    @classmethod
    def load(cls, path: Path) -> DifferConfig:
        """Read and validate a JSON configuration file (raises ValueError/ValidationError)."""
        return cls.from_json(json.loads(path.read_text()))

    @classmethod
    def for_parallel_run(
        cls,
        settings: ParallelRunSettings,
        *,
        deployment: str,
        namespace: str,
        selector: LabelSelector,
        primary_revision: str,
        candidate_revision: str,
        server: str,
        listen: str,
    ) -> DifferConfig:
        """What the agent runs for a Deployment's parallel run: pods of each revision by
        selector (the deployment's selector + `pod-template-hash`), the user's methods and
        compare settings, the report named `<deployment>-<candidate revision>`."""
        return cls(
            listen=listen,
            server=server,
            namespace=namespace,
            deployment=deployment,
            primary_revision=primary_revision,
            candidate_revision=candidate_revision,
            primary=TargetSpec(selector=revision_selector(selector, primary_revision)),
            candidate=TargetSpec(selector=revision_selector(selector, candidate_revision)),
            methods=list(settings.methods),
            compare=settings.compare,
        )

    def write(self, path: Path) -> None:
        """Write atomically (temp file + rename), so a differ rereading it never sees half."""
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(json.dumps(self.to_json(), indent=2))
        temporary.replace(path)


def revision_selector(selector: LabelSelector, revision: str) -> str:
    """`app=web,pod-template-hash=7d9f8c`: the pods of one revision of a Deployment."""
    base = selector.to_query()
    own = f"{POD_TEMPLATE_HASH_LABEL}={revision}"
    return f"{base},{own}" if base else own


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shoal differ",
        description="Compare mirrored requests between primary and candidate instances.",
    )
    parser.add_argument("--config", type=Path, help="JSON configuration file (reread on change)")
    parser.add_argument("--listen", help="HOST:PORT for mirrored requests (default 127.0.0.1:7081)")
    parser.add_argument("--server", help="API server URL, to publish the DiffReport")
    parser.add_argument("--namespace", "-n")
    parser.add_argument("--deployment")
    parser.add_argument("--report", help="DiffReport name (default <deployment>-<candidate rev>)")
    parser.add_argument("--primary-revision")
    parser.add_argument("--candidate-revision")
    for side in ("primary", "candidate"):
        parser.add_argument(f"--{side}", action="append", metavar="HOST:PORT", default=None)
        parser.add_argument(f"--{side}-selector", metavar="SELECTOR")
    parser.add_argument("--method", action="append", dest="methods", default=None)
    parser.add_argument("--ignore-header", action="append", default=None)
    parser.add_argument("--ignore-field", action="append", default=None)
    parser.add_argument("--status-only", action="store_true", default=None)
    parser.add_argument("--concurrency", type=int)
    parser.add_argument("--queue-size", type=int)
    parser.add_argument("--max-rate", type=float, help="samples per second at most")
    parser.add_argument("--timeout", type=float, dest="timeout_seconds")
    parser.add_argument("--nice", type=int, help="niceness increment (default 10)")
    parser.add_argument("--idle", action="store_true", default=None, help="SCHED_IDLE as well")
    return parser


def _side(addresses: list[str] | None, selector: str | None) -> dict[str, Any] | None:
    if addresses is None and selector is None:
        return None
    return {"addresses": addresses or [], "selector": selector}


def parse_arguments(argv: Sequence[str] | None) -> tuple[DifferConfig, Path | None]:
    """The configuration and the file to watch (None when given by flags). Exits on errors,
    argparse style, with the field path of a bad value."""
    parser = _parser()
    args = parser.parse_args(argv)
    given = {key: value for key, value in vars(args).items() if value is not None}
    config_path: Path | None = given.pop("config", None)
    if config_path is not None:
        if given:
            parser.error(f"--config excludes other options (got {', '.join(sorted(given))})")
        try:
            return DifferConfig.load(config_path), config_path
        except ValidationError as error:
            parser.error(f"{config_path}: {describe_invalid(error)}")
        except (OSError, ValueError) as error:
            parser.error(f"{config_path}: {error}")
    document: dict[str, Any] = {
        "listen": given.get("listen"),
        "server": given.get("server"),
        "namespace": given.get("namespace"),
        "deployment": given.get("deployment"),
        "report": given.get("report"),
        "primaryRevision": given.get("primary_revision"),
        "candidateRevision": given.get("candidate_revision"),
        "primary": _side(given.get("primary"), given.get("primary_selector")),
        "candidate": _side(given.get("candidate"), given.get("candidate_selector")),
        "methods": given.get("methods"),
        "concurrency": given.get("concurrency"),
        "queueSize": given.get("queue_size"),
        "maxRate": given.get("max_rate"),
        "timeoutSeconds": given.get("timeout_seconds"),
        "nice": given.get("nice"),
        "idle": given.get("idle"),
        "compare": {
            "ignoreHeaders": given.get("ignore_header", []),
            "ignoreFields": given.get("ignore_field", []),
            "statusOnly": given.get("status_only", False),
        },
    }
    try:
        config = DifferConfig.from_json({k: v for k, v in document.items() if v is not None})
    except ValidationError as error:
        parser.error(describe_invalid(error))
    return config, None


def describe_invalid(error: ValidationError) -> str:
    """`primary: give exactly one of selector and addresses; ...`: field paths first."""
    return "; ".join(
        f"{cause.field or '<config>'}: {cause.message}" for cause in causes_from_validation(error)
    )
