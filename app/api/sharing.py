"""Administering who sees which data set at which level, the categories held back from lower roles,
and the anonymous points that sanitised incidents are shown at.

The rules are enforced in SQL (safermap_visible_incidents, migration 0006); this router only edits
them. Each change is audited with what it was before and after, and takes effect at once: the
tables carry data-version triggers that the incidents layer's tile ETags include.
"""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import text

from app import audit
from app.api.deps import Admin, SessionDep
from app.api.schemas import ApiModel
from app.auth import Principal
from app.errors import BadRequest, NotFound

router = APIRouter(tags=["sharing"])

Level = Literal["none", "aggregate", "sanitised", "exact"]
RoleName = Literal["viewer", "pcso", "operator", "analyst", "admin"]
DatasetId = Annotated[int, Path(ge=1, le=2**31 - 1)]
MAX_RULES = 500
MAX_SENSITIVE = 200

DATASETS = text("""
    SELECT d.id, d.source_key, d.name, d.kind, d.sharing_level, d.agency_id, a.name AS agency
    FROM dataset d LEFT JOIN agency a ON a.id = d.agency_id
    WHERE d.partnership_id = :p ORDER BY d.id
""")
DATASET = text("""
    SELECT d.id, d.source_key, d.name, d.kind, d.sharing_level, d.agency_id, a.name AS agency
    FROM dataset d LEFT JOIN agency a ON a.id = d.agency_id
    WHERE d.partnership_id = :p AND d.id = :id
""")
RULES = text("""
    SELECT r.dataset_id, r.grantee_agency_id, a.name AS agency, pa.slug AS agency_partnership,
           r.grantee_role, r.level
    FROM sharing_rule r
    LEFT JOIN agency a ON a.id = r.grantee_agency_id
    LEFT JOIN partnership pa ON pa.id = a.partnership_id
    WHERE r.partnership_id = :p AND (CAST(:id AS integer) IS NULL OR r.dataset_id = :id)
    ORDER BY r.dataset_id, r.grantee_agency_id NULLS LAST, r.grantee_role
""")
AGENCIES_EXIST = text("SELECT count(*) FROM agency WHERE id = ANY(:ids)")
DELETE_RULES = text("DELETE FROM sharing_rule WHERE partnership_id = :p AND dataset_id = :id")
INSERT_RULES = text("""
    INSERT INTO sharing_rule (partnership_id, dataset_id, grantee_agency_id, grantee_role, level, created_by)
    SELECT :p, :id, r.agency, r.role, r.level, :by
    FROM unnest(CAST(:agencies AS integer[]), CAST(:roles AS text[]), CAST(:levels AS text[])) AS r(agency, role, level)
""")
SET_DEFAULT = text("UPDATE dataset SET sharing_level = :level WHERE partnership_id = :p AND id = :id")
SENSITIVE = text("SELECT category, least_role FROM sensitive_category WHERE partnership_id = :p ORDER BY category")
DELETE_SENSITIVE = text("DELETE FROM sensitive_category WHERE partnership_id = :p")
INSERT_SENSITIVE = text("""
    INSERT INTO sensitive_category (partnership_id, category, least_role)
    SELECT :p, c.category, c.least_role
    FROM unnest(CAST(:categories AS text[]), CAST(:roles AS text[])) AS c(category, least_role)
""")
REFRESH = text("SELECT safermap_refresh_anon_points(:p)")
ANON_STATS = text("""
    SELECT (SELECT count(*) FROM anon_point WHERE partnership_id = :p) AS points,
           (SELECT count(*) FROM incident WHERE partnership_id = :p AND geom IS NOT NULL AND anon_point_id IS NULL)
               AS on_grid_cells
""")


class Rule(BaseModel):
    """One grant: to an agency (of this or another partnership) or to a role of this partnership."""
    model_config = ConfigDict(extra="forbid")
    grantee_agency: int | None = Field(None, ge=1, le=2**31 - 1)
    grantee_role: RoleName | None = None
    level: Level

    @model_validator(mode="after")
    def _one_grantee(self) -> Rule:
        if (self.grantee_agency is None) == (self.grantee_role is None):
            raise ValueError("give exactly one of grantee_agency and grantee_role")
        return self


