"""The actions every pathway offers: claim or assign the case, add a note, cancel it.

An action's model is also its form: the web UI renders each field from its type, `title`,
`description` (the help under the field) and `examples` (the placeholder). `actor` is never a
field: the API sets it from the caller's token.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from workflows.care.models import Actor


class Action(BaseModel):
    actor: Actor


class OpenCase(Action):
    """Sent with the start of a case: answers with the case, and whether this request opened it."""


class Assign(Action):
    """Claim the case, or give it to someone else (supervisors)."""

    owner: str | None = Field(
        default=None,
        title="Assign to (user id)",
        examples=["cora"],
        description="Leave empty to claim the case yourself",
    )


class AddNote(Action):
    """Add a note to the case's timeline."""

    text: str = Field(min_length=1, max_length=2000, title="Note")


class Cancel(Action):
    """Cancel the case: it closes, and no more actions are accepted."""

    reason: str = Field(
        min_length=3, max_length=500, title="Reason", description="At least 3 characters"
    )
