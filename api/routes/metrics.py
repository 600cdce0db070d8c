from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from activities.ledger import metrics
from api.deps import CurrentUser, EngineDep, Instant, SettingsDep, bearer, current_user
from api.errors import SIGNED_IN, responses
from workers.settings import DEV_METRICS_SCRAPE_TOKEN, Settings
from workflows.care.models import Role

router = APIRouter(tags=["metrics"])


@router.get(
    "/api/v1/metrics",
    response_model=list[metrics.GroupMetrics],
    responses=responses(*SIGNED_IN, 403, said={403: "Another team's metrics than yours"}),
)
def care_metrics(
    actor: CurrentUser,
    engine: EngineDep,
    since: Instant | None = None,
    until: Instant | None = None,
    case_type: str | None = None,
    team: str | None = None,
    location: str | None = None,
    group_by: Annotated[
        list[metrics.Grouping],
        Query(description="Group by these, in this order; a repeated one counts once"),
    ] = [],  # noqa: B006
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
        group_by=list(dict.fromkeys(group_by)),  # one column per grouping, in the order asked
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


SCRAPE_ROLES = (Role.AUDITOR, Role.ADMIN)


def scrape_token_accepted(settings: Settings, given: str) -> bool:
    """The scrape credential matches; outside development, only one that is not the default."""
    token = settings.metrics_scrape_token
    if settings.environment != "development" and (
        token == DEV_METRICS_SCRAPE_TOKEN or len(token) < 32
    ):
        return False
    return bool(given) and hmac.compare_digest(given.encode(), token.encode())


async def scraper(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Prometheus with METRICS_SCRAPE_TOKEN, or a person with an auditor's or admin's token."""
    if credentials and scrape_token_accepted(settings, credentials.credentials):
        return
    actor = await current_user(settings, credentials)  # 401 without a valid token
    if actor.role not in SCRAPE_ROLES:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"The {actor.role.value} role cannot read /metrics (needs: auditor, admin, "
            "or the scrape token)",
        )


@router.get("/metrics", include_in_schema=False, dependencies=[Depends(scraper)])
def prometheus(engine: EngineDep) -> Response:
    registry = CollectorRegistry()
    registry.register(LedgerCollector(engine))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
