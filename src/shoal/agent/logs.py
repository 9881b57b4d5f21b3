"""Per-pod log files: layout, size rotation, the previous run's log, tail and follow.

The agent runner gives a driver `PodLogs.current` as the process's stdout/stderr file, calls
`new_run()` before each restart (the log of the run that ended becomes `--previous`) and
`rotate_logs()` on every pod's logs periodically. `shoal logs` (through the agent or the
server) reads with `tail_lines` and `follow`.

Layout, under `<data dir>/pods/<namespace>_<name>_<uid>/logs/`:

    current.log          what the running process appends to (O_APPEND)
    current.log.1 .. N   rotated pieces of this run, .1 the newest
    previous.log[.1..N]  the same for the run before

Rotation is copy-then-truncate (as logrotate's copytruncate): the process keeps its file
descriptor and, writing with O_APPEND, continues at the start of the truncated file. Lines
written between the copy and the truncate are lost; that is the price of not piping every
pod's output through the agent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

CURRENT = "current.log"
PREVIOUS = "previous.log"
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_KEEP = 3
_BLOCK = 64 * 1024

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PodLogs:
    directory: Path

    @classmethod
    def for_pod(cls, data_dir: Path, namespace: str, name: str, uid: str) -> PodLogs:
        return cls(data_dir / "pods" / f"{namespace}_{name}_{uid}" / "logs")

    @property
    def current(self) -> Path:
        return self.directory / CURRENT

    @property
    def previous(self) -> Path:
        return self.directory / PREVIOUS

    def segments(self, previous: bool = False) -> list[Path]:
        """Existing files of one run, oldest first (rotated pieces, then the live file)."""
        base = self.previous if previous else self.current
        rotated = sorted(
            (path for path in self.directory.glob(base.name + ".*") if path.suffix[1:].isdigit()),
            key=lambda path: int(path.suffix[1:]),
            reverse=True,
        )
        return [*rotated, base] if base.exists() else rotated

    def new_run(self) -> None:
        """Before a restart: this run's files become the previous run's (older ones dropped)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for old in self.segments(previous=True):
            old.unlink(missing_ok=True)
        for path in self.segments():
            path.rename(self.directory / path.name.replace(CURRENT, PREVIOUS, 1))

    def rotate_if_needed(
        self, max_bytes: int = DEFAULT_MAX_BYTES, keep: int = DEFAULT_KEEP
    ) -> bool:
        """Copy-truncate `current.log` once it reaches `max_bytes`, keeping `keep` pieces."""
        try:
            if self.current.stat().st_size < max_bytes:
                return False
        except FileNotFoundError:
            return False
        for index in range(keep, 0, -1):
            piece = self.directory / f"{CURRENT}.{index}"
            if index == keep:
                piece.unlink(missing_ok=True)
            elif piece.exists():
                piece.rename(self.directory / f"{CURRENT}.{index + 1}")
        if keep > 0:
            shutil.copyfile(self.current, self.directory / f"{CURRENT}.1")
        with self.current.open("r+b") as live:
            live.truncate(0)
        return True

    def remove(self) -> None:
        """Delete every log of the pod (the pod is gone for good)."""
        shutil.rmtree(self.directory, ignore_errors=True)


def rotate_logs(logs: list[PodLogs], max_bytes: int, keep: int) -> None:
    """One round of the agent runner's rotation: a failure is logged, never raised."""
    for pod_logs in logs:
        try:
            pod_logs.rotate_if_needed(max_bytes, keep)
        except OSError as error:  # a pod stopping meanwhile, a full disk: try next round
            log.warning("log rotation in %s failed: %s", pod_logs.directory, error)


def tail_lines(paths: Sequence[Path], count: int) -> list[str]:
    """The last `count` lines across `paths` (oldest first), reading backwards block by block,
    so a large log costs only the blocks that hold those lines."""
    if count <= 0:
        return []
    pieces: list[bytes] = []
    newlines = 0
    for path in reversed(paths):
        try:
            file = path.open("rb")
        except FileNotFoundError:
            continue
        with file:
            position = file.seek(0, os.SEEK_END)
            # count + 1 newlines mark where the first wanted line starts.
            while position > 0 and newlines <= count:
                size = min(_BLOCK, position)
                position -= size
                file.seek(position)
                block = file.read(size)
                pieces.append(block)
                newlines += block.count(b"\n")
        if newlines > count:
            break
    data = b"".join(reversed(pieces))
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line.decode(errors="replace") for line in lines[-count:]]


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as file:
            file.seek(offset)
            return file.read()
    except FileNotFoundError:
        return b""


def _identity(path: Path) -> tuple[int, int] | None:
    """(inode, size) of the file, None while it does not exist."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_size


async def follow(
    logs: PodLogs,
    from_end: bool = True,
    poll_seconds: float = 0.25,
    start_offset: int | None = None,
) -> AsyncIterator[str]:
    """Yield lines appended to the pod's log, forever (the caller cancels or stops iterating).

    `start_offset` (a byte position in `current.log`, overriding `from_end`) lets a caller that
    has just read the file up to there continue exactly where it stopped, without a gap.

    Survives restarts (`current.log` renamed to `previous.log` by `new_run`: another inode, its
    rest is read there) and rotations (a new `current.log.1` appears: the rest of the truncated
    file is read from it). Polls: no inotify dependency, and a quarter second suits a human."""
    piece = logs.directory / f"{CURRENT}.1"
    found = _identity(logs.current)
    inode = None if found is None else found[0]
    offset = found[1] if found is not None and from_end else 0
    if start_offset is not None and found is not None:
        offset = start_offset
    rotated = _identity(piece)
    pending = b""
    while True:
        found, now_rotated = _identity(logs.current), _identity(piece)
        chunk = b""
        if found is not None and inode is not None and found[0] != inode:
            chunk, offset = _read_from(logs.previous, offset), 0
        elif now_rotated is not None and (rotated is None or now_rotated[0] != rotated[0]):
            chunk, offset = _read_from(piece, offset), 0
        rotated = now_rotated
        if found is not None:
            inode = found[0]
            fresh = _read_from(logs.current, offset)
            offset += len(fresh)
            chunk += fresh
        if not chunk:
            await asyncio.sleep(poll_seconds)
            continue
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line.decode(errors="replace")
