"""Evaluate decision triggers against the ledger, keep their state, and prove every change.

An alert's raising and clearing are ledger entries of their own (case id `alert-<rule>-<team>`),
hash-chained like a case's, so the auditor sees when a threshold was crossed and by how much, and
each is a notice to the team's supervisor, written with the entry.
"""

from __future__ import annotations

import asyncio
import statistics
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine
from sqlmodel import Field, Session, SQLModel, col, select
from temporalio import activity

from activities.ledger.anchor import Anchor
from activities.ledger.append import append_entries
from activities.ledger.metrics import MetricsQuery, compute
from activities.ledger.tables import CaseSummary, LedgerRow, as_stored
from activities.staff import StaffNoticeRecord
from workflows.care.calendar import BusinessCalendar
from workflows.care.chain import GENESIS, link
from workflows.care.models import EventKind, LedgerEntry, Role
from workflows.triggers.models import (
    ALERT_CASE_TYPE,
    Evaluation,
    EvaluationResult,
    TriggerChange,
    TriggerRule,
)


class TriggerState(SQLModel, table=True):
    __tablename__ = "trigger_state"

    rule: str = Field(primary_key=True)
    team: str = Field(primary_key=True)
    value: float
    above: float
    raised: bool = False
    changed_at: datetime | None = None
    evaluated_at: datetime


class TriggerActivities:
    def __init__(self, engine: Engine, anchor: Anchor | None = None) -> None:
        self.engine = engine
        self.anchor = anchor or Anchor()

    @activity.defn(name="evaluate_triggers")
    async def evaluate(self, evaluation: Evaluation) -> EvaluationResult:
        return await asyncio.to_thread(evaluate, self.engine, evaluation, self.anchor)


def evaluate(
    engine: Engine, evaluation: Evaluation, anchor: Anchor | None = None
) -> EvaluationResult:
    """Measure every rule, then flip the alerts that crossed their threshold.

    Each flip, its ledger entry and its supervisor's notice are written in one transaction: a
    crash at any point leaves all three or none, so a retried evaluation finds the same change
    again and records it once (the notice's delivery key is the alert's ledger entry)."""
    now = evaluation.now or datetime.now(UTC)
    measured = [
        (rule, measure(engine, rule, evaluation.calendar, now)) for rule in evaluation.rules
    ]
    changes, evaluated = [], 0
    with engine.begin() as connection, Session(bind=connection) as session:
        for rule, values in measured:
            # A team whose cases left the window has nothing over the threshold any more.
            for known in session.exec(select(TriggerState).where(TriggerState.rule == rule.name)):
                values.setdefault(known.team, 0.0)
            for team, value in sorted(values.items()):
                evaluated += 1
                state = session.get(TriggerState, (rule.name, team)) or TriggerState(
                    rule=rule.name, team=team, value=value, above=rule.above, evaluated_at=now
                )
                crossed = value > rule.above
                if crossed != state.raised:
                    state.raised, state.changed_at = crossed, now
                    change = TriggerChange(
                        rule=rule.name, team=team, value=value, above=rule.above, raised=crossed
                    )
                    _prove(connection, session, change, now, anchor)
                    changes.append(change)
                state.value, state.above, state.evaluated_at = value, rule.above, now
                session.add(state)
        session.flush()  # the transaction commits as `engine.begin()` closes
    return EvaluationResult(evaluated=evaluated, changes=changes)


def measure(
    engine: Engine, rule: TriggerRule, calendar: BusinessCalendar, now: datetime
) -> dict[str, float]:
    """The rule's metric for each team in scope (teams with no cases in scope are not listed)."""
    if rule.metric == "exception_rate":
        query = MetricsQuery(
            since=now - timedelta(days=rule.window_days),
            until=now,
            case_type=rule.case_type,
            team=rule.team,
            group_by=["team"],
        )
        return {
            group.group["team"]: group.exception_rate or 0.0
            for group in compute(engine, query, now=now)
            if group.group["team"]
        }
    with Session(engine) as session:
        base = select(CaseSummary).where(CaseSummary.case_type != ALERT_CASE_TYPE)
        if rule.case_type:
            base = base.where(CaseSummary.case_type == rule.case_type)
        if rule.team:
            base = base.where(CaseSummary.team == rule.team)
        if rule.metric == "unowned_cases":
            cutoff = as_stored(now - timedelta(days=rule.older_than_days))
            rows = session.exec(
                base.where(
                    col(CaseSummary.closed_at).is_(None),
                    col(CaseSummary.first_assigned_at).is_(None),
                    col(CaseSummary.opened_at) < cutoff,
                )
            ).all()
            teams = {row.team for row in session.exec(base).all()}
            return {team: float(sum(row.team == team for row in rows)) for team in teams}
        since = as_stored(now - timedelta(days=rule.window_days))
        rows = session.exec(
            base.where(
                col(CaseSummary.opened_at) >= since,
                col(CaseSummary.first_scheduled_at).is_not(None),
            )
        ).all()
    days: dict[str, list[int]] = {}
    for row in rows:
        opened = row.opened_at.replace(tzinfo=UTC)
        scheduled = row.first_scheduled_at.replace(tzinfo=UTC)
        days.setdefault(row.team, []).append(calendar.business_days_between(opened, scheduled))
    return {team: float(statistics.median(values)) for team, values in days.items()}


def _prove(
    connection: Connection,
    session: Session,
    change: TriggerChange,
    now: datetime,
    anchor: Anchor | None,
) -> None:
    """The change's ledger entry and its notice to the team's supervisor, in the caller's
    transaction."""
    last = session.exec(
        select(LedgerRow)
        .where(LedgerRow.case_id == change.alert_id)
        .order_by(col(LedgerRow.seq).desc())
    ).first()
    verb = "raised" if change.raised else "cleared"
    kind = EventKind.EXCEPTION_RAISED if change.raised else EventKind.EXCEPTION_CLEARED
    entry = LedgerEntry(
        case_id=change.alert_id,
        seq=(last.seq + 1) if last else 1,
        at=now,
        kind=kind,
        actor="system",
        role="system",
        summary=f"Alert {verb}: {change.rule} for team {change.team} is {change.value:g} "
        f"(threshold {change.above:g})",
        details={"rule": change.rule, "value": f"{change.value:g}", "above": f"{change.above:g}"},
        case_type=ALERT_CASE_TYPE,
        team=change.team,
        pathway="decision-triggers",
        pathway_version="2026.11",
        prev_hash=last.hash if last else GENESIS,
    )
    entry.hash = link(entry.prev_hash, entry.content())
    # The ledger's own append, on this connection: it joins the transaction, not commits it.
    append_entries(connection, [entry], anchor)
    key = f"{change.alert_id}/{entry.seq}"
    if session.exec(select(StaffNoticeRecord).where(StaffNoticeRecord.delivery_key == key)).first():
        return
    state = "crossed" if change.raised else "is back under"
    session.add(
        StaffNoticeRecord(
            delivery_key=key,
            case_id=change.alert_id,
            kind=kind,
            team=change.team,
            role=Role.SUPERVISOR,
            message=f"{change.rule} {state} its threshold for team {change.team}: "
            f"{change.value:g} (above {change.above:g})",
        )
    )


def states(engine: Engine) -> list[TriggerState]:
    with Session(engine) as session:
        return list(
            session.exec(select(TriggerState).order_by(TriggerState.rule, TriggerState.team))
        )
