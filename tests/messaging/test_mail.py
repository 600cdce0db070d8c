"""The SMTP side for real: aiosmtpd with a certificate made at start, STARTTLS, and AUTH over it."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError

from activities.messaging.email import Mailer
from workers.mail_sandbox import MailSandbox


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """A server that wants STARTTLS and then a user name and password."""
    sandbox = MailSandbox(
        tls_dir=tmp_path_factory.mktemp("guarded"), starttls=True, credentials={"clinic": "s3cret"}
    ).start()
    yield sandbox
    sandbox.stop()


def mailer(server: MailSandbox, **more) -> Mailer:
    given = {
        "host": server.host,
        "port": server.port,
        "security": "starttls",
        "sender": "care-team@followthrough.example.org",
        "ca_file": str(server.ca_file),
        **more,
    }
    return Mailer(**given)


async def test_a_user_signs_in_over_starttls_and_the_message_is_kept(guarded: MailSandbox):
    message_id = await mailer(guarded, username="clinic", password="s3cret").send(
        "pat@example.org", "Your referral", "Please call us.", "referral-x-m1", "example.org"
    )
    [received] = [m for m in guarded.messages() if m.message["Message-ID"].strip() == message_id]
    assert message_id == "<referral-x-m1@example.org>"  # the attempt's: a resend keeps it
    assert received.tls and received.user == "clinic"
    assert received.mail_from == "care-team@followthrough.example.org"


async def test_a_wrong_password_is_a_final_failure(guarded: MailSandbox):
    before = len(guarded.messages())
    with pytest.raises(ApplicationError) as failed:
        await mailer(guarded, username="clinic", password="wrong").send(
            "pat@example.org", "s", "b", "referral-x-m2", "example.org"
        )
    assert failed.value.non_retryable and "535" in str(failed.value)
    assert "pat@example.org" not in str(failed.value)
    assert len(guarded.messages()) == before


def test_the_certificate_names_loopback(guarded: MailSandbox):
    from cryptography import x509

    certificate = x509.load_pem_x509_certificate(guarded.ca_file.read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
