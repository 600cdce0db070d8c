"""A local SMTP server (aiosmtpd) that keeps every message it receives, for `make run` and tests.

`followthrough dev` runs it as a process of its own (`python -m workers.mail_sandbox`), requiring
STARTTLS with a self-signed certificate made at start, and keeps the mail as a Maildir under
.data/mail (read it with any mail client, or `ls .data/mail/new`). The tests run it in process
(`MailSandbox`), the messages in memory. Nothing is relayed anywhere.
"""

from __future__ import annotations

import email
import email.policy
import ipaddress
import mailbox
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from workers import dev

CERT_FILE, KEY_FILE = "cert.pem", "key.pem"


def make_certificate(directory: Path, host: str = "127.0.0.1") -> Path:
    """A self-signed certificate for loopback (`host`, 127.0.0.1 and localhost), valid a year;
    written beside its key in `directory`. Returns the certificate's path (the CA file to trust)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Followthrough mail sandbox")])
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    if host not in ("localhost", "127.0.0.1"):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (directory / KEY_FILE).write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (directory / KEY_FILE).chmod(0o600)
    (directory / CERT_FILE).write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return directory / CERT_FILE


@dataclass
class Received:
    """One message as the server took it: the envelope, the parsed message, whether it came
    over TLS and as which user."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool
    user: str | None


@dataclass
class _Handler:
    maildir: mailbox.Maildir | None
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        user = getattr(session, "auth_data", None)
        entry = Received(
            envelope.mail_from,
            list(envelope.rcpt_tos),
            message,  # type: ignore[arg-type]
            session.ssl is not None,
            user.login.decode() if isinstance(user, LoginPassword) else None,
        )
        with self.lock:
            self.received.append(entry)
            if self.maildir is not None:
                self.maildir.add(envelope.content)
        return "250 Message accepted for delivery"


class MailSandbox:
    """aiosmtpd on loopback. `starttls` requires STARTTLS before MAIL (with a certificate made
    at start, `ca_file`); `credentials` {user: password} requires AUTH (over TLS)."""

    def __init__(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        maildir: Path | None = None,
        tls_dir: Path | None = None,
        starttls: bool = False,
        credentials: dict[str, str] | None = None,
    ) -> None:
        self.host, self.port = host, port or dev.free_port()
        self.ca_file: Path | None = None
        kwargs: dict[str, Any] = {}
        if starttls:
            if tls_dir is None:
                raise ValueError("STARTTLS needs a directory for its certificate")
            self.ca_file = make_certificate(tls_dir, host)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.ca_file, tls_dir / KEY_FILE)
            kwargs.update(tls_context=context, require_starttls=True)
        if credentials:

            def authenticate(server, session, envelope, mechanism, data) -> AuthResult:  # noqa: ANN001
                ok = (
                    isinstance(data, LoginPassword)
                    and credentials.get(data.login.decode()) == data.password.decode()
                )
                return AuthResult(success=ok, handled=False, auth_data=data)

            kwargs.update(authenticator=authenticate, auth_required=True)
        self.handler = _Handler(mailbox.Maildir(maildir, create=True) if maildir else None)
        self.controller = Controller(self.handler, hostname=host, port=self.port, **kwargs)

    @property
    def security(self) -> str:
        return "starttls" if self.ca_file else "none"

    def start(self) -> MailSandbox:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def messages(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    def settings(self) -> dict[str, Any]:
        """The SMTP_* settings that send to this server (for `Settings.model_copy(update=...)`)."""
        return {
            "smtp_host": self.host,
            "smtp_port": self.port,
            "smtp_security": self.security,
            "smtp_ca_file": self.ca_file,
        }


def start_mail_sandbox(port: int, data_dir: Path, log: Path | None = None) -> subprocess.Popen:
    """The sandbox as a process (for `followthrough dev`): STARTTLS required with a certificate
    made in `data_dir`/tls, mail kept as a Maildir in `data_dir`/maildir."""
    env = {"MAIL_PORT": str(port), "MAIL_DATA_DIR": str(data_dir)}
    return dev._spawn([sys.executable, "-m", "workers.mail_sandbox"], log, env)


def wait_for_mail_sandbox(
    port: int, data_dir: Path, process: subprocess.Popen, timeout: float = 30
) -> Path:
    """Wait until the server takes connections; returns its certificate (the CA file to trust)."""
    deadline = time.monotonic() + timeout
    ready = data_dir / "ready"
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the mail sandbox exited ({process.returncode})")
        if ready.exists():
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return data_dir / "tls" / CERT_FILE
        if time.monotonic() > deadline:
            raise TimeoutError(f"the mail sandbox did not start within {timeout:.0f}s")
        time.sleep(0.2)


def main() -> None:
    data_dir = Path(os.environ["MAIL_DATA_DIR"])
    (data_dir / "ready").unlink(missing_ok=True)
    sandbox = MailSandbox(
        int(os.environ.get("MAIL_PORT") or 8125),
        maildir=data_dir / "maildir",
        tls_dir=data_dir / "tls",
        starttls=True,
    ).start()
    (data_dir / "ready").write_text(f"{sandbox.port}\n")
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        stopping.wait()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
