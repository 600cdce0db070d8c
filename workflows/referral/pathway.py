"""The referral pathway as the rest of Followthrough sees it: what opens it, its stages, its
actions, its deadlines."""

from __future__ import annotations

from workflows.care.pathway import ActionSpec, Pathway, add_note, cancel, claim_or_assign, stages_of
from workflows.referral import models
from workflows.referral.intake import ID_PREFIX, referral_input
from workflows.referral.models import CLOSED, TASK_STATES, Stage
from workflows.referral.outreach import OUTREACH_STAGES
from workflows.referral.workflow import ReferralWorkflow

LABELS = {
    Stage.UNASSIGNED: "Unassigned",
    Stage.AWAITING_SCHEDULING: "Awaiting scheduling",
    Stage.SCHEDULED: "Scheduled",
    Stage.AWAITING_RESULT: "Awaiting result",
    Stage.COMPLETED: "Completed",
    Stage.CANCELLED: "Cancelled",
    Stage.PATIENT_DECLINED: "Patient declined",
    Stage.UNABLE_TO_REACH: "Unable to reach",
}
VISIT = frozenset({Stage.SCHEDULED, Stage.AWAITING_RESULT})

PATHWAY = Pathway(
    case_type="referral",
    id_prefix=ID_PREFIX,
    title="Referral",
    description="From an order to an appointment kept and its report back to the referrer.",
    workflow=ReferralWorkflow,
    stages=stages_of(LABELS, TASK_STATES, CLOSED),
    actions=(
        claim_or_assign(),
        ActionSpec(
            "mark-scheduled",
            "mark_scheduled",
            models.MarkScheduled,
            "Mark scheduled",
            frozenset({Stage.AWAITING_SCHEDULING}),
        ),
        ActionSpec(
            "record-outreach",
            "record_outreach",
            models.RecordOutreach,
            "Record outreach attempt",
            frozenset({Stage.AWAITING_SCHEDULING, Stage.SCHEDULED}),
            button="Record attempt",
        ),
        ActionSpec(
            "mark-completed", "mark_completed", models.MarkCompleted, "Mark completed", VISIT
        ),
        ActionSpec(
            "record-documents",
            "record_documents",
            models.RecordDocuments,
            "Record documents received",
            button="Record documents",
        ),
        ActionSpec("mark-no-show", "mark_no_show", models.MarkNoShow, "Record no-show", VISIT),
        ActionSpec(
            "pause-outreach",
            "pause_outreach",
            models.PauseOutreach,
            "Pause messages to the patient",
            frozenset(OUTREACH_STAGES),
            button="Pause messages",
        ),
        ActionSpec(
            "resume-outreach",
            "resume_outreach",
            models.ResumeOutreach,
            "Resume messages to the patient",
            frozenset(OUTREACH_STAGES),
            button="Resume messages",
        ),
        add_note(),
        cancel("Cancel the referral"),
    ),
    opens_from="ServiceRequest",
    intake=referral_input,
    deadlines={
        Stage.UNASSIGNED: "Claimed within 2 business days (routine; 1 urgent, same day stat)",
        Stage.AWAITING_SCHEDULING: "Scheduled within 10 business days (routine; 3 urgent)",
        Stage.AWAITING_RESULT: "Report back within 10 business days of the appointment",
    },
)
