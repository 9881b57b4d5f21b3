"""The ParallelRun rows of `shoal rollout status`: where live traffic goes, what is mirrored
to the differ, and the DiffReport's running tally with the top differing fields.

`parallel_rows` is pure (a Deployment and its report -> (label, text) rows, the shape of
`shoal.cli.rollout_view.rollout_lines`, which calls it); `fetch_report` is the one read.
The full per-endpoint tables are `shoal rollout diffs deployment/NAME` (`shoal.cli.diffs`).
"""

from __future__ import annotations

from datetime import datetime

from shoal.api.deployment import Deployment
from shoal.api.diffreport import DiffReport, report_name
from shoal.api.errors import NotFound
from shoal.cli.diffs import summary
from shoal.client import AsyncClient
from shoal.controllers.strategies.parallel import top_field_summaries


def _candidate(deployment: Deployment) -> str | None:
    rollout = deployment.status.rollout
    if deployment.spec.strategy.type != "ParallelRun" or rollout is None:
        return None
    return rollout.new_hash


def parallel_rows(
    deployment: Deployment, report: DiffReport | None, now: datetime
) -> list[tuple[str, str]]:
    """Rows for a ParallelRun rollout comparing a candidate; [] otherwise."""
    candidate = _candidate(deployment)
    settings = deployment.spec.strategy.parallel_run
    rollout = deployment.status.rollout
    if candidate is None or settings is None or rollout is None:
        return []
    mirrored = rollout.traffic.canary == candidate and not rollout.aborted
    methods = ",".join(settings.methods)
    rows = [
        (
            "compare",
            f"live 100% -> {rollout.stable_hash}; "
            + (
                f"{settings.mirror_percent:g}% of {methods} mirrored to the differ "
                f"(candidate {candidate})"
                if mirrored
                else f"not mirroring (candidate {candidate})"
            ),
        ),
        (
            "gate",
            f"diff rate <= {settings.max_diff_rate * 100:g}% after {settings.min_samples} "
            f"samples and {settings.duration or 0} -> {settings.then}",
        ),
    ]
    if report is None:
        rows.append(("diffs", "no report yet (the differ is starting)"))
        return rows
    rows.append(("diffs", summary(report, now)))
    rows += [("", line) for line in top_field_summaries(report.status)]
    return rows


async def fetch_report(client: AsyncClient, deployment: Deployment) -> DiffReport | None:
    candidate = _candidate(deployment)
    if candidate is None:
        return None
    meta = deployment.metadata
    try:
        return await client.get(
            DiffReport, report_name(meta.name, candidate), meta.namespace or "default"
        )
    except NotFound:
        return None
