"""Principals, bearer tokens, signed session cookies and one-time sign-in links.

Tokens are random and shown once; the database keeps only their SHA-256 digest. The session
cookie is signed with the shared secret and names the token it came from, so revoking the token
ends the session in every worker at once. The lookups here read the database; each worker keeps
what they found in memory, kept exact by notifications (app/live_state.py).
"""
from __future__ import annotations

import hashlib
import math
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cachetools import LRUCache
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
    session_epoch: int = 0  # carried by session cookies; bumped to end them all

    def require(self, least_role: str) -> None:
        if not at_least(self.role, least_role):
            raise Forbidden(f"This needs the role '{least_role}' or above; you are '{self.role}'.")


def new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


PRINCIPAL_BY_TOKEN = text("""
    SELECT p.id, p.name, p.role, p.partnership_id, pa.slug, pa.srid, t.id AS token_id, p.agency_id,
           p.session_epoch, t.expires_at
    FROM api_token t
    JOIN principal p ON p.id = t.principal_id
    JOIN partnership pa ON pa.id = p.partnership_id
    WHERE t.token_hash = :hash AND t.revoked_at IS NULL AND p.disabled_at IS NULL
      AND (t.expires_at IS NULL OR t.expires_at > now())
""")

PRINCIPAL_BY_SESSION = text("""
    SELECT p.id, p.name, p.role, p.partnership_id, pa.slug, pa.srid, t.id AS token_id, p.agency_id,
           p.session_epoch, t.expires_at
    FROM principal p
    JOIN partnership pa ON pa.id = p.partnership_id
    LEFT JOIN api_token t ON t.id = :token_id
    WHERE p.id = :principal_id AND p.disabled_at IS NULL AND p.session_epoch = :epoch
      AND (CAST(:token_id AS integer) IS NULL
           OR (t.principal_id = p.id AND t.revoked_at IS NULL
               AND (t.expires_at IS NULL OR t.expires_at > now())))
""")

TOKEN_REFUSED = "The bearer token is unknown, expired or revoked."
SESSION_ENDED = "Your session has ended; sign in again."


def _principal(row) -> Principal:
    return Principal(id=row.id, name=row.name, role=row.role, partnership_id=row.partnership_id,
                     partnership_slug=row.slug, srid=row.srid, token_id=row.token_id,
                     agency_id=row.agency_id, session_epoch=row.session_epoch)


@dataclass(frozen=True)
class Verified:
    """A principal as the database vouched for it, and until when (its token's expiry, as seconds
    since the epoch; None: never), so a copy kept in memory can expire by the clock."""
    principal: Principal
    expires_at: float | None

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


def _verified(row) -> Verified:
    return Verified(_principal(row), row.expires_at.timestamp() if row.expires_at is not None else None)


async def verify_token(session: AsyncSession, token_hash: bytes) -> Verified:
    """The principal behind a token's digest, read from the database (app/live_state.py keeps it)."""
    row = (await session.execute(PRINCIPAL_BY_TOKEN, {"hash": token_hash})).first()
    if row is None:
        raise Unauthorized(TOKEN_REFUSED)
    return _verified(row)


async def principal_from_token(session: AsyncSession, token: str) -> Principal:
    return (await verify_token(session, digest(token))).principal


# "Last used" to within a minute, written off the request's path (app/live_state.py batches the ids),
# and only where it is older than that: one write a minute per token, not one per tile.
TOUCH_TOKENS = text("""
    UPDATE api_token SET last_used_at = now()
    WHERE id = ANY(:ids) AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
""")


class Sessions:
    """Signed session cookies: stateless, so any worker can check them."""

    def __init__(self, secret: str, max_age_s: int) -> None:
        self.serializer = URLSafeTimedSerializer(secret, salt="safermap-session")
        self.max_age_s = max_age_s

    def encode(self, principal_id: int, token_id: int | None, epoch: int = 0) -> str:
        return self.serializer.dumps({"p": principal_id, "t": token_id, "e": epoch})

    def decode(self, cookie: str) -> dict:
        try:
            data = self.serializer.loads(cookie, max_age=self.max_age_s)
        except SignatureExpired as e:
            raise Unauthorized("Your session has expired; sign in again.") from e
        except BadSignature as e:
            raise Unauthorized("The session cookie is not valid; sign in again.") from e
        if (not isinstance(data, dict) or not isinstance(data.get("p"), int)
                or not isinstance(data.get("e", 0), int)):
            raise Unauthorized("The session cookie is not valid; sign in again.")
        return data


async def verify_session(session: AsyncSession, data: dict) -> Verified:
    """The principal behind a decoded session cookie, read from the database."""
    row = (await session.execute(
        PRINCIPAL_BY_SESSION,
        {"principal_id": data["p"], "token_id": data.get("t"), "epoch": data.get("e", 0)})).first()
    if row is None:
        raise Unauthorized(SESSION_ENDED)
    return _verified(row)


async def principal_from_session(session: AsyncSession, data: dict) -> Principal:
    return (await verify_session(session, data)).principal


INSERT_TOKEN = text("INSERT INTO api_token (principal_id, name, token_hash, expires_at) "
                    "VALUES (:p, :n, :h, :e) RETURNING id")


