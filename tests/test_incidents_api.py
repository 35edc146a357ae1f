"""The incidents API: GeoJSON, filters, paging, limits, partnership scoping, categories, imports."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from app.ingest.police_uk import ImportRefused, import_paths

DATA = Path(__file__).parent / "data" / "police_uk"
JAN = DATA / "2024-01-test-constabulary-street.csv"
FEB = DATA / "2024-02-test-constabulary-street.csv"
NOT_POLICE = DATA / "camera-register.csv"
MANCHESTER = "-2.30,53.45,-2.20,53.50"  # holds the Market Street point only (5 mapped in January)


async def load(settings, make_caller, role: str = "viewer", slug: str = "test-csp", files=(JAN, FEB)):
    caller = await make_caller(slug, role)
    assert await import_paths(settings, list(files), slug, Console(file=io.StringIO()))
    return caller


async def get(client, caller, path: str, **params):
    return await client.get(path, params=params, headers=caller.headers)


async def test_incidents_are_a_geojson_feature_collection(client, settings, make_caller):
    caller = await load(settings, make_caller)
    r = await get(client, caller, "/api/incidents")
    assert r.status_code == 200
    body = r.json()
    assert body["type"] == "FeatureCollection"
    # 9 + 2 loaded, one without a location is not on the map.
    assert body["numberMatched"] == body["numberReturned"] == len(body["features"]) == 10
    assert "next" not in body and body["links"] == []
    burglary = next(f for f in body["features"] if f["properties"]["category"] == "Burglary")
    assert burglary["geometry"] == {"type": "Point", "coordinates": [-2.2426, 53.4808]}
    assert isinstance(burglary["id"], int)
    assert burglary["properties"] == {
        "category": "Burglary", "month": "2024-01", "location_text": "On or near Market Street",
        "lsoa_code": "E01005001", "lsoa_name": "Manchester 001A",
        "outcome": "Investigation complete; no suspect identified",
        "external_ref": "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90",
        "dataset": "police-uk:test-constabulary", "level": "exact"}
    asb = [f for f in body["features"] if f["properties"]["category"] == "Anti-social behaviour"]
    assert len(asb) == 4 and all(f["properties"]["external_ref"] is None for f in asb)
    assert [f["id"] for f in body["features"]] == sorted(f["id"] for f in body["features"])


async def test_filters_bbox_period_and_category(client, settings, make_caller):
    caller = await load(settings, make_caller)

    async def matched(**params) -> int:
        r = await get(client, caller, "/api/incidents", **params)
        assert r.status_code == 200, r.text
        return r.json()["numberMatched"]

    assert await matched(bbox=MANCHESTER) == 5
    assert await matched(bbox="0,0,1,1") == 0
    assert await matched(**{"from": "2024-01", "to": "2024-01"}) == 8
    assert await matched(**{"from": "2024-02"}) == 2
    assert await matched(to="2024-01-15") == 8  # January overlaps a period ending mid-month
    assert await matched(**{"from": "2024-01-20", "to": "2024-02-03"}) == 10
    assert await matched(category="Anti-social behaviour") == 4
    assert await matched(category="Burglary,Robbery") == 2
    r = await client.get("/api/incidents", params=[("category", "Burglary"), ("category", "robbery")],
                         headers=caller.headers)
    assert r.json()["numberMatched"] == 2  # repeated, and a police.uk slug
    assert await matched(category="Anti-social behaviour", bbox=MANCHESTER, **{"from": "2024-01"}) == 3


async def test_paging_follows_next_links_without_gaps_or_repeats(client, settings, make_caller):
    caller = await load(settings, make_caller)
    seen, url, pages = [], "/api/incidents?limit=3", 0
    while url:
        r = await client.get(url, headers=caller.headers)
        body = r.json()
        assert body["numberMatched"] == 10 and body["numberReturned"] == len(body["features"])
        seen += [f["id"] for f in body["features"]]
        url = body.get("next")
        if url:
            assert body["links"] == [{"rel": "next", "href": url, "type": "application/geo+json"}]
        pages += 1
    assert pages == 4 and len(seen) == len(set(seen)) == 10 and seen == sorted(seen)


async def test_bad_parameters_are_problems_not_errors(client, settings, make_caller):
    caller = await load(settings, make_caller)
    for params in ({"limit": 10_001}, {"limit": 0}, {"bbox": "1,2,3"}, {"from": "January"},
                   {"from": "2024-03", "to": "2024-01"}, {"count": "maybe"}, {"after": "x"}):
        r = await get(client, caller, "/api/incidents", **params)
        assert r.status_code in (400, 422), (params, r.status_code)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["detail"]
    r = await get(client, caller, "/api/incidents", limit=10_000)
    assert r.status_code == 200


async def test_a_partnership_sees_none_of_anothers_incidents(client, settings, make_caller):
    await load(settings, make_caller, slug="first-csp")
    other = await make_caller("second-csp", "admin")
    r = await get(client, other, "/api/incidents")
    assert r.json()["numberMatched"] == 0 and r.json()["features"] == []
    assert (await get(client, other, "/api/categories")).json()["categories"] == []
    assert (await get(client, other, "/api/imports")).json()["imports"] == []


async def test_categories_with_counts_and_the_police_uk_list(client, settings, make_caller):
    caller = await load(settings, make_caller)
    body = (await get(client, caller, "/api/categories")).json()
    counts = {c["name"]: (c["count"], c["mapped"]) for c in body["categories"]}
    assert counts["Anti-social behaviour"] == (4, 4)
    assert counts["Shoplifting"] == (1, 0)  # the no-location row: counted, not mapped
    assert sum(c for c, _ in counts.values()) == 11
    assert body["categories"][0]["name"] == "Anti-social behaviour"
    assert len(body["police_uk_categories"]) == 14
    assert {"name": "Anti-social behaviour", "slug": "anti-social-behaviour"} in body["police_uk_categories"]
    feb = (await get(client, caller, "/api/categories", **{"from": "2024-02"})).json()
    assert {c["name"]: c["count"] for c in feb["categories"]} == {"Anti-social behaviour": 1, "Vehicle crime": 1}


async def test_imports_list_runs_newest_first_with_rejects(client, settings, make_caller):
    caller = await load(settings, make_caller, role="analyst")
    with pytest.raises(ImportRefused):
        await import_paths(settings, [NOT_POLICE], "test-csp", Console(file=io.StringIO()))
    r = await get(client, caller, "/api/imports")
    assert r.status_code == 200
    runs = r.json()["imports"]
    assert [(x["file"], x["status"]) for x in runs] == [
        (NOT_POLICE.name, "refused"), (FEB.name, "loaded"), (JAN.name, "loaded")]
    jan = runs[2]
    assert (jan["kind"], jan["rows_total"], jan["rows_loaded"], jan["rows_rejected"]) == ("police-uk", 15, 9, 6)
    assert jan["rejects"][0] == {"line": 8, "reason": "unparseable month '2024-13' (expected YYYY-MM)"}
    assert [x["line"] for x in jan["rejects"]] == [8, 9, 10, 11, 12, 17]
    assert jan["started_at"] and jan["finished_at"] and "Test Constabulary 2024-01" in jan["message"]
    assert "Crime type" in runs[0]["message"]
    assert len((await get(client, caller, "/api/imports", limit=1)).json()["imports"]) == 1
    assert (await get(client, caller, "/api/imports", limit=501)).status_code == 422


async def test_roles(client, settings, make_caller):
    viewer = await load(settings, make_caller, role="viewer")
    assert (await get(client, viewer, "/api/incidents")).status_code == 200
    assert (await get(client, viewer, "/api/categories")).status_code == 200
    r = await get(client, viewer, "/api/imports")
    assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json")
    assert (await client.get("/api/incidents")).status_code == 401
