"""Queue rows name the patient and service from one EHR search per page, then from memory."""

from __future__ import annotations

import httpx
from sqlmodel import Session, select

from activities.fhir.client import FhirClient
from activities.ledger.tables import AccessRow
from api.patients import QueueLabels, RowLabel
from workflows.care.models import Actor, Role

CORA = Actor(user_id="cora", role=Role.COORDINATOR, team="cardiology")


def order(oid: str, patient: str) -> dict:
    return {
        "resourceType": "ServiceRequest",
        "id": oid,
        "status": "active",
        "intent": "order",
        "subject": {"reference": f"Patient/{patient}"},
        "code": {"text": "Echocardiogram"},
    }


def person(pid: str, given: str, family: str) -> dict:
    return {"resourceType": "Patient", "id": pid, "name": [{"given": [given], "family": family}]}


class IncludingEhr(httpx.MockTransport):
    """An EHR that honours `_include=ServiceRequest:subject`, counting the searches it answers."""

    def __init__(self) -> None:
        self.searches: list[httpx.URL] = []
        super().__init__(self.answer)

    def answer(self, request: httpx.Request) -> httpx.Response:
        self.searches.append(request.url)
        assert request.url.params["_include"] == "ServiceRequest:subject"
        entries = [
            {"resource": order("sr-1", "p-1"), "search": {"mode": "match"}},
            {"resource": order("sr-2", "p-2"), "search": {"mode": "match"}},
            {"resource": person("p-1", "Ada", "Lovelace"), "search": {"mode": "include"}},
            {"resource": person("p-2", "Alan", "Turing"), "search": {"mode": "include"}},
        ]
        return httpx.Response(200, json={"resourceType": "Bundle", "entry": entries})


async def test_one_search_names_every_row_and_the_next_page_comes_from_memory(engine):
    ehr = IncludingEhr()
    fhir = FhirClient("http://ehr.test/fhir/R4", transport=ehr)
    labels = QueueLabels(ttl=60)
    rows = {"referral-sr-1": "sr-1", "referral-sr-2": "sr-2"}

    first = await labels.for_rows(fhir, engine, CORA, rows)
    again = await labels.for_rows(fhir, engine, CORA, rows)

    assert (
        first
        == again
        == {
            "referral-sr-1": RowLabel(name="Ada Lovelace", service="Echocardiogram"),
            "referral-sr-2": RowLabel(name="Alan Turing", service="Echocardiogram"),
        }
    )
    assert len(ehr.searches) == 1
    assert ehr.searches[0].params["_id"] == "sr-1,sr-2"
    with Session(engine) as session:
        reads = session.exec(select(AccessRow.case_id, AccessRow.view)).all()
    assert sorted(reads) == [("referral-sr-1", "queue-patient"), ("referral-sr-2", "queue-patient")]
