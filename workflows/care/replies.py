"""What comes back to an outreach: the patient's replies (REPLY_SIGNAL), whose keywords change
the patient's consent and whose answers stop the cadence, and the providers' final word on each
message (DELIVERY_SIGNAL). Mixed into `Outreach` (see outreach.py), whose state and moves it uses.
"""

from __future__ import annotations

from collections.abc import Callable

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.care.case import Case
    from workflows.care.messaging import FINAL, DeliveryNews, DeliveryStatus, ReplyKind, ReplyNews
    from workflows.care.models import SYSTEM, EventKind, OutreachAttempt, OutreachState

SEEN_KEPT = 20  # replies' message ids kept to drop a signal delivered twice
# Replies that answer the message; keywords (STOP, START, HELP) are about consent instead.
ANSWERS = {ReplyKind.CONFIRM, ReplyKind.CALL_BACK, ReplyKind.OTHER}

# What the pathway makes of an answer (CONFIRM, CALL_BACK, OTHER) to one of its messages (the
# attempt, when the case still keeps it): the REPLY event's summary, or None for the usual one.
OnReply = Callable[[ReplyNews, OutreachAttempt | None], str | None]


class Replies:
    # Set up by Outreach.
    case: Case
    enabled: bool
    on_reply: OnReply
    state: OutreachState

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
        self._undelivered(attempt)

    def _find(self, attempt_id: str) -> OutreachAttempt | None:
        return next((a for a in self.state.attempts if a.attempt_id == attempt_id), None)
