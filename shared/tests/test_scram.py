"""SCRAM-SHA-256 verifiers computed on the client match RFC 7677's worked example, and
passwords are prepared as PostgreSQL prepares them (RFC 4013's examples)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from leadloop.scram import saslprep, scram_sha256_verifier

# RFC 7677 section 3: user "user", password "pencil".
SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
NONCE = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
AUTH_MESSAGE = (
    f"n=user,r=rOprNGfwEbeRWgbNEkqO,r={NONCE},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r={NONCE}"
).encode()
CLIENT_PROOF = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
SERVER_SIGNATURE = "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_the_rfc_7677_example() -> None:
    verifier = scram_sha256_verifier("pencil", salt=SALT)
    head, salt, keys = verifier.split("$")
    assert (head, salt) == ("SCRAM-SHA-256", "4096:W22ZaJ0SNY7soEsUEjb6gQ==")
    stored_key, server_key = (base64.b64decode(k) for k in keys.split(":"))
    # The server's signature in the RFC is HMAC(ServerKey, AuthMessage) ...
    signature = hmac.new(server_key, AUTH_MESSAGE, hashlib.sha256).digest()
    assert base64.b64encode(signature).decode() == SERVER_SIGNATURE
    # ... and the client's proof recovers a ClientKey whose hash is StoredKey.
    client_signature = hmac.new(stored_key, AUTH_MESSAGE, hashlib.sha256).digest()
    client_key = bytes(a ^ b for a, b in zip(CLIENT_PROOF, client_signature, strict=True))
    assert hashlib.sha256(client_key).digest() == stored_key


def test_a_fresh_salt_each_time_and_no_plaintext() -> None:
    first, second = scram_sha256_verifier("pencil"), scram_sha256_verifier("pencil")
    assert first != second
    assert "pencil" not in first


@pytest.mark.parametrize(
    ("given", "prepared"),
    [
        ("user", "user"),
        ("I\u00adX", "IX"),  # soft hyphen: mapped to nothing
        ("\u00aa", "a"),  # NFKC
        ("\u2168", "IX"),  # NFKC
        ("pass\u3000word", "pass word"),  # ideographic space: mapped to a space
        ("\u0007é", "\u0007é"),  # prohibited: PostgreSQL keeps the original
        ("\u0627\u0031", "\u0627\u0031"),  # bidi rule broken: the original
    ],
)
def test_saslprep_as_postgresql_does_it(given: str, prepared: str) -> None:
    assert saslprep(given) == prepared
