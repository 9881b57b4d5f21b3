"""Pure parts of the admin client: subscription stat names, version comparison, the confirm
poll schedule, and finding Envoy's rejection reason in its log."""

from __future__ import annotations

from pathlib import Path

from shoal.agent.envoy import AppliedVersions, ClusterStats
from shoal.agent.envoy.admin import (
    _reached,
    last_rejection_reason,
    poll_delays,
    subscription_keys,
)

LOG = """\
[2026-11-26 04:23:08.511][9468][warning][main] [server.cc:1059] There is no configured limit
[2026-11-26 04:23:13.366][9468][warning][config] [filesystem_subscription_impl.cc:81] \
Filesystem config update rejected: goo.gle/debugonly
resources {
  port_value: 70000
}
: Proto constraint validation failed (PortValue: value must be less than or equal to 65535)
[2026-11-26 04:23:14.000][9468][warning][main] something else
"""


def test_subscription_keys_name_the_stats_envoy_reports() -> None:
    keys = subscription_keys(
        AppliedVersions(cds="3", lds="2", eds={"ns.svc.abc": "5"}, rds={"ns.svc": "4"})
    )
    assert keys == {
        "cluster_manager.cds": "3",
        "listener_manager.lds": "2",
        "cluster.ns.svc.abc": "5",
        "http.ns.svc.rds.ns.svc": "4",
    }


def test_a_later_version_confirms_an_earlier_one() -> None:
    assert _reached("7", "7") and _reached("8", "7")
    assert not _reached("6", "7") and not _reached(None, "1")


def test_rejection_reason_is_the_last_line_of_the_last_entry(tmp_path: Path) -> None:
    log = tmp_path / "envoy.log"
    log.write_text(LOG)
    reason = last_rejection_reason(log)
    assert reason is not None and reason.startswith("Proto constraint validation failed")
    assert "65535" in reason
    log.write_text(
        "[2026-11-26 04:23:08.511][1][warning][main] nothing rejected here\n".replace(
            "rejected", "refused"
        )
    )
    assert last_rejection_reason(log) is None
    assert last_rejection_reason(tmp_path / "missing.log") is None


def test_success_rate_counts_5xx_as_failures() -> None:
    stats = ClusterStats("c", 10, 8, 1, 1, None, None, None)
    assert stats.success_rate == 0.9
    assert ClusterStats("c", 0, 0, 0, 0, None, None, None).success_rate is None


def test_confirm_looks_soon_first_then_every_interval() -> None:
    delays = poll_delays(0.01)
    assert [next(delays) for _ in range(7)] == [0.001, 0.002, 0.004, 0.008, 0.01, 0.01, 0.01]
    slow = poll_delays(0.003)
    assert [next(slow) for _ in range(4)] == [0.001, 0.002, 0.003, 0.003]
