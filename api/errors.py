"""How invalid input is answered: where and what is wrong, never the input itself (it may be PHI)."""

from __future__ import annotations

from pydantic import ValidationError


def problems(err: ValidationError) -> list[dict]:
    """The validation errors as a 422's detail: location, message and type of each."""
    return [
        {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in err.errors(include_input=False, include_url=False)
    ]
