"""Search attributes that power work queues. None of them may carry PHI: they are not encrypted."""

from temporalio.common import SearchAttributeKey

CASE_TYPE = SearchAttributeKey.for_keyword("CaseType")
STAGE = SearchAttributeKey.for_keyword("Stage")
OWNER_TEAM = SearchAttributeKey.for_keyword("OwnerTeam")
OWNER = SearchAttributeKey.for_keyword("Owner")
LOCATION = SearchAttributeKey.for_keyword("Location")
PRIORITY = SearchAttributeKey.for_keyword("Priority")
DUE_AT = SearchAttributeKey.for_datetime("DueAt")
STALLED = SearchAttributeKey.for_bool("Stalled")

ALL = [CASE_TYPE, STAGE, OWNER_TEAM, OWNER, LOCATION, PRIORITY, DUE_AT, STALLED]
