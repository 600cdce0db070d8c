"""The prior-authorization pathway as the rest of Followthrough sees it: what opens it, its
stages, its actions, its deadlines."""

from __future__ import annotations

from workflows.care.pathway import (
    SUPERVISORS,
    ActionSpec,
    Pathway,
    add_note,
    cancel,
    claim_or_assign,
    stages_of,
)
from workflows.prior_auth import models
from workflows.prior_auth.intake import ID_PREFIX, prior_auth_input
from workflows.prior_auth.models import (
    ATTACHING,
    CLOSED,
    DECIDING_APPEAL,
    PREPARING,
    TASK_STATES,
    Stage,
)
from workflows.prior_auth.workflow import PriorAuthWorkflow

LABELS = {
    Stage.COLLECTING: "Collecting prerequisites",
    Stage.SUBMITTED: "Submitted",
    Stage.PENDED: "Pended by payer",
    Stage.APPROVED: "Approved",
    Stage.DENIED: "Denied",
    Stage.APPEALING: "Appealing",
    Stage.DELIVERED: "Delivered",
    Stage.CANCELLED: "Cancelled",
    Stage.CLOSED_DENIED: "Closed after denial",
}

PATHWAY = Pathway(
    case_type="prior_auth",
    id_prefix=ID_PREFIX,
    title="Prior authorization",
    description="From an order that needs the payer's authorization to an approval used in time.",
    workflow=PriorAuthWorkflow,
    stages=stages_of(LABELS, TASK_STATES, CLOSED),
    actions=(
        claim_or_assign(),
        ActionSpec(
            "attach-document",
            "attach_document",
            models.AttachDocument,
            "Attach a document",
            frozenset(ATTACHING),
            button="Attach",
        ),
        ActionSpec(
            "waive-prerequisite",
            "waive_prerequisite",
            models.WaivePrerequisite,
            "Waive a prerequisite",
            frozenset(PREPARING),
            roles=SUPERVISORS,
            button="Waive",
        ),
        ActionSpec(
            "submit-now",
            "submit_now",
            models.SubmitNow,
            "Submit to the payer",
            frozenset(PREPARING),
        ),
        ActionSpec(
            "record-payer-call",
            "record_payer_call",
            models.RecordPayerCall,
            "Record a payer call",
            button="Record call",
        ),
        ActionSpec(
            "start-appeal",
            "start_appeal",
            models.StartAppeal,
            "Appeal the denial",
            frozenset({Stage.DENIED}),
            button="Appeal",
        ),
        ActionSpec(
            "close-denied",
            "close_denied",
            models.CloseDenied,
            "Close without appeal",
            frozenset(DECIDING_APPEAL),
            button="Close",
            danger=True,
        ),
        ActionSpec(
            "mark-delivered",
            "mark_delivered",
            models.MarkDelivered,
            "Mark the service delivered",
            frozenset({Stage.APPROVED}),
            button="Mark delivered",
        ),
        add_note(),
        cancel("Cancel the authorization"),
    ),
    opens_from="ServiceRequest",
    intake=prior_auth_input,
    deadlines={
        Stage.COLLECTING: "Prerequisites on file and the request out within 5 business days",
        Stage.PENDED: "The payer decides within 72 hours (expedited) or 7 calendar days",
        Stage.APPROVED: "The service delivered before the authorization ends",
        Stage.DENIED: "Appeal or close within 3 business days",
        Stage.APPEALING: "A new request within 10 business days (5 with a peer-to-peer review)",
    },
)
