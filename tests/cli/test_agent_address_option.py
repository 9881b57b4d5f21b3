"""`shoal agent --address` is checked before the agent starts: one IPv4 address of this
machine, else a usage error naming the option (exit 2), never a traceback."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from shoal.cli.main import app, node_address_problem


@pytest.mark.parametrize(
    ("address", "says"),
    [
        ("node-1.example", "is not an IP address"),
        ("::1", "IPv6"),
        ("0.0.0.0", "cannot be advertised"),
        ("192.0.2.1", "is not an address of this machine"),  # TEST-NET-1: on no machine
    ],
)
def test_a_bad_address_is_a_usage_error(address: str, says: str) -> None:
    result = CliRunner().invoke(
        app, ["agent", "--server", "http://127.0.0.1:9", "--address", address]
    )
    assert result.exit_code == 2, result.output
    assert "--address" in result.output and says in result.output
    assert "Traceback" not in result.output


def test_loopback_addresses_of_this_machine_are_accepted() -> None:
    assert node_address_problem("127.0.0.1") is None
    assert node_address_problem("127.0.0.2") is None
