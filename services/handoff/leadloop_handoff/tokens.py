"""Create a read-API client token: ``python -m leadloop_handoff.tokens create ...``.

    python -m leadloop_handoff.tokens create --client crm-widget \\
        --scopes leads:read-summary,leads:read-contact [--rate-per-minute 60]

Prints the new bearer token once, then the ``config/api-clients.yaml`` entry that holds
its SHA-256 (never the token). The token is not stored anywhere: give it to the
client's operator, paste the entry into the file and restart the hand-off service.
Losing a token means creating a new one and replacing the entry's ``token_sha256``.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Sequence

import yaml
from pydantic import ValidationError

from leadloop_handoff.domain.access import SCOPES, ClientEntry, token_digest

__all__ = ["create_entry", "main"]


def create_entry(client_id: str, scopes: Sequence[str], rate_per_minute: int) -> tuple[str, str]:
    """A fresh token and its clients-file entry as YAML (a one-item list).

    Raises ``pydantic.ValidationError`` when the client id, scopes or rate are invalid.
    """
    token = secrets.token_urlsafe(32)
    entry = ClientEntry(
        client_id=client_id,
        scopes=tuple(scopes),
        token_sha256=token_digest(token),
        rate_per_minute=rate_per_minute,
    )
    text = yaml.safe_dump(
        [entry.model_dump(exclude_none=True)], sort_keys=False, default_flow_style=False
    )
    return token, text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m leadloop_handoff.tokens", description="read-API client tokens"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="a new token and its api-clients.yaml entry")
    create.add_argument("--client", required=True, help="client id, e.g. crm-widget")
    create.add_argument(
        "--scopes", required=True, help=f"comma-separated, of: {', '.join(sorted(SCOPES))}"
    )
    create.add_argument("--rate-per-minute", type=int, default=60)
    args = parser.parse_args(argv)
    scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
    try:
        token, entry = create_entry(args.client, scopes, args.rate_per_minute)
    except ValidationError as exc:
        for err in exc.errors(include_input=False, include_url=False):
            where = ".".join(str(p) for p in err["loc"]) or "(entry)"
            sys.stderr.write(f"leadloop: {where}: {err['msg']}\n")
        return 2
    out = sys.stdout
    out.write(f"# bearer token for {args.client}: shown once, store it in the client's secrets\n")
    out.write(f"{token}\n")
    out.write("# add under `clients:` in config/api-clients.yaml, then restart handoff:\n")
    out.write(entry)
    return 0


if __name__ == "__main__":
    sys.exit(main())
