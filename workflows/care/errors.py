"""Why a care-team action was turned away. The `type` names travel to the API, which maps them to
HTTP status codes; the messages are written for the person who tried the action."""

from temporalio.exceptions import ApplicationError

ACTION_NOT_ALLOWED = "ActionNotAllowed"  # does not fit the case's stage -> 409
FORBIDDEN = "Forbidden"  # the caller's role or team may not act on this case -> 403
INVALID_ACTION = "InvalidAction"  # the action's own content is wrong -> 422


def not_allowed(message: str) -> ApplicationError:
    return ApplicationError(message, type=ACTION_NOT_ALLOWED, non_retryable=True)


OTHER_TEAM = "other_team"  # a FORBIDDEN detail: the case is another team's (the API says no more)


def forbidden(message: str, *, other_team: bool = False) -> ApplicationError:
    details = (OTHER_TEAM,) if other_team else ()
    return ApplicationError(message, *details, type=FORBIDDEN, non_retryable=True)


def invalid(message: str) -> ApplicationError:
    return ApplicationError(message, type=INVALID_ACTION, non_retryable=True)
