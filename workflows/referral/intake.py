"""From a FHIR R4 ServiceRequest to the input of a referral case: every active order opens one."""

from __future__ import annotations

from typing import Any

from workflows.care.orders import (
    check_active_order,
    location_of,
    order_summary,
    parse_service_request,
    team_for,
)
from workflows.care.pathway import Linked
from workflows.prior_auth.intake import authorization_case
from workflows.referral.models import OutreachPlan, Priority, ReferralInput

ID_PREFIX = "referral"


def referral_input(resource: dict[str, Any], linked: Linked) -> ReferralInput:
    order = parse_service_request(resource)
    patient = check_active_order(order)
    settings = linked.settings
    return ReferralInput(
        case_id=f"{ID_PREFIX}-{order.id}",
        order=order_summary(order, patient),
        priority=Priority(order.priority or "routine"),
        team=team_for(order, settings.team_routes, settings.default_team),
        location=location_of(order),
        calendar=settings.calendar,
        policy=settings.referral_policy,
        ehr=settings.ehr_verification,
        authorization=authorization_case(order, linked),
        outreach=OutreachPlan(
            sender=settings.outreach_sender_name, callback_phone=settings.outreach_callback_phone
        )
        if settings.outreach_enabled
        else None,
    )
