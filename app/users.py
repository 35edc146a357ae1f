"""Users of a partnership: what the admin page, the admin API and the CLI do to them, in one place.

Every change that alters what a person may do (role, disable, password) also bumps their
session epoch, so sessions signed before the change stop working in every worker at once.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app import passwords
from app.errors import BadRequest, Conflict, NotFound
from app.roles import Role

# 'embed' (if present) belongs to embedded maps, never to a person.
USER_ROLES = tuple(r.value for r in Role if r.value != "embed")
EMAIL = re.compile(r"^[^@\s<>\"']+@[^@\s<>\"']+\.[^@\s<>\"']+$")

USERS_OF = text("""
    SELECT p.id, p.name, p.email, p.role, a.name AS agency, p.disabled_at, p.last_sign_in_at,
           p.locked_until > now() AS locked, p.created_at
    FROM principal p LEFT JOIN agency a ON a.id = p.agency_id
    WHERE p.partnership_id = :pid AND p.kind = 'user'
    ORDER BY lower(p.name), p.id LIMIT :limit
""")
USER_OF = text("""
    SELECT id, name, email, role, disabled_at FROM principal
    WHERE id = :id AND partnership_id = :pid AND kind = 'user'
""")
USER_BY_EMAIL = text("""
    SELECT p.id, p.partnership_id, p.name, p.email, p.role, p.disabled_at, pa.slug
    FROM principal p JOIN partnership pa ON pa.id = p.partnership_id
    WHERE lower(p.email) = lower(:email) AND p.kind = 'user'
""")
EMAIL_TAKEN = text("SELECT 1 FROM principal WHERE lower(email) = lower(:email)")
AGENCY = text("SELECT id FROM agency WHERE partnership_id = :pid AND lower(name) = lower(:name)")
ADD_AGENCY = text("INSERT INTO agency (partnership_id, name) VALUES (:pid, :name) RETURNING id")
ADD_USER = text("""
    INSERT INTO principal (partnership_id, agency_id, name, role, kind, email, password_hash)
    VALUES (:pid, :agency, :name, :role, 'user', :email, :hash) RETURNING id
""")
SET_ROLE = text("UPDATE principal SET role = :role, session_epoch = session_epoch + 1 WHERE id = :id")
SET_DISABLED = text("""
    UPDATE principal SET disabled_at = CASE WHEN :disabled THEN now() END,
                         session_epoch = session_epoch + 1
    WHERE id = :id
""")
SET_PASSWORD = text("""
    UPDATE principal SET password_hash = :hash, failed_sign_ins = 0, locked_until = NULL,
                         session_epoch = session_epoch + 1
    WHERE id = :id
""")
TOKENS_OF = text("""
    SELECT t.id, t.name, p.name AS owner, p.email, t.created_at, t.last_used_at, t.expires_at, t.revoked_at
    FROM api_token t JOIN principal p ON p.id = t.principal_id
    WHERE p.partnership_id = :pid AND (CAST(:principal AS integer) IS NULL OR p.id = :principal)
    ORDER BY t.id DESC LIMIT :limit
""")
REVOKE_TOKEN = text("""
    UPDATE api_token t SET revoked_at = now() FROM principal p
    WHERE t.id = :id AND p.id = t.principal_id AND p.partnership_id = :pid AND t.revoked_at IS NULL
    RETURNING t.id, p.id AS principal_id
""")


@dataclass(frozen=True)
class User:
    id: int
    name: str
    email: str
    role: str
    disabled: bool


def check_role(role: str) -> str:
    if role not in USER_ROLES:
        raise BadRequest(f"Unknown role '{role}'; use one of {', '.join(USER_ROLES)}.")
    return role


def check_email(email: str) -> str:
    email = email.strip()
    if len(email) > 254 or not EMAIL.match(email):
        raise BadRequest("That is not an email address.")
    return email


def check_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise BadRequest("A name needs 1 to 200 characters.")
    return name


async def agency_id(session: AsyncSession, pid: int, name: str | None) -> int | None:
    """The partnership's agency of that name, added if new (kind 'other')."""
    if not name or not name.strip():
        return None
    name = check_name(name)
    found = (await session.execute(AGENCY, {"pid": pid, "name": name})).scalar()
    return found if found is not None else (await session.execute(ADD_AGENCY, {"pid": pid, "name": name})).scalar_one()


async def add_user(session: AsyncSession, pid: int, *, name: str, email: str, role: str,
                   agency: str | None, password: str) -> int:
    name, email, role = check_name(name), check_email(email), check_role(role)
    if (why := passwords.check_policy(password)):
        raise BadRequest(why)
    if (await session.execute(EMAIL_TAKEN, {"email": email})).first():
        raise Conflict("A user with that email already exists.")
    return (await session.execute(ADD_USER, {
        "pid": pid, "agency": await agency_id(session, pid, agency), "name": name, "role": role,
        "email": email, "hash": await passwords.hash_password(password)})).scalar_one()


async def get_user(session: AsyncSession, pid: int, user_id: int) -> User:
    row = (await session.execute(USER_OF, {"id": user_id, "pid": pid})).first()
    if row is None:
        raise NotFound("No such user in your partnership.")
    return User(row.id, row.name, row.email, row.role, row.disabled_at is not None)


async def list_users(session: AsyncSession, pid: int, limit: int = 1000):
    return (await session.execute(USERS_OF, {"pid": pid, "limit": limit})).mappings().all()


async def list_tokens(session: AsyncSession, pid: int, principal_id: int | None = None, limit: int = 500):
    return (await session.execute(TOKENS_OF, {"pid": pid, "principal": principal_id, "limit": limit})).mappings().all()


async def set_role(session: AsyncSession, user_id: int, role: str) -> None:
    await session.execute(SET_ROLE, {"id": user_id, "role": check_role(role)})


async def set_disabled(session: AsyncSession, user_id: int, disabled: bool) -> None:
    await session.execute(SET_DISABLED, {"id": user_id, "disabled": disabled})


async def set_password(session: AsyncSession, user_id: int, password: str) -> None:
    if (why := passwords.check_policy(password)):
        raise BadRequest(why)
    await session.execute(SET_PASSWORD, {"id": user_id, "hash": await passwords.hash_password(password)})


async def revoke_token(session: AsyncSession, pid: int, token_id: int) -> int:
    """Revoke a token of the partnership; returns its owner's id."""
    row = (await session.execute(REVOKE_TOKEN, {"id": token_id, "pid": pid})).first()
    if row is None:
        raise NotFound("No active token with that id in your partnership.")
    return row.principal_id


async def user_by_email(session: AsyncSession, email: str):
    return (await session.execute(USER_BY_EMAIL, {"email": email.strip()})).first()
