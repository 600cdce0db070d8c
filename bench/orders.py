"""Synthetic orders for the benchmark's cases (made-up ids, no patient data)."""

from __future__ import annotations

from temporalio.client import Client

from activities.fhir.intake import open_case
from workers.demo import CARDIOLOGY, IMAGING, service_request
from workers.settings import Settings
from workflows.care.pathway import Linked
from workflows.referral.intake import referral_input
from workflows.referral.pathway import PATHWAY as REFERRAL


def order(run: str, index: int) -> dict:
    """Three in four go to cardiology (the team the action benchmark acts as); the rest vary
    team, priority and location so queue filters have something to filter out."""
    cardiology = index % 4 != 3
    return service_request(
        f"{run}-{index:06d}",
        f"bench-p{index}",
        "Cardiology consult" if cardiology else "MRI lumbar spine",
        CARDIOLOGY if cardiology else IMAGING,
        priority="urgent" if index % 5 == 0 else "routine",
        location="north-clinic" if index % 3 == 0 else "main-clinic",
    )


def is_cardiology(index: int) -> bool:
    return index % 4 != 3


def case_id(run: str, index: int) -> str:
    return f"referral-{run}-{index:06d}"


async def open_direct(client: Client, settings: Settings, run: str, index: int) -> None:
    """Open a case as the API does, minus HTTP: the same input and the same update-with-start."""
    opened = await open_case(
        client,
        REFERRAL,
        referral_input(order(run, index), Linked(settings)),
        settings.temporal_task_queue,
    )
    if not opened.created:
        raise RuntimeError(f"{case_id(run, index)} already existed")
