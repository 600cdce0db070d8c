"""SMS over Twilio's Messages API (httpx, HTTP Basic with the account SID and auth token).

Twilio's error messages name the phone number, so they never leave this module: a failure keeps
Twilio's numeric code only. 5xx, 429 and network failures are retryable (Temporal retries the
activity); a 4xx is final.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import structlog
from temporalio.exceptions import ApplicationError

from workers.settings import Settings

log = structlog.get_logger(__name__)

SMS_UNAVAILABLE = "SmsUnavailable"  # retryable: Twilio did not take the message
SMS_REJECTED = "SmsRejected"  # final: a configuration or request problem on our side
# Retryable, but Twilio may have taken the message (the answer was lost): not sent again.
SMS_UNCONFIRMED = "SmsUnconfirmed"
OPTED_OUT_CODES = frozenset({"21610"})  # the recipient texted STOP to this sender
UNREACHABLE_CODES = frozenset({"21211", "21614", "21612", "21408"})  # invalid or not mobile


@dataclass(frozen=True)
class Accepted:
    sid: str
    status: str  # queued or accepted
    segments: int


class Refused(Exception):
    """A final 4xx answer: Twilio's error code (its message is not kept: it names the number)."""

    def __init__(self, status: int, code: str) -> None:
        super().__init__(f"Twilio refused the message (HTTP {status}, error {code})")
        self.status, self.code = status, code


class Twilio:
    """One Twilio account. Holds a connection pool: make one per worker and reuse it."""

    def __init__(
        self, base_url: str, account_sid: str, auth_token: str, *, timeout: float = 15
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.account_sid = account_sid
        self.http = httpx.AsyncClient(
            auth=httpx.BasicAuth(account_sid, auth_token),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5)),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Twilio | None:
        """None when SMS is not configured (no account, or no sender number)."""
        if not (settings.twilio_account_sid and settings.twilio_from_numbers):
            return None
        return cls(
            settings.twilio_base_url,
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            timeout=settings.twilio_timeout_seconds,
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def send(self, to: str, sender: str, body: str, status_callback: str | None) -> Accepted:
        form = {"To": to, "From": sender, "Body": body}
        if status_callback:
            form["StatusCallback"] = status_callback
        url = f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        try:
            response = await self.http.post(url, data=form)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as err:
            log.warning("twilio_unavailable", why=type(err).__name__)
            raise ApplicationError(
                f"Twilio unavailable ({type(err).__name__})", type=SMS_UNAVAILABLE
            ) from None
        except httpx.HTTPError as err:
            log.warning("twilio_unconfirmed", why=type(err).__name__)
            raise ApplicationError(
                f"Twilio did not answer ({type(err).__name__})", type=SMS_UNCONFIRMED
            ) from None
        if response.status_code == 429 or response.status_code >= 500:
            log.warning("twilio_unavailable", status=response.status_code)
            raise ApplicationError(
                f"Twilio unavailable (HTTP {response.status_code})", type=SMS_UNAVAILABLE
            )
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if response.status_code >= 400:
            code = str(answer.get("code") or response.status_code)
            log.info("twilio_refused", status=response.status_code, error_code=code)
            raise Refused(response.status_code, code)
        return Accepted(
            sid=answer["sid"],
            status=answer.get("status") or "queued",
            segments=int(answer.get("num_segments") or 1),
        )
