"""The differ's configuration: flags and files, defaults, errors with field paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shoal.api.parallelrun import ParallelRunSettings
from shoal.api.selectors import LabelSelector
from shoal.differ.config import DifferConfig, parse_arguments


def test_flags() -> None:
    config, path = parse_arguments(
        [
            "--deployment=web",
            "--candidate-revision=abc",
            "--primary=127.0.0.1:8001",
            "--primary=127.0.0.1:8002",
            "--candidate-selector=app=web,rev=abc",
            "--server=http://127.0.0.1:7070",
            "--ignore-field=requestId",
            "--ignore-header=x-version",
            "--method=get",
            "--listen=127.0.0.1:0",
        ]
    )
    assert path is None
    assert config.primary.fixed() == (("127.0.0.1", 8001), ("127.0.0.1", 8002))
    assert config.candidate.selector == "app=web,rev=abc"
    assert config.compare.ignore_fields == ["requestId"]
    assert config.compare.ignore_headers == ["x-version"]
    assert config.methods == ["GET"]
    assert config.report_name == "web-abc"
    assert config.listen_address == ("127.0.0.1", 0)


def test_defaults() -> None:
    config, _ = parse_arguments(["--deployment=web", "--primary=h:1", "--candidate=h:2"])
    assert config.methods == ["GET", "HEAD"]
    assert config.report_name == "web"
    assert config.server is None
    assert config.compare.status_only is False


def test_file_round_trip(tmp_path: Path) -> None:
    config, _ = parse_arguments(["--deployment=web", "--primary=h:1", "--candidate=h:2"])
    path = tmp_path / "differ.json"
    config.write(path)
    loaded, watched = parse_arguments(["--config", str(path)])
    assert loaded == config and watched == path
    assert not list(tmp_path.glob(".*.tmp"))


def usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as caught:
        parse_arguments(argv)
    assert caught.value.code == 2
    return capsys.readouterr().err


def test_errors_name_the_field(capsys: pytest.CaptureFixture[str]) -> None:
    error = usage_error(["--deployment=web", "--primary=h:1"], capsys)
    assert "candidate" in error
    error = usage_error(
        ["--deployment=web", "--primary=h:1", "--candidate=h:2", "--ignore-field=a..b"], capsys
    )
    assert "compare.ignoreFields[0]" in error
    error = usage_error(["--deployment=web", "--primary=h:1", "--candidate=nowhere"], capsys)
    assert "candidate.addresses[0]" in error and "HOST:PORT" in error
    error = usage_error(
        ["--deployment=web", "--primary=h:1", "--primary-selector=a=b", "--candidate=h:2"], capsys
    )
    assert "exactly one of selector and addresses" in error


def test_selectors_need_a_server(capsys: pytest.CaptureFixture[str]) -> None:
    error = usage_error(["--deployment=w", "--primary-selector=a=b", "--candidate=h:2"], capsys)
    assert "needs `server`" in error


def test_config_excludes_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.json"
    path.write_text("{}")
    assert "excludes" in usage_error(["--config", str(path), "--deployment=x"], capsys)


def test_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"deployment": "w", "primary": {}, "candidate": {}, "x": 1}))
    error = usage_error(["--config", str(path)], capsys)
    assert "x: unknown field" in error and "primary" in error
    path.write_text("{not json")
    assert str(path) in usage_error(["--config", str(path)], capsys)


def test_unknown_keys_are_rejected() -> None:
    with pytest.raises(ValueError, match="compare"):
        DifferConfig.from_json(
            {
                "deployment": "w",
                "primary": {"addresses": ["h:1"]},
                "candidate": {"addresses": ["h:2"]},
                "compare": {"fuzzy": True},
            }
        )


def test_for_parallel_run_takes_the_users_settings_and_selects_revisions() -> None:
    settings = ParallelRunSettings.from_json(
        {"methods": ["GET"], "compare": {"ignoreFields": ["requestId"]}}
    )
    selector = LabelSelector.model_validate({"matchLabels": {"app": "web"}})
    config = DifferConfig.for_parallel_run(
        settings,
        deployment="web",
        namespace="shop",
        selector=selector,
        primary_revision="5c8f",
        candidate_revision="7d9f",
        server="http://127.0.0.1:7070",
        listen="127.0.0.1:7081",
    )
    assert config.primary.selector == "app=web,pod-template-hash=5c8f"
    assert config.candidate.selector == "app=web,pod-template-hash=7d9f"
    assert config.methods == ["GET"]
    assert config.compare.ignore_fields == ["requestId"]
    assert config.report_name == "web-7d9f"
    assert DifferConfig.from_json(config.to_json()) == config
