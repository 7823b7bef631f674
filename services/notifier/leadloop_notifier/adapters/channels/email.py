"""Email over SMTP submission: STARTTLS (or implicit TLS), AUTH, text + HTML alternative.

The standard library does the work: `email.message.EmailMessage` builds the
multipart/alternative message and `smtplib` speaks SMTP in a worker thread
(`asyncio.to_thread`), so no dependency is added. One connection per message keeps
the failure modes simple; notification volume is a few per rep per hour.

Reply codes follow RFC 5321: 4yz is transient (retry), 5yz permanent (failed); 550,
551 and 553 for a recipient mean the mailbox does not exist or is refused
(``invalid_user``). Unless ``tls`` is ``none`` or ``starttls_optional``, a server that
does not offer STARTTLS is refused before credentials or content are sent.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from .base import Message, Sent, delivered, failed, retry

__all__ = ["EmailChannel", "build_message", "reply_outcome"]

UNKNOWN_RECIPIENT = frozenset({550, 551, 553})


def reply_outcome(code: int) -> Sent:
    """The outcome of an SMTP reply code that refused the message."""
    if 400 <= code < 500:
        return retry(f"smtp_{code}")
    return failed(f"smtp_{code}")


def build_message(
    message: Message, *, sender: str, sender_name: str | None, recipient: str
) -> EmailMessage:
    """A text/plain message, multipart/alternative with text/html when HTML is given."""
    mail = EmailMessage()
    mail["Subject"] = message.subject
    mail["From"] = Address(display_name=sender_name or "", addr_spec=sender)
    mail["To"] = recipient
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1])
    mail.set_content(message.text)
    if message.html is not None:
        mail.add_alternative(message.html, subtype="html")
    return mail


class EmailChannel:
    """SMTP delivery; ``address`` is the recipient's email address."""

    kind = "email"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        tls: str,
        ca_file: str | None,
        username: str | None,
        password: str | None,
        sender: str,
        sender_name: str | None,
        timeout_s: float,
        per_minute: int,
    ) -> None:
        self.per_minute = per_minute
        self._host = host
        self._port = port
        self._tls = tls
        self._context = ssl.create_default_context(cafile=ca_file)
        self._login = (username, password) if username and password else None
        self._sender = sender
        self._sender_name = sender_name
        self._timeout_s = timeout_s

    async def send(self, address: str, message: Message) -> Sent:
        try:
            mail = build_message(
                message, sender=self._sender, sender_name=self._sender_name, recipient=address
            )
        except (ValueError, TypeError):
            return failed("invalid_address")
        return await asyncio.to_thread(self._deliver, address, mail)

    def _open(self) -> smtplib.SMTP:
        if self._tls == "implicit":
            return smtplib.SMTP_SSL(
                self._host, self._port, timeout=self._timeout_s, context=self._context
            )
        smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout_s)
        try:
            smtp.ehlo()
            if self._tls != "none":
                if smtp.has_extn("starttls"):
                    smtp.starttls(context=self._context)
                    smtp.ehlo()
                elif self._tls == "starttls":
                    raise smtplib.SMTPNotSupportedError("STARTTLS not offered")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _deliver(self, address: str, mail: EmailMessage) -> Sent:
        try:
            smtp = self._open()
        except smtplib.SMTPNotSupportedError:
            return failed("starttls_unavailable")
        except ssl.SSLError:
            return failed("tls_error")
        except TimeoutError:
            return retry("timeout")
        except smtplib.SMTPResponseException as exc:
            return reply_outcome(exc.smtp_code)
        except (smtplib.SMTPException, OSError):
            return retry("connect_error")
        try:
            if self._login is not None:
                smtp.login(*self._login)
            smtp.send_message(mail, from_addr=self._sender, to_addrs=[address])
        except smtplib.SMTPAuthenticationError as exc:
            return retry("smtp_auth_temporary") if exc.smtp_code < 500 else failed("auth_failed")
        except smtplib.SMTPRecipientsRefused as exc:
            code = next(iter(exc.recipients.values()), (550, b""))[0]
            return failed("invalid_user") if code in UNKNOWN_RECIPIENT else reply_outcome(code)
        except smtplib.SMTPResponseException as exc:  # sender refused, data refused, ...
            return reply_outcome(exc.smtp_code)
        except smtplib.SMTPNotSupportedError:
            return failed("auth_unsupported")
        except TimeoutError:
            return retry("timeout")
        except (smtplib.SMTPException, OSError):
            return retry("connect_error")
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()
        return delivered()

    async def aclose(self) -> None:
        """Nothing to release: each message uses its own connection."""