class Rules(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: list[Rule] = Field(max_length=MAX_RULES)


class DatasetPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sharing_level: Level


class Sensitive(BaseModel):
    model_config = ConfigDict(extra="forbid")
    category: str = Field(min_length=1, max_length=200)
    least_role: RoleName


class SensitiveList(BaseModel):
    model_config = ConfigDict(extra="forbid")
    categories: list[Sensitive] = Field(max_length=MAX_SENSITIVE)


class RuleOut(ApiModel):
    """A grant as stored: to an agency (with its name and partnership) or to a role."""
    level: Level
    grantee_agency: int | None = None
    agency: str | None = None
    agency_partnership: str | None = Field(None, description="the grantee agency's partnership (its slug)")
    grantee_role: RoleName | None = None


class DatasetOut(ApiModel):
    id: int
    source_key: str
    name: str
    kind: str | None
    owner_agency: int | None
    owner_agency_name: str | None
    sharing_level: Level = Field(description="the default for everyone in the partnership with no rule of their own")
    rules: list[RuleOut]


class DatasetList(ApiModel):
    datasets: list[DatasetOut]
    levels: list[Level]


class SensitiveOut(ApiModel):
    categories: list[Sensitive]


class AnonymousPoints(ApiModel):
    anonymous_points: int
    incidents_on_grid_cells: int = Field(description="incidents more than 500 m from a street: at their 100 m "
                                                     "grid cell's centre")


def _rule(row) -> dict:
    out: dict = {"level": row.level}
    if row.grantee_agency_id is not None:
        out.update(grantee_agency=row.grantee_agency_id, agency=row.agency,
                   agency_partnership=row.agency_partnership)
    else:
        out["grantee_role"] = row.grantee_role
    return out


def _dataset(row, rules: list[dict]) -> dict:
    return {"id": row.id, "source_key": row.source_key, "name": row.name, "kind": row.kind,
            "owner_agency": row.agency_id, "owner_agency_name": row.agency,
            "sharing_level": row.sharing_level, "rules": rules}


async def _owned_dataset(session, principal: Principal, dataset_id: int):
    """The data set, if it is this partnership's. Admins of the partnership may change any of its
    data sets' rules (the owning agency's own members always see their data exactly)."""
    row = (await session.execute(DATASET, {"p": principal.partnership_id, "id": dataset_id})).first()
    if row is None:
        raise NotFound(f"Your partnership has no data set {dataset_id}.")
    return row


async def _rules(session, principal: Principal, dataset_id: int) -> list[dict]:
    rows = (await session.execute(RULES, {"p": principal.partnership_id, "id": dataset_id})).all()
    return [_rule(r) for r in rows]


def _ip(request: Request) -> str | None:
    return request.client.host if request.client else None


@router.get("/api/datasets", summary="Your partnership's data sets with their sharing rules",
            response_model=DatasetList, response_model_exclude_unset=True)
async def list_datasets(session: SessionDep, principal: Admin) -> dict:
    rows = (await session.execute(DATASETS, {"p": principal.partnership_id})).all()
    rules: dict[int, list[dict]] = {}
    for r in (await session.execute(RULES, {"p": principal.partnership_id, "id": None})).all():
        rules.setdefault(r.dataset_id, []).append(_rule(r))
    return {"datasets": [_dataset(r, rules.get(r.id, [])) for r in rows],
            "levels": ["none", "aggregate", "sanitised", "exact"]}


@router.patch("/api/datasets/{dataset_id}", summary="Set a data set's default sharing level",
              response_model=DatasetOut, response_model_exclude_unset=True)
async def patch_dataset(dataset_id: DatasetId, body: DatasetPatch, request: Request, session: SessionDep,
                        principal: Admin) -> dict:
    """The default is the level for everyone in the partnership with no rule of their own."""
    before = await _owned_dataset(session, principal, dataset_id)
    await session.execute(SET_DEFAULT, {"p": principal.partnership_id, "id": dataset_id,
                                        "level": body.sharing_level})
    await audit.record(session, "sharing.update", principal=principal, target=f"dataset/{dataset_id}",
                       detail={"before": {"sharing_level": before.sharing_level},
                               "after": {"sharing_level": body.sharing_level}}, ip=_ip(request))
    await session.commit()
    row = await _owned_dataset(session, principal, dataset_id)
    return _dataset(row, await _rules(session, principal, dataset_id))


@router.get("/api/datasets/{dataset_id}/sharing", summary="A data set's sharing rules",
            response_model=DatasetOut, response_model_exclude_unset=True)
async def get_rules(dataset_id: DatasetId, session: SessionDep, principal: Admin) -> dict:
    row = await _owned_dataset(session, principal, dataset_id)
    return _dataset(row, await _rules(session, principal, dataset_id))


@router.put("/api/datasets/{dataset_id}/sharing", summary="Replace a data set's sharing rules",
            response_model=DatasetOut, response_model_exclude_unset=True)
async def put_rules(dataset_id: DatasetId, body: Rules, request: Request, session: SessionDep,
                    principal: Admin) -> dict:
    """The whole list of grants: each to an agency (`grantee_agency`, an agency id of this or
    another partnership: the only way data crosses partnerships) or to a role of this partnership
    (`grantee_role`), with a level: none, aggregate (counts only), sanitised (anonymous points) or
    exact. An agency's rule wins over its role's; members of the owning agency and admins always
    see the data exactly."""
    row = await _owned_dataset(session, principal, dataset_id)
    keys = [(r.grantee_agency, r.grantee_role) for r in body.rules]
    if len(set(keys)) != len(keys):
        raise BadRequest("Each agency or role may have only one rule per data set.")
    agencies = sorted({r.grantee_agency for r in body.rules if r.grantee_agency is not None})
    if agencies and (await session.execute(AGENCIES_EXIST, {"ids": agencies})).scalar_one() != len(agencies):
        raise BadRequest("A grantee_agency names no agency.")
    before = await _rules(session, principal, dataset_id)
    await session.execute(DELETE_RULES, {"p": principal.partnership_id, "id": dataset_id})
    if body.rules:
        await session.execute(INSERT_RULES, {
            "p": principal.partnership_id, "id": dataset_id, "by": principal.id,
            "agencies": [r.grantee_agency for r in body.rules], "roles": [r.grantee_role for r in body.rules],
            "levels": [r.level for r in body.rules]})
    after = await _rules(session, principal, dataset_id)
    await audit.record(session, "sharing.update", principal=principal, target=f"dataset/{dataset_id}",
                       detail={"before": before, "after": after}, ip=_ip(request))
    await session.commit()
    return _dataset(row, after)


@router.delete("/api/datasets/{dataset_id}/sharing", summary="Remove a data set's sharing rules",
               response_model=DatasetOut, response_model_exclude_unset=True)
async def delete_rules(dataset_id: DatasetId, request: Request, session: SessionDep, principal: Admin) -> dict:
    """Everyone falls back to the data set's default level (other partnerships: nothing)."""
    row = await _owned_dataset(session, principal, dataset_id)
    before = await _rules(session, principal, dataset_id)
    await session.execute(DELETE_RULES, {"p": principal.partnership_id, "id": dataset_id})
    await audit.record(session, "sharing.update", principal=principal, target=f"dataset/{dataset_id}",
                       detail={"before": before, "after": []}, ip=_ip(request))
    await session.commit()
    return _dataset(row, [])


@router.get("/api/sharing/sensitive-categories", summary="Categories held back from lower roles",
            response_model=SensitiveOut)
async def get_sensitive(session: SessionDep, principal: Admin) -> dict:
    rows = (await session.execute(SENSITIVE, {"p": principal.partnership_id})).all()
    return {"categories": [{"category": r.category, "least_role": r.least_role} for r in rows]}


@router.put("/api/sharing/sensitive-categories", summary="Replace the sensitive categories",
            response_model=SensitiveOut)
async def put_sensitive(body: SensitiveList, request: Request, session: SessionDep, principal: Admin) -> dict:
    """Incidents of each category are hidden entirely (from lists, tiles, counts and category
    lists) from roles below `least_role`, whatever the data set's sharing rules say."""
    names = [c.category.strip() for c in body.categories]
    if any(not n for n in names) or len(set(names)) != len(names):
        raise BadRequest("Each category must be named, and only once.")
    before = (await get_sensitive(session, principal))["categories"]
    await session.execute(DELETE_SENSITIVE, {"p": principal.partnership_id})
    if names:
        await session.execute(INSERT_SENSITIVE, {"p": principal.partnership_id, "categories": names,
                                                 "roles": [c.least_role for c in body.categories]})
    after = (await get_sensitive(session, principal))["categories"]
    await audit.record(session, "sharing.update", principal=principal, target="sensitive-categories",
                       detail={"before": before, "after": after}, ip=_ip(request))
    await session.commit()
    return {"categories": after}


@router.post("/api/sharing/refresh-anonymous-points", summary="Rebuild the anonymous points from the streets",
             response_model=AnonymousPoints)
async def refresh_anonymous_points(request: Request, session: SessionDep, principal: Admin) -> dict:
    """Run after loading or changing streets: rebuilds the street-based anonymous points and moves
    each incident to its nearest one (within 500 m; else the centre of its 100 m grid cell)."""
    points = (await session.execute(REFRESH, {"p": principal.partnership_id})).scalar_one()
    stats = (await session.execute(ANON_STATS, {"p": principal.partnership_id})).one()
    await audit.record(session, "sharing.refresh-anonymous-points", principal=principal,
                       target="anon_point", detail={"points": points}, ip=_ip(request))
    await session.commit()
    return {"anonymous_points": points, "incidents_on_grid_cells": stats.on_grid_cells}


