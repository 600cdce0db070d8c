"""How invalid input is answered: where and what is wrong, never the input itself (it may be PHI)."""

from __future__ import annotations

from pydantic import ValidationError

from workflows.care.orders import validation_problems


def problems(err: ValidationError) -> list[dict]:
    """The validation errors as a 422's detail: location, message and type of each."""
    return validation_problems(err)
