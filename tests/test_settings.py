"""Settings live in one module (app/settings.py): numbers have bounds, a bad value stops the CLI and
the app at start-up with a message that names the environment variable (never a traceback), and
the app's routes take the suppression threshold from the app's own settings."""
from __future__ import annotations

import os
import subprocess
import sys
from contextlib import asynccontextmanager
from datetime import date
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import text

from app.settings import ROOT, Settings, SettingsError, env_name, load_settings
from app.tiles.sql import lonlat_to_tile

# (setting, a value below its bound, a value above it)
BOUNDED = [
    ("pool_size", 0, 1001), ("max_overflow", -1, 1001), ("session_max_age_s", 59, 10**9),
    ("sign_in_max_failures", 0, 1001), ("sign_in_lock_cap_minutes", 0, 10**6),
    ("sign_in_per_ip_per_minute", 0, 10**6), ("user_token_days", 0, 3651), ("max_body_bytes", 10, 2**40),
    ("max_upload_bytes", 10, 2**40), ("rate_limit_per_minute", 0, 10**8), ("tile_rate_limit_per_minute", 0, 10**8),
    ("max_features_limit", 0, 10**7), ("tile_cache_entries", -1, 10**8), ("tile_cache_bytes", -1, 2**40),
    ("embedded_port", 0, 65536), ("suppress_below", 0, 1001),
]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFERMAP_")}
    return {**env, **extra}


@pytest.mark.parametrize("field,low,high", BOUNDED)
def test_each_number_has_bounds_and_a_bad_one_names_its_variable(monkeypatch, field, low, high):
    for name in list(os.environ):
        if name.startswith("SAFERMAP_"):
            monkeypatch.delenv(name)
    default = Settings.model_fields[field].default
    for bad in (low, high):
        monkeypatch.setenv(env_name(field), str(bad))
        with pytest.raises(SettingsError) as exc:
            load_settings()
        assert f"SAFERMAP_{field.upper()}={str(bad)!r}" in str(exc.value)
    if default is not None:
        monkeypatch.setenv(env_name(field), str(default))
        assert getattr(load_settings(), field) == default


def test_every_bad_variable_is_named_at_once(monkeypatch):
    monkeypatch.setenv("SAFERMAP_POOL_SIZE", "lots")
    monkeypatch.setenv("SAFERMAP_EMBEDDED_PORT", "70000")
    message = str(pytest.raises(SettingsError, load_settings).value)
    assert "SAFERMAP_POOL_SIZE='lots'" in message and "valid integer" in message
    assert "SAFERMAP_EMBEDDED_PORT='70000'" in message and "65535" in message


def test_the_sharing_threshold_is_a_setting_like_the_others(monkeypatch):
    monkeypatch.setenv("SAFERMAP_SUPPRESS_BELOW", "7")
    assert load_settings().suppress_below == 7
    import app.sharing
    assert not hasattr(app.sharing, "SharingSettings")  # no second settings class


def test_the_cli_names_a_bad_variable_without_a_traceback():
    r = subprocess.run([sys.executable, "-m", "app.cli", "db", "status"], cwd=ROOT, capture_output=True, text=True,
                       env=clean_env(SAFERMAP_POOL_SIZE="0"), timeout=120)
    assert r.returncode == 2, r.stderr
    assert "SAFERMAP_POOL_SIZE='0'" in r.stderr and "greater than or equal to 1" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_the_app_names_a_bad_variable_without_a_traceback():
    """As `safermap serve` and the Dockerfile start it: uvicorn calling the app factory."""
    r = subprocess.run([sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--host", "127.0.0.1",
                        "--port", "0"], cwd=ROOT, capture_output=True, text=True,
                       env=clean_env(SAFERMAP_POOL_SIZE="0"), timeout=120)
    assert r.returncode != 0
    assert "SAFERMAP_POOL_SIZE='0'" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


# -- the app's own settings reach its routes ---------------------------------------------------------

@asynccontextmanager
async def client_of(settings: Settings, **changes):
    """A client on an app built with other settings (same database)."""
    from app.main import create_app
    app = create_app(settings.model_copy(update=changes))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
            yield c


async def test_embed_cells_are_held_back_below_the_apps_own_suppress_below(settings, client, make_caller, db):
    admin = await make_caller("settings-csp", "admin")
    spot = (-2.1561, 53.6158)
    ds = (await db.execute(text(
        "INSERT INTO dataset (partnership_id, source_key, name, sharing_level) VALUES (:p, 'test:k', 'K', 'exact') "
        "RETURNING id"), {"p": admin.partnership_id})).scalar_one()
    await db.execute(text(
        "INSERT INTO incident (partnership_id, dataset_id, category, month, geom) SELECT :p, :d, 'Burglary', :m, "
        "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) FROM generate_series(1, 4)"),
        {"p": admin.partnership_id, "d": ds, "m": date(2024, 1, 1), "lon": spot[0], "lat": spot[1]})
    await db.commit()
    r = await client.post("/api/embeds", headers=admin.headers, json={
        "title": "K", "layers": ["incidents"], "allowed_origins": ["https://intranet.example"]})
    assert r.status_code == 201, r.text
    embed = r.json()
    key = parse_qs(urlsplit(embed["url"]).query)["key"][0]
    x, y = lonlat_to_tile(*spot, 14)
    url = f"/embed/{embed['public_id']}/tiles/incidents/14/{x}/{y}.mvt?key={key}"
    fetch = {"Sec-Fetch-Dest": "empty", "Sec-Fetch-Site": "same-origin"}
    assert (await client.get(url, headers=fetch)).status_code == 204  # 4 < the default 5
    async with client_of(settings, suppress_below=3) as lower:
        shown = await lower.get(url, headers=fetch)
        assert shown.status_code == 200
        page = await lower.get(urlsplit(embed["url"]).path + f"?key={key}", headers={"Sec-Fetch-Dest": "iframe"})
        assert '"min_count": 3' in page.text or '"min_count":3' in page.text
