"""Messaging tests: the real EHR sandbox, SMS sandbox and SMTP server (tests/conftest.py)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from activities.fhir.client import FhirClient
from activities.messaging.send import MessagingActivities
from tests.conftest import SmsSandbox
from tests.ehr.records import Ehr, new_id
from workers.mail_sandbox import MailSandbox
from workers.settings import Settings
from workflows.care.messaging import Medium, OutboundMessage

_numbers = itertools.count(1000)


def new_phone() -> str:
    """A made-up mobile number (555-01xx and the like are fiction's), unique in the session."""
    return f"+1212555{next(_numbers):04d}"


@pytest.fixture(scope="session")
def ehr(ehr_url: str) -> Ehr:
    return Ehr(ehr_url)


@pytest.fixture
def patient(ehr: Ehr) -> Callable[..., str]:
    """A Patient in the EHR sandbox with the given telecom and extras; its reference."""

    def make(
        phone: str | None = None,
        email: str | None = None,
        *,
        phone_use: str = "mobile",
        **extra: Any,
    ) -> str:
        telecom = []
        if phone:
            telecom.append({"system": "phone", "value": phone, "use": phone_use})
        if email:
            telecom.append({"system": "email", "value": email})
        pid = new_id("pat")
        resource = {"resourceType": "Patient", "id": pid, "name": [{"family": "Synthetic"}]}
        ehr.put({**resource, **({"telecom": telecom} if telecom else {}), **extra})
        return f"Patient/{pid}"

    return make


def messaging_settings(
    sms: SmsSandbox | None = None, mail: MailSandbox | None = None, **more: Any
) -> Settings:
    update: dict[str, Any] = {"environment": "test", "public_url": "http://127.0.0.1:9"}
    if sms:
        update.update(sms.settings())
    if mail:
        update.update(mail.settings())
    return Settings(_env_file=None).model_copy(update={**update, **more})


@pytest.fixture
async def fhir(ehr_url: str) -> AsyncIterator[FhirClient]:
    client = FhirClient(ehr_url)
    yield client
    await client.aclose()


@pytest.fixture
def sender(engine, fhir, sms_sandbox, mail_sandbox) -> Callable[..., MessagingActivities]:
    """The messaging activities with SMS and email through the sandboxes (settings overridable)."""

    def make(**more: Any) -> MessagingActivities:
        settings = messaging_settings(sms_sandbox, mail_sandbox, **more)
        return MessagingActivities(engine, fhir, settings)

    return make


def message(
    patient: str, channel: Medium = Medium.SMS, case_id: str | None = None, n: int = 1, **more: Any
) -> OutboundMessage:
    case_id = case_id or f"referral-{uuid.uuid4().hex[:10]}"
    return OutboundMessage(
        attempt_id=f"{case_id}-m{n}",
        case_id=case_id,
        patient=patient,
        order="ServiceRequest/sr-1",
        channel=channel,
        kind="referral.schedule",
        subject="Your referral" if channel != Medium.SMS else None,
        body=more.pop("body", "Please call us to book your visit. Reply 1 to confirm."),
        **more,
    )
