"""Telling the referral of the same order how its authorization stands, so that the visit is not
scheduled before it is approved. One signal per change that matters, in order; a referral that
has closed (or never opened) is no reason to stop."""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from workflows.care.case import Case
    from workflows.prior_auth.models import AuthorizationNews

SIGNAL = "authorization_decided"  # the referral's signal (workflows/referral/workflow.py)


class News:
    def __init__(self, case: Case, referral: str | None) -> None:
        self.case = case
        self.referral = referral
        self.unsent: list[AuthorizationNews] = []
        self.sending = False

    @property
    def quiet(self) -> bool:
        return not self.unsent and not self.sending

    def tell(self) -> None:
        """The referral is told where the authorization now stands."""
        if self.referral is None:
            return
        case = self.case
        self.unsent.append(
            AuthorizationNews(
                authorization=case.case_id,
                stage=case.stage,
                submission=case.counters.get("submissions", 0),
                auth_number=case.references.get("auth_number"),
                authorized_until=case.moments.get("authorized_until"),
            )
        )

    def start(self) -> None:
        if self.referral is not None:
            asyncio.create_task(self._send())

    async def _send(self) -> None:
        assert self.referral is not None
        referral = workflow.get_external_workflow_handle(self.referral)
        while True:
            await workflow.wait_condition(lambda: bool(self.unsent))
            self.sending = True
            news = self.unsent.pop(0)
            try:
                await referral.signal(SIGNAL, news)
            except FailureError:
                # The referral has closed or was never opened: nobody left to hold back.
                workflow.logger.info("Referral not told of the authorization: not running")
            self.sending = False
