"""How an outreach reaches its patient: which channels can (the contact read from the EHR), a
message sent through the messaging activities, or a call for a person to make; each attempt kept
on the case and written to the EHR as a FHIR Communication. Mixed into `Outreach` (see
outreach.py), whose state and moves it uses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.care import queues
    from workflows.care.calls import CALL_TIMEOUT, RETRY
    from workflows.care.case import Case
    from workflows.care.messaging import (
        CommunicationRecord,
        Medium,
        OutboundMessage,
        PatientContact,
        SendResult,
        SendStatus,
        Touch,
        segments,
    )
    from workflows.care.models import (
        SYSTEM,
        ChecklistItem,
        EventKind,
        OutreachAttempt,
        OutreachState,
        Role,
        StaffNotice,
    )

# The messaging and EHR activities, by name (activities/messaging/, activities/fhir/).
SEND_MESSAGE = "send_message"
PATIENT_CONTACT = "patient_contact"
RECORD_COMMUNICATION = "record_communication"

SEND_TIMEOUT = timedelta(seconds=60)
# A Communication the EHR will not take within this is given up on, and the case says so.
WRITE_WITHIN = timedelta(days=1)
ATTEMPTS_KEPT = 20  # attempts the case keeps (newest); the ledger and the EHR keep them all
CALL_TASK = "call-patient"  # the checklist item of a staff call
TASK = "task"  # a call attempt's status: a person's task, never sent
FAILED = "failed"  # the send was refused (a bug or a rejected message): the next channel goes
NOT_DONE = {  # a Communication's statusReason, by the attempt's status
    SendStatus.OPTED_OUT: "The patient opted out of this channel",
    SendStatus.UNREACHABLE: "The address is known to be undeliverable",
    SendStatus.NO_ADDRESS: "No address on file for this channel",
    SendStatus.BUSY: "No sender number free for this patient",
    FAILED: "The message was refused",
}


@dataclass(frozen=True)
class Message:
    """A rendered message: its body (and, for email and portal, its subject)."""

    body: str
    subject: str | None = None


# The pathway's templates: (kind, language, channel) -> Message.
Compose = Callable[[str, str, Medium], Message]


class Touches:
    # Set up by Outreach.
    case: Case
    compose: Compose
    state: OutreachState
    epoch: int
    sending: bool
    writes: set[asyncio.Task[None]]

    def call_task(self, why: str, *, kind: str | None = None, touch: int | None = None) -> None:
        """A person calls the patient: "Call the patient" on the checklist, owned by the case's
        owner and due by close of the next business day, and a notice to the owner (or, unowned,
        to the team's coordinators)."""
        case, now = self.case, workflow.now()
        due = case.calendar.close_of_business(now, 1)
        item = case.checklist.get(CALL_TASK)
        if item is None or item.status != "open":
            item = ChecklistItem(name=CALL_TASK, title="Call the patient")
            case.checklist[CALL_TASK] = item
        item.owner, item.note = case.owner, why
        item.due_at = min(item.due_at, due) if item.due_at else due
        attempt = self._attempt(Medium.CALL, kind or self.state.kind or "", TASK, touch)
        who = case.owner or f"the {case.team} coordinators"
        case.record(
            EventKind.OUTREACH,
            SYSTEM,
            f"Call the patient ({why}): task for {who}, due {item.due_at.isoformat()}",
            details={
                "attempt": attempt.attempt_id,
                "channel": Medium.CALL.value,
                "status": TASK,
                "kind": attempt.kind,
                "due_at": item.due_at.isoformat(),
            },
        )
        case.notify(
            StaffNotice(
                case_id=case.case_id,
                kind=EventKind.OUTREACH,
                team=case.team,
                role=Role.COORDINATOR,
                user_id=case.owner,
                message=f"Case {case.case_id}: call the patient ({why})",
                due_at=item.due_at,
            )
        )

    def call_done(self, why: str) -> bool:
        """The open call task is done (the call was made, or the need for it has gone)."""
        item = self.case.checklist.get(CALL_TASK)
        if item is None or item.status != "open":
            return False
        item.status, item.note, item.observed_at = "met", why, workflow.now()
        return True

    async def _read_contact(self) -> None:
        """Which channels reach the patient. An EHR that is down is waited out (no attempt
        limit); a read still under way when the case continues as new or closes is simply read
        again by the next run, or no longer needed, so it never holds the case."""
        case, s = self.case, self.state
        try:
            contact = await workflow.execute_activity(
                PATIENT_CONTACT,
                case.order.patient,
                task_queue=queues.ehr(),
                result_type=PatientContact,
                start_to_close_timeout=CALL_TIMEOUT,
                retry_policy=RETRY,
            )
        except ActivityError:
            # Refused (a 4xx): no address can be trusted; a person's call still can.
            case.record(
                EventKind.EXCEPTION_RAISED,
                SYSTEM,
                "The EHR refused the patient's contact details; only a call can reach them",
            )
            contact = PatientContact(
                patient=case.order.patient, portal=False, timezone=case.calendar.timezone
            )
        reach = (
            (Medium.SMS, contact.sms),
            (Medium.EMAIL, contact.email),
            (Medium.PORTAL, contact.portal),
        )
        s.channels = [channel.value for channel, on in reach if on]
        s.timezone, s.language = contact.timezone, contact.language
        try:
            ZoneInfo(contact.timezone)
        except (ValueError, ZoneInfoNotFoundError):
            s.timezone = case.calendar.timezone  # quiet hours must be computable: the clinic's

    async def _touch(self, touch: Touch, channel: Medium) -> None:
        s = self.state
        if channel == Medium.CALL:
            self.call_task("no answer to the messages sent", touch=s.touch)
            self._touched()
            return
        kind, number, epoch = s.kind or "", s.touch, self.epoch
        message = self.compose(kind, s.language, channel)
        s.sent += 1  # numbered before it goes: a call task opened meanwhile takes the next
        sequence = s.sent
        attempt_id = f"{self.case.case_id}-m{sequence}"
        outbound = OutboundMessage(
            attempt_id=attempt_id,
            case_id=self.case.case_id,
            patient=self.case.order.patient,
            order=self.case.order.resource,
            channel=channel,
            kind=kind,
            language=s.language,
            subject=message.subject,
            body=message.body,
        )
        self.sending = True
        try:
            result = await workflow.execute_activity(
                SEND_MESSAGE,
                outbound,
                task_queue=queues.messaging(),
                result_type=SendResult,
                start_to_close_timeout=SEND_TIMEOUT,
                retry_policy=RETRY,
            )
            status = result.status.value
        except ActivityError as err:
            cause = err.cause
            reason = cause.message[:200] if isinstance(cause, ApplicationError) else "refused"
            result = SendResult(attempt_id=attempt_id, status=SendStatus.UNREACHABLE)
            status = FAILED
            self.case.record(
                EventKind.EXCEPTION_RAISED,
                SYSTEM,
                f"Message by {channel.value} could not be sent: {reason}",
                details={"attempt": attempt_id, "channel": channel.value},
            )
        finally:
            self.sending = False
        count = result.segments or (segments(message.body) if channel == Medium.SMS else 0)
        attempt = self._attempt(
            channel, kind, status, number, count, result.error_code, sequence=sequence
        )
        attempt.provider_id = result.provider_id
        details = {
            "attempt": attempt_id,
            "channel": channel.value,
            "status": status,
            "kind": kind,
            "text": message.body,
        }
        if channel == Medium.SMS:
            details["segments"] = str(count)
        self.case.record(
            EventKind.OUTREACH,
            SYSTEM,
            f"Message {attempt.number} by {channel.value}: {status}",
            details=details,
        )
        self._write(attempt, message, result)
        if status == SendStatus.SENT:
            s.sms_used = s.sms_used or channel == Medium.SMS
            if epoch == self.epoch:
                self._touched()
            return
        if result.status == SendStatus.OPTED_OUT and channel.value not in s.opted_out:
            s.opted_out.append(channel.value)
        elif result.status == SendStatus.UNREACHABLE and status != FAILED:
            s.unreachable.append(channel.value)
        elif result.status == SendStatus.NO_ADDRESS:
            s.channels = [c for c in s.channels if c != channel.value]
        if epoch == self.epoch:
            s.tried.append(channel.value)  # the same touch goes on by the next channel, at once

    def _attempt(
        self,
        channel: Medium,
        kind: str,
        status: str,
        touch: int | None,
        count: int = 0,
        error_code: str | None = None,
        *,
        sequence: int | None = None,
    ) -> OutreachAttempt:
        s = self.state
        if sequence is None:
            s.sent += 1
            sequence = s.sent
        attempt = OutreachAttempt(
            attempt_id=f"{self.case.case_id}-m{sequence}",
            number=sequence,
            channel=channel.value,
            kind=kind,
            at=workflow.now(),
            status=status,
            error_code=error_code,
            segments=count,
            touch=touch,
        )
        s.attempts = [*s.attempts, attempt][-ATTEMPTS_KEPT:]
        return attempt

    # -- the Communication in the EHR, beside the case -----------------------------------------

    def _write(self, attempt: OutreachAttempt, message: Message, result: SendResult) -> None:
        sent = attempt.status == SendStatus.SENT
        record = CommunicationRecord(
            attempt_id=attempt.attempt_id,
            patient=self.case.order.patient,
            order=self.case.order.resource,
            channel=Medium(attempt.channel),
            status="completed" if sent else "not-done",
            status_reason=None if sent else NOT_DONE.get(attempt.status, NOT_DONE[FAILED]),
            sent=(result.sent_at or workflow.now()) if sent else None,
            text=message.body,
        )
        job = asyncio.create_task(self._store(record))
        self.writes.add(job)
        job.add_done_callback(self.writes.discard)

    async def _store(self, record: CommunicationRecord) -> None:
        try:
            await workflow.execute_activity(
                RECORD_COMMUNICATION,
                record,
                task_queue=queues.ehr(),
                result_type=str,
                schedule_to_close_timeout=WRITE_WITHIN,
                start_to_close_timeout=CALL_TIMEOUT,
                retry_policy=RETRY,
            )
        except ActivityError:
            self.case.count("unwritten_communications")
            self.case.record(
                EventKind.EXCEPTION_RAISED,
                SYSTEM,
                f"The EHR did not take the record of message {record.attempt_id}",
                details={"attempt": record.attempt_id},
            )
