"""Every pathway Followthrough runs. Adding one is adding its `PATHWAY` here."""

from __future__ import annotations

from functools import cache

from workflows.care.pathway import Pathway
from workflows.prior_auth.pathway import PATHWAY as PRIOR_AUTH
from workflows.referral.pathway import PATHWAY as REFERRAL

PATHWAYS: tuple[Pathway, ...] = (REFERRAL, PRIOR_AUTH)
BY_TYPE = {pathway.case_type: pathway for pathway in PATHWAYS}
BY_PREFIX = {pathway.id_prefix: pathway for pathway in PATHWAYS}


def for_case(case_id: str) -> Pathway | None:
    """The pathway a case id belongs to (ids are '<prefix>-<resource id>')."""
    return BY_PREFIX.get(case_id.split("-", 1)[0])


def opened_by(resource_type: str) -> list[Pathway]:
    return [pathway for pathway in PATHWAYS if pathway.opens_from == resource_type]


@cache
def stage_labels() -> dict[str, str]:
    """Every pathway's stage labels, for pages that list cases of any pathway."""
    labels: dict[str, str] = {}
    for pathway in PATHWAYS:
        labels.update({name: stage.label for name, stage in pathway.stages.items()})
    return labels
