"""Pod logs: layout, rotation by size, previous run, tail across pieces, follow."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shoal.agent.logs import PodLogs, follow, tail_lines


@pytest.fixture
def logs(tmp_path: Path) -> PodLogs:
    pod_logs = PodLogs.for_pod(tmp_path, "shop", "web-1", "uid-9")
    pod_logs.directory.mkdir(parents=True)
    return pod_logs


def append(path: Path, text: str) -> None:
    with path.open("a") as file:
        file.write(text)


def numbered(first: int, last: int) -> str:
    return "".join(f"line {i}\n" for i in range(first, last + 1))


def test_layout(tmp_path: Path) -> None:
    logs = PodLogs.for_pod(tmp_path, "shop", "web-1", "uid-9")
    assert logs.current == tmp_path / "pods" / "shop_web-1_uid-9" / "logs" / "current.log"


def test_tail_within_one_file(logs: PodLogs) -> None:
    append(logs.current, numbered(1, 100))
    assert tail_lines(logs.segments(), 3) == ["line 98", "line 99", "line 100"]
    assert tail_lines(logs.segments(), 0) == []
    assert len(tail_lines(logs.segments(), 1000)) == 100


def test_tail_keeps_a_last_line_without_newline(logs: PodLogs) -> None:
    append(logs.current, "a\nb\npartial")
    assert tail_lines([logs.current], 2) == ["b", "partial"]


def test_tail_of_a_large_file_spans_blocks(logs: PodLogs) -> None:
    append(logs.current, numbered(1, 50_000))
    assert tail_lines([logs.current], 20_000)[0] == "line 30001"
    assert tail_lines([logs.current], 1) == ["line 50000"]


def test_rotation_keeps_n_pieces_and_tail_spans_them(logs: PodLogs) -> None:
    for block in range(5):
        append(logs.current, numbered(block * 10 + 1, block * 10 + 10))
        assert logs.rotate_if_needed(max_bytes=50, keep=2)
    append(logs.current, numbered(51, 52))
    assert not logs.rotate_if_needed(max_bytes=50, keep=2)
    names = [path.name for path in logs.segments()]
    assert names == ["current.log.2", "current.log.1", "current.log"]
    assert tail_lines(logs.segments(), 12) == [f"line {i}" for i in range(41, 53)]
    assert tail_lines(logs.segments(), 100)[0] == "line 31", "older pieces were dropped"


def test_rotation_keeps_the_file_a_process_appends_to(logs: PodLogs) -> None:
    with logs.current.open("ab", buffering=0) as process_fd:
        process_fd.write(b"x" * 100 + b"\n")
        assert logs.rotate_if_needed(max_bytes=10)
        process_fd.write(b"after\n")
    assert logs.current.read_bytes() == b"after\n"


def test_new_run_makes_previous(logs: PodLogs) -> None:
    append(logs.current, "run 1\n")
    logs.new_run()
    append(logs.current, "run 2\n")
    append(logs.current.with_name("current.log.1"), "run 2 rotated\n")
    assert tail_lines(logs.segments(previous=True), 10) == ["run 1"]
    logs.new_run()
    assert tail_lines(logs.segments(previous=True), 10) == ["run 2 rotated", "run 2"]
    assert logs.segments() == []
    logs.remove()
    assert not logs.directory.exists()


async def take(lines: AsyncIterator[str], count: int) -> list[str]:
    got: list[str] = []
    async with asyncio.timeout(10):
        async for line in lines:
            got.append(line)
            if len(got) == count:
                break
    return got


async def test_follow_from_end_sees_only_new_lines(logs: PodLogs) -> None:
    append(logs.current, "old\n")
    lines = follow(logs, poll_seconds=0.01)
    reader = asyncio.create_task(take(lines, 2))
    await asyncio.sleep(0.05)
    append(logs.current, "new 1\nnew")
    await asyncio.sleep(0.05)
    append(logs.current, " 2\n")
    assert await reader == ["new 1", "new 2"]


async def test_follow_across_rotation_and_restart(logs: PodLogs) -> None:
    lines = follow(logs, from_end=False, poll_seconds=0.01)
    append(logs.current, "a\n")
    first = await take(lines, 1)
    append(logs.current, "b\n")
    logs.rotate_if_needed(max_bytes=1)
    append(logs.current, "c\n")
    second = await take(lines, 2)
    append(logs.current, "d\n")
    logs.new_run()
    append(logs.current, "e\n")
    third = await take(lines, 2)
    assert first + second + third == ["a", "b", "c", "d", "e"]
