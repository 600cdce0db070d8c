"""A text due at night waits for 8:00 in the patient's morning, across the change to daylight
saving time. A module of its own: it moves its time-skipping clock to March 2027."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from tests.ehr.records import Ehr
from workflows.care.messaging import Medium
from workflows.referral.models import Assign
from workflows.referral.workflow import ReferralWorkflow

from .outreach_kit import Provider, detail, messaging_worker, outreach_input
from .referral_kit import COORDINATOR, act, open_referral


@pytest.fixture(scope="module")
def ehr(ehr_url: str) -> Ehr:
    return Ehr(ehr_url)


async def test_a_night_text_waits_for_eight_in_the_morning_across_the_dst_change(
    time_skipping, client, engine, task_queue, ehr, ehr_url
):
    # Saturday 13 March 2027, 21:30 in Los Angeles (PST, UTC-8) is 05:30 UTC on the 14th. Clocks
    # go forward at 2:00 that night, so 8:00 on Sunday the 14th is PDT (UTC-7): 15:00 UTC, not
    # the 16:00 UTC that the evening's offset would give.
    evening = datetime(2027, 3, 14, 5, 30, tzinfo=UTC)
    morning = datetime(2027, 3, 14, 15, 0, tzinfo=UTC)
    await time_skipping.sleep(evening - await time_skipping.get_current_time())
    provider = Provider(timezone="America/Los_Angeles")
    async with messaging_worker(client, engine, task_queue, ehr_url, provider):
        handle = await open_referral(client, task_queue, outreach_input(ehr))
        await act(handle, ReferralWorkflow.assign, Assign(actor=COORDINATOR))
        for _ in range(200):
            found = await detail(handle)
            if found.outreach and found.outreach.next_at:
                break
            await asyncio.sleep(0.05)
        assert found.outreach.next_at == morning and found.outreach.next_channel == "sms"

        await time_skipping.sleep(
            morning - timedelta(minutes=1) - await time_skipping.get_current_time()
        )
        assert provider.by(Medium.SMS) == []
        await time_skipping.sleep(timedelta(minutes=2))
        for _ in range(200):
            if provider.by(Medium.SMS):
                break
            await asyncio.sleep(0.05)
        (text,) = provider.by(Medium.SMS)
        assert abs((text.at - morning).total_seconds()) < 10
