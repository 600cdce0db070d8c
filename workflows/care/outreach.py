"""A case reaching out to its patient: a cadence of touches, each by the best channel that can
still reach them, stopped by a reply, by the pathway or paused by a coordinator.

A pathway declares a `Cadence` (e.g. SMS on day 0, email on day 3, a staff call on day 6, and the
order to fall back in) and holds one `Outreach`, as it holds an `EhrLink`: `start(kind, cadence)`
when the case enters a stage where the patient should act, `stop(reason)` when it leaves it. The
outreach reads the patient's contact (which channels have an address, time zone, language) from
the EHR when it starts, then for each touch waits on the case's clock, texts only in the patient's
daytime (`send_window`), renders the pathway's message, sends it through the messaging activities
and records one OUTREACH event and one FHIR Communication per attempt. A channel that cannot
reach the patient (no address, opted out, undeliverable) is skipped for the next one at once; a
call is a person's task on the case's checklist, with a notice to its owner.

Replies and delivery reports arrive as signals (REPLY_SIGNAL, DELIVERY_SIGNAL) that the pathway
hands to `replied` and `delivered`. Everything the outreach keeps is bounded and travels in the
case's snapshot when it continues as new. An outreach that is not `enabled` (cases opened before
it existed) schedules nothing at all, so their histories replay unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.care import queues
    from workflows.care.calls import CALL_TIMEOUT, RETRY
    from workflows.care.case import Case
    from workflows.care.messaging import (
        FINAL,
        Cadence,
        CommunicationRecord,
        DeliveryNews,
        DeliveryStatus,
        Medium,
        OutboundMessage,
        PatientContact,
        ReplyKind,
        ReplyNews,
        SendResult,
        SendStatus,
        Touch,
        segments,
        send_window,
    )
    from workflows.care.models import (
        SYSTEM,
        Actor,
        CaseSnapshot,
        ChecklistItem,
        EventKind,
        OutreachAttempt,
        OutreachState,
        Role,
        StaffNotice,
    )

# The messaging and EHR activities, by name (activities/messaging/, activities/fhir/).
SEND_MESSAGE = "send_message"
RELEASE_CONVERSATIONS = "release_conversations"
PATIENT_CONTACT = "patient_contact"
RECORD_COMMUNICATION = "record_communication"

SEND_TIMEOUT = timedelta(seconds=60)
# A Communication the EHR will not take within this is given up on, and the case says so.
WRITE_WITHIN = timedelta(days=1)
RELEASE_WITHIN = timedelta(hours=1)
RELEASE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=2)
)
ATTEMPTS_KEPT = 20  # attempts the case keeps (newest); the ledger and the EHR keep them all
SEEN_KEPT = 20  # replies' message ids kept to drop a signal delivered twice
CALL_TASK = "call-patient"  # the checklist item of a staff call
TASK = "task"  # a call attempt's status: a person's task, never sent
RUNNING, PAUSED, STOPPED, DONE = "running", "paused", "stopped", "done"
FAILED = "failed"  # the send was refused (a bug or a rejected message): the next channel goes
NOT_DONE = {  # a Communication's statusReason, by the attempt's status
    SendStatus.OPTED_OUT: "The patient opted out of this channel",
    SendStatus.UNREACHABLE: "The address is known to be undeliverable",
    SendStatus.NO_ADDRESS: "No address on file for this channel",
    SendStatus.BUSY: "No sender number free for this patient",
    FAILED: "The message was refused",
}
# Replies that answer the message; keywords (STOP, START, HELP) are about consent instead.
ANSWERS = {ReplyKind.CONFIRM, ReplyKind.CALL_BACK, ReplyKind.OTHER}


@dataclass(frozen=True)
class Message:
    """A rendered message: its body (and, for email and portal, its subject)."""

    body: str
    subject: str | None = None


# The pathway's templates: (kind, language, channel) -> Message.
Compose = Callable[[str, str, Medium], Message]
# What the pathway makes of an answer (CONFIRM, CALL_BACK, OTHER) to one of its messages (the
# attempt, when the case still keeps it): the REPLY event's summary, or None for the usual one.
OnReply = Callable[[ReplyNews, OutreachAttempt | None], str | None]


class Outreach:
    def __init__(
        self,
        case: Case,
        *,
        enabled: bool,
        compose: Compose,
        on_reply: OnReply = lambda news, attempt: None,
    ) -> None:
        self.case = case
        self.enabled = enabled
        self.compose = compose
        self.on_reply = on_reply
        self.state = OutreachState()
        self.wakes = 0  # bumped by every change the runner must look at again
        self.epoch = 0  # bumped by every start: a send in flight belongs to the cadence it began in
        self.sending = False  # a message is being handed to the provider
        self.writes: set[asyncio.Task[None]] = set()

    # -- reading ----------------------------------------------------------------------------

    @property
    def quiet(self) -> bool:
        """Nothing under way that a new run could not pick up."""
        return not self.sending and not self.writes

    @property
    def running(self) -> bool:
        return self.state.state == RUNNING

    @property
    def paused(self) -> bool:
        return self.state.state == PAUSED

    def view(self) -> OutreachState | None:
        """The outreach as the case's detail shows it (None where the case has none)."""
        return self.state.model_copy(deep=True) if self.enabled else None

    def carry(self, snapshot: CaseSnapshot) -> CaseSnapshot:
        """The outreach's part of a snapshot (taken once it is `quiet`)."""
        if not self.enabled:
            return snapshot
        return snapshot.model_copy(update={"outreach": self.state.model_copy(deep=True)})

    def resume(self, snapshot: CaseSnapshot) -> None:
        if snapshot.outreach is not None:
            self.state = snapshot.outreach.model_copy(deep=True)

    # -- the pathway's moves ------------------------------------------------------------------

    def begin(self) -> None:
        """Run the cadence in the background; call once from the workflow's run."""
        if self.enabled:
            asyncio.create_task(self._keep())

    def start(self, kind: str, cadence: Cadence, *, at: datetime | None = None) -> None:
        """Start a fresh cadence of `kind` messages, its touches counted from `at` (now when
        None). The patient's contact is read anew; consent and failed channels stay as they are."""
        if not self.enabled:
            return
        s = self.state
        s.state, s.stopped_reason = RUNNING, None
        s.kind, s.cadence, s.started_at = kind, cadence, at or workflow.now()
        s.touch, s.tried, s.paused_at = 0, [], None
        s.timezone = None  # read the contact again before the first touch
        self.epoch += 1
        self._wake()

    def stop(self, reason: str) -> None:
        """Stop the cadence (a reply came, the appointment is booked, the case closed)."""
        s = self.state
        if s.state in (RUNNING, PAUSED):
            s.state, s.stopped_reason = STOPPED, reason
            s.paused_at = None
            self._wake()

    def pause(self, actor: Actor, reason: str = "") -> None:
        """Hold the cadence where it is (a coordinator is in touch with the patient)."""
        s = self.state
        s.state, s.stopped_reason, s.paused_at = (
            PAUSED,
            f"paused by {actor.user_id}",
            workflow.now(),
        )
        self._wake()
        said = f": {reason}" if reason else ""
        self.case.record(
            EventKind.NOTE,
            actor,
            f"Outreach paused{said}",
            details={"outreach": PAUSED, "reason": reason},
        )

    def unpause(self, actor: Actor) -> None:
        """Go on where the cadence was paused: the touches still to come keep their spacing."""
        s = self.state
        if s.paused_at is not None and s.started_at is not None:
            s.started_at += workflow.now() - s.paused_at
        s.state, s.stopped_reason, s.paused_at = RUNNING, None, None
        self._wake()
        self.case.record(EventKind.NOTE, actor, "Outreach resumed", details={"outreach": RUNNING})

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

    async def close(self) -> None:
        """The case closed: the cadence stops and its SMS conversation is released."""
        if not self.enabled:
            return
        self.stop("case closed")
        await self.case.wait(lambda: self.quiet, settling=True)
        if not self.state.sms_used:
            return
        try:
            await workflow.execute_activity(
                RELEASE_CONVERSATIONS,
                self.case.case_id,
                task_queue=queues.messaging(),
                schedule_to_close_timeout=RELEASE_WITHIN,
                start_to_close_timeout=CALL_TIMEOUT,
                retry_policy=RELEASE_RETRY,
            )
            self.state.sms_used = False
        except ActivityError:
            workflow.logger.warning("SMS conversations of case %s not released", self.case.case_id)

    # -- what the patient and the providers say -------------------------------------------------

    def replied(self, news: ReplyNews) -> None:
        """A patient's message (REPLY_SIGNAL): consent keywords change the channels, an answer
        stops the cadence and goes to the pathway."""
        case, s = self.case, self.state
        if not self.enabled or case.closed:
            workflow.logger.warning("Reply to case %s ignored: no outreach open", case.case_id)
            return
        if news.message_id in s.seen:
            return
        s.seen = [*s.seen, news.message_id][-SEEN_KEPT:]
        attempt = self._find(news.in_reply_to)
        if attempt is not None:
            attempt.replies += 1
        channel = news.channel.value
        if news.kind in (ReplyKind.OPT_OUT, ReplyKind.OPT_IN):
            out = news.kind == ReplyKind.OPT_OUT
            s.opted_out = [c for c in s.opted_out if c != channel] + ([channel] if out else [])
            consent = "opted_out" if out else "opted_in"
            said = "opted out of" if out else "opted back in to"
            case.record(
                EventKind.CONSENT,
                SYSTEM,
                f"The patient {said} {channel} messages",
                details={
                    "channel": channel,
                    "consent": consent,
                    "keyword": news.body.strip().upper()[:20],
                },
            )
            self._wake()
            return
        details = {
            "attempt": news.in_reply_to,
            "channel": channel,
            "reply": news.kind.value,
            "text": news.body,
        }
        if news.kind not in ANSWERS:  # HELP: the webhook has answered it
            case.record(
                EventKind.REPLY, SYSTEM, f"The patient asked for help by {channel}", details=details
            )
            return
        summary = self.on_reply(news, attempt) or f"The patient replied by {channel}"
        case.record(EventKind.REPLY, SYSTEM, summary, details=details)
        self.stop("replied")
        if news.kind == ReplyKind.CALL_BACK:
            self.call_task(
                "the patient asked for a call back", kind=attempt.kind if attempt else None
            )

    def delivered(self, news: DeliveryNews) -> None:
        """A provider's final word on an attempt (DELIVERY_SIGNAL). Undelivered, the channel is
        marked unreachable and the touch goes again at once by the next channel."""
        case, s = self.case, self.state
        if not self.enabled or case.closed:
            workflow.logger.warning("Delivery news for case %s ignored", case.case_id)
            return
        attempt = self._find(news.attempt_id)
        if attempt is None:
            workflow.logger.warning("Delivery news for case %s: attempt not kept", case.case_id)
            return
        if news.status not in FINAL or attempt.delivery is not None:
            return  # not final, or told already
        attempt.delivery, attempt.error_code = news.status.value, news.error_code
        failed = news.status in (DeliveryStatus.UNDELIVERED, DeliveryStatus.FAILED)
        case.record(
            EventKind.DELIVERY,
            SYSTEM,
            f"Message {attempt.number} by {attempt.channel}: {news.status.value}",
            details={
                "attempt": attempt.attempt_id,
                "channel": attempt.channel,
                "status": news.status.value,
                "error_code": news.error_code or "",
            },
        )
        if not failed:
            return
        if attempt.channel not in s.unreachable:
            s.unreachable.append(attempt.channel)
        last_touch = attempt.touch is not None and attempt.touch == s.touch - 1
        if last_touch and attempt.kind == s.kind and s.state in (RUNNING, DONE):
            s.touch, s.tried, s.state = attempt.touch or 0, [attempt.channel], RUNNING
            self._wake()

    # -- the runner ---------------------------------------------------------------------------

    def _wake(self) -> None:
        self.wakes += 1
        s = self.state
        if s.state != RUNNING:
            s.next_at, s.next_channel = None, None

    def _due(self) -> bool:
        s = self.state
        return s.state == RUNNING and s.cadence is not None and s.touch < len(s.cadence.touches)

    async def _keep(self) -> None:
        case = self.case
        while True:
            await workflow.wait_condition(lambda: self._due() and not case.continuing)
            s, wakes = self.state, self.wakes
            if s.timezone is None:
                await self._read_contact()
                continue
            assert s.cadence is not None and s.started_at is not None
            touch = s.cadence.touches[s.touch]
            channel = self._channel(s.cadence, touch)
            if channel is None:
                self._unreachable_touch()
                continue
            due = s.started_at + touch.after
            if channel == Medium.SMS:
                due = send_window(max(due, workflow.now()), s.timezone)
            s.next_at, s.next_channel = due, channel.value
            if due > workflow.now():
                await case.wait(lambda w=wakes: self.wakes != w, within=due - workflow.now())
                continue  # look again: the time came, or something changed meanwhile
            await self._touch(touch, channel)

    def _channel(self, cadence: Cadence, touch: Touch) -> Medium | None:
        s = self.state
        for channel in cadence.channels_for(touch):
            if channel.value in s.tried:
                continue
            if channel == Medium.CALL or (
                channel.value in s.channels
                and channel.value not in s.opted_out
                and channel.value not in s.unreachable
            ):
                return channel
        return None

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

    def _touched(self) -> None:
        s = self.state
        s.touch, s.tried = s.touch + 1, []
        if s.cadence is not None and s.touch >= len(s.cadence.touches) and s.state == RUNNING:
            s.state, s.stopped_reason = DONE, "cadence done"
            self._wake()

    def _unreachable_touch(self) -> None:
        """No channel of the cadence is left for this touch (its fallback has no call)."""
        s = self.state
        self.case.record(
            EventKind.OUTREACH,
            SYSTEM,
            "No channel left to reach the patient for this touch",
            details={"channel": "", "status": SendStatus.NO_ADDRESS.value, "kind": s.kind or ""},
        )
        self._touched()

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

    def _find(self, attempt_id: str) -> OutreachAttempt | None:
        return next((a for a in self.state.attempts if a.attempt_id == attempt_id), None)

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
