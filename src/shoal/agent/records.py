"""What the agent remembers about each pod on disk, so that a restarted agent re-adopts the
running processes instead of starting duplicates: the driver's task handle (pid + process start
time), the allocated ports and the restart count. One JSON file per pod uid, written atomically
(temp file + rename). Not fsync'ed: what must survive is a crash of the agent, and the kernel
keeps the file for that; a crash of the machine ends the pods too (a lost or empty record then
means "not running", which is true).

Used by the agent runner (listing at start-up) and by pod workers (save on start, remove on stop).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoal.agent.drivers.base import TaskHandle


@dataclass
class PodRecord:
    uid: str
    namespace: str
    name: str
    ports: dict[str, int] = field(default_factory=dict)
    handle: TaskHandle | None = None
    restart_count: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "namespace": self.namespace,
            "name": self.name,
            "ports": self.ports,
            "handle": self.handle.to_json() if self.handle else None,
            "restartCount": self.restart_count,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PodRecord:
        handle = data.get("handle")
        return cls(
            uid=str(data["uid"]),
            namespace=str(data["namespace"]),
            name=str(data["name"]),
            ports={str(k): int(v) for k, v in (data.get("ports") or {}).items()},
            handle=TaskHandle.from_json(handle) if handle else None,
            restart_count=int(data.get("restartCount", 0)),
        )


class PodRecords:
    """The directory of pod records: `<dir>/<uid>.json`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def _path(self, uid: str) -> Path:
        return self.directory / f"{uid}.json"

    def save(self, record: PodRecord) -> None:
        path = self._path(record.uid)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(record.to_json()))
        temporary.replace(path)

    def load(self, uid: str) -> PodRecord | None:
        try:
            return PodRecord.from_json(json.loads(self._path(uid).read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def remove(self, uid: str) -> None:
        self._path(uid).unlink(missing_ok=True)

    def all(self) -> list[PodRecord]:
        records = []
        for path in sorted(self.directory.glob("*.json")):
            record = self.load(path.stem)
            if record is not None:
                records.append(record)
        return records
