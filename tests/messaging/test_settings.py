"""The address key is a secret: production refuses the development one once SMS or email is on."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from workers.settings import DEV_ADDRESS_KEY, Settings

OWN = {
    "environment": "production",
    "jwt_secret": "j" * 40,
    "ledger_anchor_key": "l" * 40,
    "csrf_secret": "c" * 40,
}


@pytest.mark.parametrize(
    "channel",
    [{"twilio_account_sid": "AC" + "0" * 32}, {"smtp_host": "smtp.example.org"}],
    ids=["sms", "email"],
)
def test_production_refuses_the_development_address_key(channel):
    with pytest.raises(ValidationError, match="MESSAGING_ADDRESS_KEY"):
        Settings(_env_file=None, **OWN, **channel)
    with pytest.raises(ValidationError, match="MESSAGING_ADDRESS_KEY"):
        Settings(_env_file=None, messaging_address_key="short", **OWN, **channel)
    own = Settings(_env_file=None, messaging_address_key="m" * 40, **OWN, **channel)
    assert own.messaging_address_key != DEV_ADDRESS_KEY


def test_without_sms_or_email_no_address_is_hashed_and_no_key_is_needed():
    assert Settings(_env_file=None, **OWN).messaging_address_key == DEV_ADDRESS_KEY
