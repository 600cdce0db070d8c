"""What the SMS sandbox knows of Twilio's Messages API: resources, errors, keywords, signatures.

Spelled out here rather than imported from Followthrough's activities on purpose: the sandbox
stands in for Twilio, so a field or a signature the activities get wrong fails the tests instead
of agreeing with itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

API_VERSION = "2010-04-01"
E164 = re.compile(r"^\+(1[2-9]\d{9}|[2-9]\d{6,14})$")  # NANP: +1 and ten digits

# Twilio's Advanced Opt-Out default keywords: the whole body, one word, any case.
OPT_OUT = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"}
OPT_IN = {"START", "YES", "UNSTOP"}
HELP = {"HELP", "INFO"}

GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENDED = set("^{}\\[~]|€\f")


def new_sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def rfc2822(moment: datetime) -> str:
    """Twilio's dates: 'Wed, 25 Nov 2026 16:41:51 +0000'."""
    return format_datetime(moment.astimezone(UTC))


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def opt_out_type(body: str) -> str | None:
    word = body.strip().upper()
    if word in OPT_OUT:
        return "STOP"
    if word in OPT_IN:
        return "START"
    if word in HELP:
        return "HELP"
    return None


def num_segments(body: str) -> int:
    if all(c in GSM_BASIC or c in GSM_EXTENDED for c in body):
        units, single, part = sum(2 if c in GSM_EXTENDED else 1 for c in body), 160, 153
    else:
        units, single, part = len(body.encode("utf-16-le")) // 2, 70, 67
    return 1 if units <= single else -(-units // part)


def signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """X-Twilio-Signature: base64 of HMAC-SHA1 (key: the auth token) over the full URL followed
    by every POST parameter's name and value, sorted by name."""
    data = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class TwilioError(Exception):
    """An error answer as Twilio's REST API gives it."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }


def message_resource(account_sid: str, record: dict[str, Any]) -> dict[str, Any]:
    """A Message resource as Twilio answers it (counts are strings, as Twilio's are)."""
    uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{record['sid']}"
    return {
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "body": record["body"],
        "date_created": record["date_created"],
        "date_sent": record.get("date_sent"),
        "date_updated": record["date_updated"],
        "direction": "outbound-api",
        "error_code": record.get("error_code"),
        "error_message": record.get("error_message"),
        "from": record["from"],
        "messaging_service_sid": record.get("messaging_service_sid"),
        "num_media": "0",
        "num_segments": str(record["num_segments"]),
        "price": None,
        "price_unit": "USD",
        "sid": record["sid"],
        "status": record["status"],
        "subresource_uris": {"media": f"{uri}/Media.json"},
        "to": record["to"],
        "uri": f"{uri}.json",
    }