async def issue_token(session: AsyncSession, principal_id: int, name: str = "",
                      expires_in_days: int | None = None) -> tuple[int, str]:
    """A new token for a principal: (its id, the secret to show once)."""
    secret = new_secret()
    expires = (datetime.now(UTC) + timedelta(days=expires_in_days)) if expires_in_days else None
    token_id = (await session.execute(
        INSERT_TOKEN, {"p": principal_id, "n": name, "h": digest(secret), "e": expires})).scalar_one()
    return token_id, secret


async def create_token(session: AsyncSession, principal_id: int, name: str = "",
                       expires_in_days: int | None = None) -> str:
    return (await issue_token(session, principal_id, name, expires_in_days))[1]


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


PRINCIPAL_BY_ID = text("""
    SELECT p.id, p.name, p.role, p.partnership_id, pa.slug, pa.srid, NULL::integer AS token_id,
           p.agency_id, p.session_epoch
    FROM principal p JOIN partnership pa ON pa.id = p.partnership_id
    WHERE p.id = :id AND p.disabled_at IS NULL
""")


async def principal_by_id(session: AsyncSession, principal_id: int) -> Principal:
    row = (await session.execute(PRINCIPAL_BY_ID, {"id": principal_id})).first()
    if row is None:
        raise Unauthorized("This account is disabled.")
    return _principal(row)


# -- passwords and lock-out -------------------------------------------------------------------------

# One message for an unknown email, a wrong password and a disabled account: no enumeration.
SIGN_IN_FAILED = "That email and password do not match an account."

USER_BY_EMAIL = text("""
    SELECT id, partnership_id, password_hash, disabled_at IS NOT NULL AS disabled,
           CAST(GREATEST(0, CEIL(EXTRACT(EPOCH FROM locked_until - now()))) AS integer) AS locked_for
    FROM principal WHERE lower(email) = lower(:email) AND kind = 'user'
""")

# The n-th consecutive failure from `max` on locks the account for 2^(n-max) minutes, capped.
RECORD_FAILURE = text("""
    UPDATE principal SET failed_sign_ins = failed_sign_ins + 1,
        locked_until = CASE WHEN failed_sign_ins + 1 >= :max THEN now() + make_interval(
            mins => CAST(LEAST(:cap, power(2, LEAST(failed_sign_ins + 1 - :max, 20))) AS integer))
            ELSE locked_until END
    WHERE id = :id
""")

RECORD_SUCCESS = text("""
    UPDATE principal SET failed_sign_ins = 0, locked_until = NULL, last_sign_in_at = now(),
        password_hash = COALESCE(CAST(:rehash AS text), password_hash)
    WHERE id = :id
""")


@dataclass
class SignInOutcome:
    principal_id: int | None = None      # set on success
    partnership_id: int | None = None    # of the account tried, when one exists (for the audit trail)
    retry_after: int = 0                 # seconds; > 0 when locked
    reason: str = ""                     # for the audit trail only, never shown


class UnknownEmailLocks:
    """The same lock-out for emails that have no account, so a 429 does not reveal which exist.
    In process memory (per worker), bounded."""

    def __init__(self, max_entries: int = 10_000) -> None:
        # email -> (consecutive failures, locked until on the monotonic clock); least recently
        # failed emails go first when full.
        self.entries: LRUCache = LRUCache(maxsize=max_entries)

    def locked_for(self, email: str) -> int:
        _, until = self.entries.get(email, (0, 0.0))
        return max(0, math.ceil(until - time.monotonic()))

    def fail(self, email: str, max_failures: int, cap_minutes: int) -> None:
        failures, until = self.entries.pop(email, (0, 0.0))
        failures += 1
        if failures >= max_failures:
            until = time.monotonic() + 60 * min(cap_minutes, 2 ** min(failures - max_failures, 20))
        self.entries[email] = (failures, until)


unknown_email_locks = UnknownEmailLocks()


async def password_sign_in(session: AsyncSession, email: str, password: str, *,
                           max_failures: int, lock_cap_minutes: int) -> SignInOutcome:
    """Check an email and password, counting failures; the caller commits and audits."""
    from app import passwords

    key = email.strip().lower()
    row = (await session.execute(USER_BY_EMAIL, {"email": key})).first() if key else None
    if row is None:
        locked = unknown_email_locks.locked_for(key)
        if locked:
            return SignInOutcome(retry_after=locked, reason="locked")
        await passwords.verify(None, password)  # the same time as a wrong password
        unknown_email_locks.fail(key, max_failures, lock_cap_minutes)
        return SignInOutcome(reason="unknown-email")
    if row.locked_for > 0:
        return SignInOutcome(partnership_id=row.partnership_id, retry_after=row.locked_for, reason="locked")
    ok = await passwords.verify(row.password_hash, password)
    if not ok or row.disabled:
        await session.execute(RECORD_FAILURE, {"id": row.id, "max": max_failures, "cap": lock_cap_minutes})
        return SignInOutcome(partnership_id=row.partnership_id,
                             reason="disabled" if ok else "wrong-password")
    rehash = await passwords.hash_password(password) if passwords.needs_rehash(row.password_hash) else None
    await session.execute(RECORD_SUCCESS, {"id": row.id, "rehash": rehash})
    return SignInOutcome(principal_id=row.id, partnership_id=row.partnership_id)


BUMP_EPOCH = text("UPDATE principal SET session_epoch = session_epoch + 1 WHERE id = :id")


async def end_sessions(session: AsyncSession, principal_id: int) -> None:
    """End every session cookie of a principal, in every worker (the cookie's epoch is stale)."""
    await session.execute(BUMP_EPOCH, {"id": principal_id})
