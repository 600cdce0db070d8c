"""Email over SMTP (aiosmtplib): STARTTLS (port 587), implicit TLS (465), or plain on loopback.

The server's replies can echo the recipient's address, so none of their text leaves this module:
failures keep the SMTP reply code only. A refused recipient (5xx to RCPT) is final; a refused
connection, a timeout or a 4xx is retryable.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib
import structlog
from temporalio.exceptions import ApplicationError

from workers.settings import Settings

log = structlog.get_logger(__name__)

MAIL_UNAVAILABLE = "MailUnavailable"  # retryable
MAIL_REJECTED = "MailRejected"  # final: the server refused the message itself


class RecipientRefused(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"The mail server refused the recipient (SMTP {code})")
        self.code = code


@dataclass(frozen=True)
class Mailer:
    host: str
    port: int
    security: str  # starttls | tls | none
    sender: str
    username: str = ""
    password: str = ""
    ca_file: str | None = None
    timeout: float = 15

    @classmethod
    def from_settings(cls, settings: Settings) -> Mailer | None:
        """None when email is not configured (no SMTP_HOST)."""
        if not settings.smtp_host:
            return None
        return cls(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_security,
            settings.mail_from,
            settings.smtp_username,
            settings.smtp_password,
            str(settings.smtp_ca_file) if settings.smtp_ca_file else None,
            settings.smtp_timeout_seconds,
        )

    def tls_context(self) -> ssl.SSLContext | None:
        if self.security == "none":
            return None
        context = ssl.create_default_context()
        if self.ca_file:
            context.load_verify_locations(cafile=self.ca_file)
        return context

    async def send(self, to: str, subject: str, body: str, attempt_id: str, domain: str) -> str:
        """Send one message; returns its Message-ID (derived from the attempt, so a message sent
        again after a lost answer carries the same id and a mail system can drop the copy)."""
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message_id = f"<{attempt_id}@{domain}>"
        message["Message-ID"] = message_id
        message.set_content(body)
        try:
            await aiosmtplib.send(
                message,
                hostname=self.host,
                port=self.port,
                use_tls=self.security == "tls",
                start_tls=self.security == "starttls",
                tls_context=self.tls_context(),
                username=self.username or None,
                password=self.password or None,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as err:
            code = err.recipients[0].code if err.recipients else 550
            if code >= 500:
                log.info("smtp_recipient_refused", code=code)
                raise RecipientRefused(code) from None
            raise self._unavailable(f"SMTP {code}") from None
        except aiosmtplib.SMTPResponseException as err:
            if err.code >= 500:
                log.warning("smtp_refused", code=err.code)
                raise ApplicationError(
                    f"The mail server refused the message (SMTP {err.code})",
                    type=MAIL_REJECTED,
                    non_retryable=True,
                ) from None
            raise self._unavailable(f"SMTP {err.code}") from None
        except (aiosmtplib.SMTPException, OSError) as err:
            raise self._unavailable(type(err).__name__) from None
        return message_id

    def _unavailable(self, why: str) -> ApplicationError:
        log.warning("smtp_unavailable", why=why)
        return ApplicationError(f"Mail server unavailable ({why})", type=MAIL_UNAVAILABLE)
