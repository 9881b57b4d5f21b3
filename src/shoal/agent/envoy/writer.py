"""File-based xDS writer: turns a `RoutingTable` into the files Envoy watches, in
make-before-break order, with a monotonic version per file.

Called by the agent runner (through `apply_and_confirm` in this package, or `apply` when it
confirms by itself). Layout under `root`, one watched directory per file so that renaming one
file makes Envoy reload only that subscription:

    bootstrap.json          cds/cds.json          lds/lds.json
    eds/<cluster>/eds.json  rds/<listener>/rds.json

Each file is a DiscoveryResponse (`version_info`, `resources`) written to a temp file in the
same directory and renamed over the old one (Envoy reacts to the move, never sees half a file).
`plan` orders the changes in three phases; a caller that confirms each phase before the next
gets true make-before-break:

    A: endpoints of new/changed clusters (EDS), then CDS = new clusters + clusters to remove
    B: route configurations (RDS), then listeners (LDS)         (now nothing uses removed ones)
    C: CDS = new clusters only                                  (removals last)

Versions survive an agent restart: they are read back from the files on start.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from shoal.agent.envoy.config import RoutingTable
from shoal.agent.envoy.resources import (
    build_bootstrap,
    build_cluster,
    build_endpoints,
    build_listener,
    build_route_configuration,
)

Kind = Literal["cds", "lds", "eds", "rds"]


@dataclass(frozen=True, slots=True)
class XdsFile:
    kind: Kind
    name: str  # cluster name for eds, listener name for rds, "" for cds/lds
    resources: tuple[dict[str, Any], ...]


@dataclass(slots=True)
class AppliedVersions:
    """Versions written (or expected) per subscription; what `EnvoyAdmin.confirm` checks."""

    cds: str | None = None
    lds: str | None = None
    eds: dict[str, str] = field(default_factory=dict)  # cluster -> version
    rds: dict[str, str] = field(default_factory=dict)  # route configuration -> version

    def merge(self, other: AppliedVersions) -> None:
        self.cds = other.cds or self.cds
        self.lds = other.lds or self.lds
        self.eds.update(other.eds)
        self.rds.update(other.rds)

    def is_empty(self) -> bool:
        return self.cds is None and self.lds is None and not self.eds and not self.rds


def _digest(resources: Sequence[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(list(resources), sort_keys=True).encode()).hexdigest()


class XdsWriter:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._versions: dict[Path, int] = {}
        self._digests: dict[Path, str] = {}
        self._clusters: dict[str, dict[str, Any]] = {}  # as in the last written CDS file
        self._listeners: set[str] = set()
        for sub in ("cds", "lds", "eds", "rds"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self._recover()

    # -- paths --------------------------------------------------------------------------------
    def path(self, kind: Kind, name: str = "") -> Path:
        if kind in ("cds", "lds"):
            return self.root / kind / f"{kind}.json"
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"unusable resource name for a file: {name!r}")
        return self.root / kind / name / f"{kind}.json"

    @property
    def bootstrap_path(self) -> Path:
        return self.root / "bootstrap.json"

    # -- bootstrap ----------------------------------------------------------------------------
    def write_bootstrap(self, *, node_id: str, node_cluster: str, admin_port: int) -> Path:
        """Write bootstrap.json, and empty CDS/LDS files when there are none yet (Envoy refuses
        a path source whose file does not exist)."""
        for kind in ("cds", "lds"):
            if not self.path(kind).exists():
                self._write(XdsFile(kind, "", ()))
        cds, lds = self.path("cds"), self.path("lds")
        bootstrap = build_bootstrap(
            node_id=node_id,
            node_cluster=node_cluster,
            admin_port=admin_port,
            lds=(str(lds), str(lds.parent)),
            cds=(str(cds), str(cds.parent)),
        )
        self._atomic_write(self.bootstrap_path, bootstrap)
        return self.bootstrap_path

    # -- planning (pure with respect to the files) ---------------------------------------------
    def plan(self, table: RoutingTable) -> list[list[XdsFile]]:
        """The files to write, in phases (see module docstring). Unchanged files are left out;
        empty phases are dropped."""
        table.check()
        new_clusters: dict[str, dict[str, Any]] = {}
        eds_files: list[XdsFile] = []
        for cluster in table.clusters:
            eds = self.path("eds", cluster.name)
            new_clusters[cluster.name] = build_cluster(cluster, str(eds), str(eds.parent))
            eds_files.append(XdsFile("eds", cluster.name, (build_endpoints(cluster),)))
        union = dict(self._clusters)
        union.update(new_clusters)
        phase_a = [f for f in eds_files if self._changed(f)]
        phase_a += [f for f in [self._cds(union)] if self._changed(f)]
        phase_b: list[XdsFile] = []
        listeners: list[dict[str, Any]] = []
        for lst in table.listeners:
            rds = self.path("rds", lst.name)
            phase_b.append(XdsFile("rds", lst.name, (build_route_configuration(lst),)))
            listeners.append(build_listener(lst, str(rds), str(rds.parent)))
        phase_b.append(XdsFile("lds", "", tuple(listeners)))
        phase_b = [f for f in phase_b if self._changed(f)]
        final = self._cds(new_clusters)
        # After phase A the CDS file holds `union`; anything beyond it is a removal.
        phase_c = [final] if _digest(final.resources) != _digest(self._cds(union).resources) else []
        return [p for p in (phase_a, phase_b, phase_c) if p]

    def _cds(self, clusters: dict[str, dict[str, Any]]) -> XdsFile:
        return XdsFile("cds", "", tuple(clusters[k] for k in sorted(clusters)))

    def _changed(self, f: XdsFile) -> bool:
        return self._digests.get(self.path(f.kind, f.name)) != _digest(f.resources)

    # -- writing -------------------------------------------------------------------------------
    def write(self, files: Sequence[XdsFile]) -> AppliedVersions:
        """Write files in the given order (no-op for unchanged ones); returns their versions."""
        out = AppliedVersions()
        for f in files:
            if not self._changed(f):
                continue
            version = self._write(f)
            if f.kind == "cds":
                out.cds = version
            elif f.kind == "lds":
                out.lds = version
            elif f.kind == "eds":
                out.eds[f.name] = version
            else:
                out.rds[f.name] = version
        return out

    def apply(self, table: RoutingTable) -> AppliedVersions:
        """Write every phase at once, without waiting for Envoy between them."""
        self.collect_garbage(table)
        out = AppliedVersions()
        for phase in self.plan(table):
            out.merge(self.write(phase))
        return out

    def collect_garbage(self, table: RoutingTable) -> None:
        """Delete EDS/RDS files that neither Envoy (last written CDS/LDS) nor `table` uses.
        Done at the start of an apply, so a file is never removed while Envoy may still read it."""
        keep = {
            "eds": set(self._clusters) | {c.name for c in table.clusters},
            "rds": self._listeners | {lst.name for lst in table.listeners},
        }
        for kind, names in keep.items():
            for directory in (self.root / kind).iterdir():
                if directory.is_dir() and directory.name not in names:
                    shutil.rmtree(directory, ignore_errors=True)
                    self._digests.pop(directory / f"{kind}.json", None)

    def _write(self, f: XdsFile) -> str:
        path = self.path(f.kind, f.name)
        version = self._versions.get(path, 0) + 1
        path.parent.mkdir(parents=True, exist_ok=True)
        self._atomic_write(path, {"version_info": str(version), "resources": list(f.resources)})
        self._versions[path] = version
        self._digests[path] = _digest(f.resources)
        if f.kind == "cds":
            self._clusters = {r["name"]: r for r in f.resources}
        elif f.kind == "lds":
            self._listeners = {r["name"] for r in f.resources}
        return str(version)

    @staticmethod
    def _atomic_write(path: Path, document: dict[str, Any]) -> None:
        tmp = path.parent / f".{path.name}.tmp"
        tmp.write_text(json.dumps(document, indent=1, sort_keys=True))
        os.replace(tmp, path)

    def _recover(self) -> None:
        """Read versions and contents back from existing files (agent restart)."""
        for path in self.root.glob("*/**/*.json"):
            try:
                document = json.loads(path.read_text())
                version = int(document["version_info"])
                resources = document["resources"]
            except (OSError, ValueError, KeyError, TypeError):
                continue  # a foreign or broken file: overwritten on the next change
            self._versions[path] = version
            self._digests[path] = _digest(resources)
            if path == self.path("cds"):
                self._clusters = {r["name"]: r for r in resources}
            elif path == self.path("lds"):
                self._listeners = {r["name"] for r in resources}
