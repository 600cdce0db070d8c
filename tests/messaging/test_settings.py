"""The address key is a secret: production refuses the development one."""

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


def test_production_refuses_the_development_address_key():
    with pytest.raises(ValidationError, match="MESSAGING_ADDRESS_KEY"):
        Settings(_env_file=None, **OWN)
    with pytest.raises(ValidationError, match="MESSAGING_ADDRESS_KEY"):
        Settings(_env_file=None, messaging_address_key="short", **OWN)
    own = Settings(_env_file=None, messaging_address_key="m" * 40, **OWN)
    assert own.messaging_address_key != DEV_ADDRESS_KEY
