from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from activities.triggers import states
from api.audit import StoredTime
from api.deps import CurrentUser, EngineDep, SettingsDep
from api.errors import responses
from workflows.care.models import Role
from workflows.triggers.models import TriggerRule

router = APIRouter(prefix="/api/v1/triggers", tags=["metrics"], responses=responses(401))


class TriggerView(BaseModel):
    rule: TriggerRule
    team: str | None = None
    value: float | None = None
    raised: bool = False
    changed_at: StoredTime | None = None
    evaluated_at: StoredTime | None = None


@router.get("", response_model=list[TriggerView])
def trigger_states(
    actor: CurrentUser, engine: EngineDep, settings: SettingsDep
) -> list[TriggerView]:
    """Each configured trigger, per team: its last value and whether its alert is raised.
    Coordinators and supervisors see their own team's."""
    rules = {rule.name: rule for rule in settings.trigger_rules}
    own_team_only = actor.role in (Role.COORDINATOR, Role.SUPERVISOR)
    views, seen = [], set()
    for state in states(engine):
        if state.rule not in rules or (own_team_only and state.team != actor.team):
            continue
        seen.add(state.rule)
        views.append(
            TriggerView(
                rule=rules[state.rule],
                team=state.team,
                value=state.value,
                raised=state.raised,
                changed_at=state.changed_at,
                evaluated_at=state.evaluated_at,
            )
        )
    # Rules not evaluated yet still show, so a reader knows what is being watched.
    views += [TriggerView(rule=rule) for name, rule in rules.items() if name not in seen]
    return views
