"""SCRAM-SHA-256 password verifiers computed on the client (RFC 5802, RFC 7677).

``ALTER ROLE ... PASSWORD 'SCRAM-SHA-256$...'`` stores a verifier PostgreSQL accepts as
it is, so the plaintext never reaches the server: not in the statement text, which
``log_statement = 'ddl'``, ``log_min_error_statement`` or ``pg_stat_statements`` may
keep, nor in a bound parameter. This is what ``psql``'s ``\\password`` does.

The verifier has PostgreSQL's format,
``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`` (base64), and the password
is prepared as the server prepares the one a client logs in with (``pg_saslprep``):
ASCII as it is; otherwise SASLprep (RFC 4013), or the original when SASLprep fails.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stringprep
import unicodedata
from typing import Final

__all__ = ["DEFAULT_ITERATIONS", "saslprep", "scram_sha256_verifier"]

#: PostgreSQL's default ``scram_iterations``.
DEFAULT_ITERATIONS: Final = 4096
_SALT_BYTES: Final = 16  # as PostgreSQL generates them

_PROHIBITED = (
    stringprep.in_table_a1,  # unassigned code points: PostgreSQL prohibits them too
    stringprep.in_table_c12,
    stringprep.in_table_c21_c22,
    stringprep.in_table_c3,
    stringprep.in_table_c4,
    stringprep.in_table_c5,
    stringprep.in_table_c6,
    stringprep.in_table_c7,
    stringprep.in_table_c8,
    stringprep.in_table_c9,
)


def saslprep(password: str) -> str:
    """The password as PostgreSQL prepares it before SCRAM (src/common/saslprep.c)."""
    if password.isascii():
        return password
    mapped = "".join(
        " " if stringprep.in_table_c12(c) else c for c in password if not stringprep.in_table_b1(c)
    )
    prepared = unicodedata.normalize("NFKC", mapped)
    if not prepared:
        return password
    if any(table(c) for c in prepared for table in _PROHIBITED):
        return password
    if any(stringprep.in_table_d1(c) for c in prepared) and (
        any(stringprep.in_table_d2(c) for c in prepared)
        or not (stringprep.in_table_d1(prepared[0]) and stringprep.in_table_d1(prepared[-1]))
    ):
        return password
    return prepared


def scram_sha256_verifier(
    password: str, *, salt: bytes | None = None, iterations: int = DEFAULT_ITERATIONS
) -> str:
    """The SCRAM-SHA-256 verifier of ``password``, for ``ALTER ROLE ... PASSWORD``.

    A fresh random salt unless one is given (tests pin it)."""
    salt = os.urandom(_SALT_BYTES) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", saslprep(password).encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode("ascii")

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"
