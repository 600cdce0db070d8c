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

This module is the cadence: the pathway's moves and when each touch is due, by which channel. How
a touch reaches the patient is in touches.py, what comes back from them in replies.py.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from workflows.care import queues
    from workflows.care.calls import CALL_TIMEOUT
    from workflows.care.case import Case
    from workflows.care.messaging import Cadence, Medium, SendStatus, Touch, send_window
    from workflows.care.models import (
        SYSTEM,
        Actor,
        CaseSnapshot,
        EventKind,
        OutreachAttempt,
        OutreachState,
    )
    from workflows.care.replies import OnReply, Replies
    from workflows.care.touches import Compose, Message, Touches

__all__ = ["Compose", "Message", "OnReply", "Outreach"]  # what pathways build an outreach from

# The messaging activity that frees a closed case's SMS conversation (activities/messaging/).
RELEASE_CONVERSATIONS = "release_conversations"
RELEASE_WITHIN = timedelta(hours=1)
RELEASE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=2)
)
RUNNING, PAUSED, STOPPED, DONE = "running", "paused", "stopped", "done"


class Outreach(Touches, Replies):
    """A case's outreach to its patient; see the module's docstring."""

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

    def _undelivered(self, attempt: OutreachAttempt) -> None:
        """A message of the touch just made was not delivered: that touch goes again at once by
        the next channel (when the cadence has not moved on since)."""
        s = self.state
        last_touch = attempt.touch is not None and attempt.touch == s.touch - 1
        if last_touch and attempt.kind == s.kind and s.state in (RUNNING, DONE):
            s.touch, s.tried, s.state = attempt.touch or 0, [attempt.channel], RUNNING
            self._wake()
