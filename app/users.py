"""Users of a partnership: what the admin page, the admin API and the CLI do to them, in one place.

Every change that alters what a person may do (role, disable, password) also bumps their
session epoch, so sessions signed before the change stop working in every worker at once.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Row, RowMapping, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app import passwords
from app.errors import BadRequest, Conflict, NotFound
from app.models import Agency, ApiToken, Partnership, Principal
from app.roles import Role

# 'embed' (if present) belongs to embedded maps, never to a person.
USER_ROLES = tuple(r.value for r in Role if r.value != "embed")
EMAIL = re.compile(r"^[^@\s<>\"']+@[^@\s<>\"']+\.[^@\s<>\"']+$")

# The users of a partnership as the admin page, the API and the CLI list them.
USERS = (
    select(Principal.id, Principal.name, Principal.email, Principal.role, Agency.name.label("agency"),
           Principal.disabled_at, Principal.last_sign_in_at, (Principal.locked_until > func.now()).label("locked"),
           Principal.created_at)
    .outerjoin(Agency, Agency.id == Principal.agency_id)
    .where(Principal.kind == "user")
)
TOKENS = (
    select(ApiToken.id, ApiToken.name, Principal.name.label("owner"), Principal.email, ApiToken.created_at,
           ApiToken.last_used_at, ApiToken.expires_at, ApiToken.revoked_at)
    .join(Principal, Principal.id == ApiToken.principal_id)
)


def _same_email(email: str) -> ColumnElement[bool]:
    # lower() in the database on both sides: what the unique index principal_email_key compares
    return func.lower(Principal.email) == func.lower(email)


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
    """The partnership's agency of that name (ignoring case), added if new (kind 'other')."""
    if not name or not name.strip():
        return None
    name = check_name(name)
    found = await session.scalar(select(Agency.id).where(Agency.partnership_id == pid,
                                                         func.lower(Agency.name) == func.lower(name)))
    if found is not None:
        return found
    agency = Agency(partnership_id=pid, name=name)
    session.add(agency)
    await session.flush()
    return agency.id


async def add_user(session: AsyncSession, pid: int, *, name: str, email: str, role: str,
                   agency: str | None, password: str) -> int:
    name, email, role = check_name(name), check_email(email), check_role(role)
    if (why := passwords.check_policy(password)):
        raise BadRequest(why)
    taken = Conflict("A user with that email already exists.")
    if await session.scalar(select(Principal.id).where(_same_email(email))) is not None:
        raise taken
    user = Principal(partnership_id=pid, agency_id=await agency_id(session, pid, agency), name=name, role=role,
                     kind="user", email=email, password_hash=await passwords.hash_password(password))
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as e:  # the same email added at the same moment
        raise taken from e
    return user.id


async def get_user(session: AsyncSession, pid: int, user_id: int) -> User:
    # populate_existing: read afresh even if this session changed the row (the changes below are
    # UPDATE statements that leave loaded objects alone)
    user = await session.get(Principal, user_id, populate_existing=True)
    if user is None or user.partnership_id != pid or user.kind != "user":
        raise NotFound("No such user in your partnership.")
    return User(user.id, user.name, user.email or "", user.role, user.disabled_at is not None)


async def list_users(session: AsyncSession, pid: int, limit: int = 1000) -> Sequence[RowMapping]:
    query = USERS.where(Principal.partnership_id == pid).order_by(func.lower(Principal.name), Principal.id)
    return (await session.execute(query.limit(limit))).mappings().all()


async def list_tokens(session: AsyncSession, pid: int, principal_id: int | None = None,
                      limit: int = 500) -> Sequence[RowMapping]:
    query = TOKENS.where(Principal.partnership_id == pid)
    if principal_id is not None:
        query = query.where(Principal.id == principal_id)
    return (await session.execute(query.order_by(ApiToken.id.desc()).limit(limit))).mappings().all()


async def _change(session: AsyncSession, user_id: int, **values: Any) -> None:
    """Change what a principal may do, and end their sessions: a new session epoch."""
    await session.execute(update(Principal).where(Principal.id == user_id)
                          .values(**values, session_epoch=Principal.session_epoch + 1)
                          .execution_options(synchronize_session=False))


async def set_role(session: AsyncSession, user_id: int, role: str) -> None:
    await _change(session, user_id, role=check_role(role))


async def set_disabled(session: AsyncSession, user_id: int, disabled: bool) -> None:
    await _change(session, user_id, disabled_at=func.now() if disabled else None)


async def set_password(session: AsyncSession, user_id: int, password: str) -> None:
    if (why := passwords.check_policy(password)):
        raise BadRequest(why)
    await _change(session, user_id, password_hash=await passwords.hash_password(password),
                  failed_sign_ins=0, locked_until=None)


async def revoke_token(session: AsyncSession, pid: int, token_id: int) -> int:
    """Revoke a token of the partnership; returns its owner's id."""
    revoked = await session.scalar(
        update(ApiToken)
        .where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None),
               ApiToken.principal_id == Principal.id, Principal.partnership_id == pid)
        .values(revoked_at=func.now())
        .returning(ApiToken.principal_id)
        .execution_options(synchronize_session=False))
    if revoked is None:
        raise NotFound("No active token with that id in your partnership.")
    return revoked


async def user_by_email(session: AsyncSession, email: str) -> Row | None:
    return (await session.execute(
        select(Principal.id, Principal.partnership_id, Principal.name, Principal.email, Principal.role,
               Principal.disabled_at, Partnership.slug)
        .join(Partnership, Partnership.id == Principal.partnership_id)
        .where(_same_email(email.strip()), Principal.kind == "user"))).first()
