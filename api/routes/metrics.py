from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from activities.ledger import metrics
from api.deps import CurrentUser, EngineDep
from workflows.care.models import Role

router = APIRouter(tags=["metrics"])


@router.get("/api/v1/metrics", response_model=list[metrics.GroupMetrics])
def care_metrics(
    actor: CurrentUser,
    engine: EngineDep,
    since: datetime | None = None,
    until: datetime | None = None,
    case_type: str | None = None,
    team: str | None = None,
    location: str | None = None,
    group_by: Annotated[list[metrics.Grouping], Query()] = [],  # noqa: B006
) -> list[metrics.GroupMetrics]:
    """Completion, exceptions, timeliness, aging, rework and documentation, for cases opened in
    the period. Coordinators and supervisors see their own team's."""
    if actor.role in (Role.COORDINATOR, Role.SUPERVISOR):
        if team not in (None, actor.team):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"You can see the metrics of team {actor.team} only"
            )
        team = actor.team
    query = metrics.MetricsQuery(
        since=since,
        until=until,
        case_type=case_type,
        team=team,
        location=location,
        group_by=group_by,
    )
    return metrics.compute(engine, query)


class LedgerCollector:
    """Prometheus families computed from the ledger at scrape time (aggregates only, no PHI)."""

    LABELS = ["case_type", "team", "location"]
    FAMILIES = {
        "cases_opened": ("followthrough_cases_opened", "Cases opened"),
        "open": ("followthrough_cases_open", "Cases still open"),
        "completed": ("followthrough_cases_completed", "Cases completed"),
        "completion_rate": ("followthrough_completion_rate", "Completed / opened"),
        "on_time_rate": ("followthrough_on_time_rate", "Completed without escalation / completed"),
        "exception_rate": ("followthrough_exception_rate", "Escalated or excepted / opened"),
        "documentation_completeness": (
            "followthrough_documentation_completeness",
            "Completed with evidence on file / completed",
        ),
        "rework_loops": ("followthrough_rework_loops", "No-shows and failed verifications"),
        "unowned_open": ("followthrough_unowned_open", "Open cases nobody owns"),
    }

    def __init__(self, engine) -> None:
        self.engine = engine

    def collect(self):
        groups = metrics.compute(self.engine, metrics.MetricsQuery(group_by=self.LABELS))
        families = {
            key: GaugeMetricFamily(name, doc, labels=self.LABELS)
            for key, (name, doc) in self.FAMILIES.items()
        }
        aging = GaugeMetricFamily(
            "followthrough_queue_aging", "Open cases by age", labels=[*self.LABELS, "age"]
        )
        spreads = GaugeMetricFamily(
            "followthrough_hours",
            "Hours from opening (median, p90)",
            labels=[*self.LABELS, "measure", "quantile"],
        )
        for group in groups:
            labels = [group.group[key] or "" for key in self.LABELS]
            for key, family in families.items():
                value = getattr(group, key)
                if value is not None:
                    family.add_metric(labels, value)
            for bucket, count in group.queue_aging.items():
                aging.add_metric([*labels, bucket], count)
            for measure in ("time_to_completion", "time_to_schedule", "time_unowned"):
                spread = getattr(group, f"{measure}_hours")
                for quantile, value in (("0.5", spread.median), ("0.9", spread.p90)):
                    if value is not None:
                        spreads.add_metric([*labels, measure, quantile], value)
        yield from families.values()
        yield aging
        yield spreads


@router.get("/metrics", include_in_schema=False)
def prometheus(engine: EngineDep) -> Response:
    registry = CollectorRegistry()
    registry.register(LedgerCollector(engine))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
