"""Bearer tokens from LEADFLOW_INGEST_TOKENS (`name scope token` lines), compared in equal time."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from pathlib import Path

from leadflow.schemas.errors import LeadflowError

SCOPES = ("marketing", "sales", "all")


@dataclass(frozen=True, slots=True)
class Token:
    """One caller: its name (for metrics and logs), its scope, and the digest of its secret."""

    name: str
    scope: str
    digest: bytes = field(repr=False)


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


def parse_tokens(text: str, where: str = "the token file") -> tuple[Token, ...]:
    """Read `name scope token` lines; blank lines and lines starting with # are skipped."""
    tokens: list[Token] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        parts = stripped.split()
        if len(parts) != 3:
            raise LeadflowError(f"{where} line {number}: expected `name scope token`")
        name, scope, secret = parts
        if scope not in SCOPES:
            raise LeadflowError(
                f"{where} line {number}: scope {scope!r} is not one of {', '.join(SCOPES)}"
            )
        tokens.append(Token(name, scope, _digest(secret)))
    if not tokens:
        raise LeadflowError(f"{where} holds no token; add a `name scope token` line")
    return tuple(tokens)


def load_tokens(path: str | None) -> tuple[Token, ...]:
    """The tokens of LEADFLOW_INGEST_TOKENS; without it ingest does not start."""
    if not path:
        raise LeadflowError(
            "leadflow ingest needs LEADFLOW_INGEST_TOKENS, the path of a file of "
            "`name scope token` lines, and it is not set"
        )
    file = Path(path)
    if not file.is_file():
        raise LeadflowError(f"LEADFLOW_INGEST_TOKENS names {path}, which is not a file")
    return parse_tokens(file.read_text(encoding="utf-8"), path)


def find_token(tokens: tuple[Token, ...], header: str | None) -> Token | None:
    """The token an Authorization header carries; every known token is compared, equal time."""
    if header is None:
        return None
    scheme, _, secret = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None
    given = _digest(secret.strip())
    found: Token | None = None
    for token in tokens:
        if hmac.compare_digest(given, token.digest):
            found = token
    return found
