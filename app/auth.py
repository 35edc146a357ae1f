"""Principals, bearer tokens, signed session cookies and one-time sign-in links.

Tokens are random and shown once; the database keeps only their SHA-256 digest. The session
cookie is signed with the shared secret and names the token it came from, so revoking the token
ends the session in every worker at once.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Forbidden, Unauthorized
from app.roles import at_least

TOKEN_PREFIX = "sm_"
SESSION_COOKIE = "safermap_session"


@dataclass(frozen=True)
class Principal:
    id: int
    name: str
    role: str
    partnership_id: int
    partnership_slug: str
    srid: int
    token_id: int | None
    agency_id: int | None = None

    def require(self, least_role: str) -> None:
        if not at_least(self.role, least_role):
            raise Forbidden(f"This needs the role '{least_role}' or above; you are '{self.role}'.")


def new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


PRINCIPAL_BY_TOKEN = text("""
    SELECT p.id, p.name, p.role, p.partnership_id, pa.slug, pa.srid, t.id AS token_id, p.agency_id
    FROM api_token t
    JOIN principal p ON p.id = t.principal_id
    JOIN partnership pa ON pa.id = p.partnership_id
    WHERE t.token_hash = :hash AND t.revoked_at IS NULL AND p.disabled_at IS NULL
      AND (t.expires_at IS NULL OR t.expires_at > now())
""")

PRINCIPAL_BY_SESSION = text("""
    SELECT p.id, p.name, p.role, p.partnership_id, pa.slug, pa.srid, t.id AS token_id, p.agency_id
    FROM principal p
    JOIN partnership pa ON pa.id = p.partnership_id
    LEFT JOIN api_token t ON t.id = :token_id
    WHERE p.id = :principal_id AND p.disabled_at IS NULL
      AND (CAST(:token_id AS integer) IS NULL
           OR (t.principal_id = p.id AND t.revoked_at IS NULL
               AND (t.expires_at IS NULL OR t.expires_at > now())))
""")


def _principal(row) -> Principal:
    return Principal(id=row.id, name=row.name, role=row.role, partnership_id=row.partnership_id,
                     partnership_slug=row.slug, srid=row.srid, token_id=row.token_id,
                     agency_id=row.agency_id)


async def principal_from_token(session: AsyncSession, token: str) -> Principal:
    row = (await session.execute(PRINCIPAL_BY_TOKEN, {"hash": digest(token)})).first()
    if row is None:
        raise Unauthorized("The bearer token is unknown, expired or revoked.")
    return _principal(row)


class Sessions:
    """Signed session cookies: stateless, so any worker can check them."""

    def __init__(self, secret: str, max_age_s: int) -> None:
        self.serializer = URLSafeTimedSerializer(secret, salt="safermap-session")
        self.max_age_s = max_age_s

    def encode(self, principal_id: int, token_id: int | None) -> str:
        return self.serializer.dumps({"p": principal_id, "t": token_id})

    def decode(self, cookie: str) -> dict:
        try:
            data = self.serializer.loads(cookie, max_age=self.max_age_s)
        except SignatureExpired as e:
            raise Unauthorized("Your session has expired; sign in again.") from e
        except BadSignature as e:
            raise Unauthorized("The session cookie is not valid; sign in again.") from e
        if not isinstance(data, dict) or not isinstance(data.get("p"), int):
            raise Unauthorized("The session cookie is not valid; sign in again.")
        return data


async def principal_from_session(session: AsyncSession, data: dict) -> Principal:
    row = (await session.execute(
        PRINCIPAL_BY_SESSION, {"principal_id": data["p"], "token_id": data.get("t")})).first()
    if row is None:
        raise Unauthorized("Your session has ended; sign in again.")
    return _principal(row)


async def create_token(session: AsyncSession, principal_id: int, name: str = "",
                       expires_in_days: int | None = None) -> str:
    secret = new_secret()
    expires = (datetime.now(timezone.utc) + timedelta(days=expires_in_days)) if expires_in_days else None
    await session.execute(
        text("INSERT INTO api_token (principal_id, name, token_hash, expires_at) "
             "VALUES (:p, :n, :h, :e)"),
        {"p": principal_id, "n": name, "h": digest(secret), "e": expires})
    return secret


async def create_sign_in_link(session: AsyncSession, principal_id: int, valid_minutes: int = 60 * 24) -> str:
    secret = secrets.token_urlsafe(24)
    await session.execute(
        text("INSERT INTO sign_in_link (principal_id, token_hash, expires_at) "
             "VALUES (:p, :h, now() + make_interval(mins => :m))"),
        {"p": principal_id, "h": digest(secret), "m": valid_minutes})
    return secret


async def use_sign_in_link(session: AsyncSession, secret: str) -> int:
    """Marks the link used and returns its principal; a link works once."""
    row = (await session.execute(
        text("UPDATE sign_in_link SET used_at = now() "
             "WHERE token_hash = :h AND used_at IS NULL AND expires_at > now() "
             "RETURNING principal_id"), {"h": digest(secret)})).first()
    if row is None:
        raise Unauthorized("This sign-in link is unknown, expired or has already been used.")
    return row.principal_id
