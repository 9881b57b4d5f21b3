"""records: what the agent persists per pod so that a restarted agent re-adopts processes."""

from __future__ import annotations

from pathlib import Path

from shoal.agent.drivers.base import TaskHandle
from shoal.agent.records import PodRecord, PodRecords


def handle(pid: int = 4242) -> TaskHandle:
    return TaskHandle("process", "uid-1", pid, pid, 1700000000.25, 1700000000.5, {"cgroup": "/x"})


def test_a_record_round_trips_through_its_file(tmp_path: Path) -> None:
    records = PodRecords(tmp_path / "records")
    record = PodRecord("uid-1", "default", "web-1", {"http": 20001}, handle(), restart_count=3)
    records.save(record)
    assert records.load("uid-1") == record
    assert records.all() == [record]
    assert list((tmp_path / "records").iterdir()) == [tmp_path / "records" / "uid-1.json"]


def test_a_record_without_handle_and_removal(tmp_path: Path) -> None:
    records = PodRecords(tmp_path)
    records.save(PodRecord("uid-2", "ns", "db-1"))
    assert records.load("uid-2") == PodRecord("uid-2", "ns", "db-1")
    records.remove("uid-2")
    records.remove("uid-2")  # twice is fine
    assert records.load("uid-2") is None and records.all() == []


def test_saving_again_replaces_and_broken_files_are_skipped(tmp_path: Path) -> None:
    records = PodRecords(tmp_path)
    records.save(PodRecord("uid-1", "default", "web-1", handle=handle(1)))
    records.save(PodRecord("uid-1", "default", "web-1", handle=handle(2)))
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "partial.json").write_text('{"uid": "x"}')
    (loaded,) = records.all()
    assert loaded.handle is not None and loaded.handle.pid == 2
