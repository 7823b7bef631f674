"""A real SMTP server for tests: aiosmtpd on 127.0.0.1 with STARTTLS and AUTH.

The certificate is self-signed, made per test run by the ``openssl`` command line (the
``cryptography`` package is not installed), valid for 127.0.0.1 and localhost; clients
trust it through ``cert_file``. AUTH PLAIN and LOGIN take one test user and are only
offered after STARTTLS (``auth_require_tls``); with ``require_starttls`` the server
refuses MAIL before STARTTLS, as a submission server should; ``implicit_tls`` serves
TLS from the first byte instead (port 465 style). ``reject`` answers
550 5.1.1 at RCPT for those addresses, ``tempfail`` 451 4.3.0. Every accepted message
is parsed (``email.policy.default``) into ``messages`` with its envelope, whether the
session was under TLS and who logged in.
"""

from __future__ import annotations

import email
import email.policy
import ssl
import subprocess
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from tests.support.ports import free_ports

__all__ = ["FakeSmtp", "ReceivedMail", "self_signed_cert"]


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """(cert, key) PEM files for CN=localhost with SANs 127.0.0.1 and localhost."""
    cert, key = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "1",
            "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    tls: bool
    login: str | None


@dataclass
class _Handler:
    reject: set[str] = field(default_factory=set)
    tempfail: set[str] = field(default_factory=set)
    messages: list[ReceivedMail] = field(default_factory=list)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address.lower() in self.reject:
            return "550 5.1.1 User unknown"
        if address.lower() in self.tempfail:
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        auth = session.auth_data
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        self.messages.append(
            ReceivedMail(
                mail_from=str(envelope.mail_from),
                rcpt_tos=tuple(envelope.rcpt_tos),
                message=parsed,
                tls=session.ssl is not None,
                login=login,
            )
        )
        return "250 Message accepted for delivery"


class FakeSmtp:
    """``async with FakeSmtp(tmp_path) as smtp:`` — STARTTLS on ``smtp.port``."""

    def __init__(
        self,
        directory: Path,
        *,
        username: str = "notifier",
        password: str = "smtp-test-password",
        require_starttls: bool = True,
        starttls: bool = True,
        implicit_tls: bool = False,
    ) -> None:
        self.cert_file, self.key_file = self_signed_cert(directory)
        self.username, self.password = username, password
        self._handler = _Handler()
        self._require_starttls = require_starttls
        self._starttls = starttls and not implicit_tls
        self._implicit_tls = implicit_tls
        self._controller: Controller | None = None
        self.port = 0

    @property
    def messages(self) -> list[ReceivedMail]:
        return self._handler.messages

    @property
    def reject(self) -> set[str]:
        return self._handler.reject

    @property
    def tempfail(self) -> set[str]:
        return self._handler.tempfail

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == self.username
            and data.password.decode() == self.password
        )
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

    def start(self) -> Self:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        self.port = free_ports(1)[0]
        secured = self._starttls or self._implicit_tls
        self._controller = Controller(
            self._handler,
            hostname="127.0.0.1",
            port=self.port,
            ssl_context=context if self._implicit_tls else None,
            server_hostname="localhost",
            tls_context=context if self._starttls else None,
            require_starttls=self._require_starttls and self._starttls,
            authenticator=self._authenticate,
            # aiosmtpd counts only STARTTLS for auth_require_tls, not implicit TLS
            auth_require_tls=self._starttls,
            auth_required=secured,  # a submission server: no mail without login
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    async def __aenter__(self) -> Self:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        self.stop()
