"""A patient's addresses, read from the EHR Patient when a message goes out and never kept: the app
database holds only a keyed hash of each (HMAC-SHA256 under MESSAGING_ADDRESS_KEY), enough to
match an inbound text or an opt-out to the address without storing the number itself."""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

from workflows.care.messaging import Medium


def phone_e164(value: str) -> str:
    """A US-style phone number as E.164 (+1 and ten digits); one already in E.164 unchanged;
    anything else as given, for the provider to refuse."""
    value = value.strip()
    if value.startswith("+"):
        return "+" + re.sub(r"\D", "", value)
    digits = re.sub(r"\D", "", value)
    if len(digits) == 10:
        return "+1" + digits
    if len(digits) == 11 and digits.startswith("1"):
        return "+" + digits
    return value


def normalized(channel: Medium, address: str) -> str:
    return phone_e164(address) if channel == Medium.SMS else address.strip().lower()


def address_hash(key: str, channel: Medium, address: str) -> str:
    """The keyed hash an address is stored as (hex, 64 characters)."""
    data = f"{channel.value}:{normalized(channel, address)}".encode()
    return hmac.new(key.encode(), data, hashlib.sha256).hexdigest()


def _in_use(point: dict[str, Any]) -> bool:
    return bool(point.get("value")) and not (point.get("period") or {}).get("end")


def _ranked(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(points, key=lambda p: p.get("rank") or 1_000_000)


def patient_address(patient: dict[str, Any], channel: Medium) -> str | None:
    """The patient's address for a channel: for SMS a telecom `sms`, or a `phone` whose use is
    `mobile`; for email a telecom `email`. Ended ones are skipped; `rank` orders the rest."""
    points = [p for p in patient.get("telecom") or [] if _in_use(p)]
    if channel == Medium.SMS:
        found = [
            p
            for p in points
            if p.get("system") == "sms" or (p.get("system") == "phone" and p.get("use") == "mobile")
        ]
    elif channel == Medium.EMAIL:
        found = [p for p in points if p.get("system") == "email"]
    else:
        return None
    found = [p for p in found if p.get("use") != "old"]
    return _ranked(found)[0]["value"] if found else None
