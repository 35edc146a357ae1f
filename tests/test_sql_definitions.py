"""The files in app/sql/ ARE what the database runs.

Each file is executed into a scratch schema of the migrated test database (in a transaction that is
rolled back) and every function it defines there is compared with the function of the same name and
arguments that the migrations left in `public`: `pg_get_functiondef` (body, arguments, result,
volatility, settings) and, for triggers, `pg_get_triggerdef`. A migration that redefines a function
without its file fails here, and so does a file edited without a migration to load it (each loading
migration records the digest of the files it loads). Every `safermap_*`
function, and every trigger calling one, is defined in exactly one file.
"""
from __future__ import annotations

import re
import tomllib
from collections import defaultdict
from collections.abc import Iterator

import psycopg
import pytest
from alembic.script import ScriptDirectory

from app import sql
from app.settings import ROOT

SCRATCH = "sql_definitions_check"

FUNCTIONS = """
    SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS name,
           pg_get_functiondef(p.oid) AS definition
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = %s AND p.proname LIKE 'safermap%%'
"""
# Triggers calling a function of the schema (user triggers and constraint triggers alike).
TRIGGERS = """
    SELECT c.relname || '.' || t.tgname AS name, pg_get_triggerdef(t.oid) AS definition
    FROM pg_trigger t
    JOIN pg_class c ON c.oid = t.tgrelid
    JOIN pg_proc p ON p.oid = t.tgfoid
    JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE NOT t.tgisinternal AND n.nspname = %s AND p.proname LIKE 'safermap%%'
"""


def _normal(definition: str) -> str:
    """A definition without the schema names that differ between the scratch copy and the real one."""
    return re.sub(rf"\b(?:{SCRATCH}|public)\.", "", definition)


def _read(conn: psycopg.Connection, query: str, schema: str) -> dict[str, str]:
    return {name: _normal(d) for name, d in conn.execute(query, (schema,)).fetchall()}


@pytest.fixture(scope="module")
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url) as c:
        c.execute("SET lock_timeout = '30s'")  # a leaked lock fails the run instead of hanging it
        c.commit()
        yield c


@pytest.fixture(scope="module")
def migrated(conn) -> tuple[dict[str, str], dict[str, str]]:
    """The functions and triggers the migrations left in public."""
    functions, triggers = _read(conn, FUNCTIONS, "public"), _read(conn, TRIGGERS, "public")
    conn.rollback()
    return functions, triggers


@pytest.fixture(scope="module")
def from_files(conn) -> dict[str, tuple[dict[str, str], dict[str, str]]]:
    """Each file's functions and triggers, as the file makes them in an empty schema."""
    made = {}
    for name in sql.ORDER:
        with conn.transaction(force_rollback=True):
            conn.execute(f"CREATE SCHEMA {SCRATCH}")
            conn.execute(f"SET LOCAL search_path = {SCRATCH}, public")
            conn.execute(sql.load(name))
            made[name] = (_read(conn, FUNCTIONS, SCRATCH), _read(conn, TRIGGERS, SCRATCH))
    conn.rollback()
    return made


def test_the_loader_knows_every_file_and_each_file_defines_something(from_files):
    assert sorted(sql.ORDER) == sql.files()
    assert all(functions for functions, _ in from_files.values())


def test_every_function_in_the_database_is_its_file(migrated, from_files):
    in_db, _ = migrated
    where: dict[str, list[str]] = defaultdict(list)
    for file, (functions, _) in from_files.items():
        for name in functions:
            where[name].append(file)
    assert {n: files for n, files in where.items() if len(files) > 1} == {}, "defined in two files"
    assert sorted(set(in_db) - set(where)) == [], "in the database but in no app/sql file"
    assert sorted(set(where) - set(in_db)) == [], "in a file but not made by the migrations"
    differ = {name: f"app/sql/{where[name][0]}.sql" for name in in_db
              if in_db[name] != from_files[where[name][0]][0][name]}
    assert differ == {}, "the database runs another definition than the file's"


def test_every_trigger_in_the_database_is_its_file(migrated, from_files):
    _, in_db = migrated
    where: dict[str, list[str]] = defaultdict(list)
    for file, (_, triggers) in from_files.items():
        for name in triggers:
            where[name].append(file)
    assert {n: files for n, files in where.items() if len(files) > 1} == {}
    assert sorted(set(in_db) ^ set(where)) == []
    differ = {name: where[name][0] for name in in_db if in_db[name] != from_files[where[name][0]][1][name]}
    assert differ == {}
    assert "camera.camera_coverage_sync" in in_db and "incident.incident_version_insert" in in_db


def test_applying_every_file_again_changes_nothing(conn, migrated):
    """The files are idempotent, and loading them is what the migrations did: the same definitions
    before and after (compared as md5 of each, in the database)."""
    digest = ("SELECT string_agg(name || ':' || md5(definition), ',' ORDER BY name) FROM ({}) AS d")
    with conn.transaction(force_rollback=True):
        before = conn.execute(digest.format(FUNCTIONS), ("public",)).fetchone()[0]
        triggers_before = conn.execute(digest.format(TRIGGERS), ("public",)).fetchone()[0]
        for _ in range(2):
            for name in sql.ORDER:
                conn.execute(sql.load(name))
        assert conn.execute(digest.format(FUNCTIONS), ("public",)).fetchone()[0] == before
        assert conn.execute(digest.format(TRIGGERS), ("public",)).fetchone()[0] == triggers_before
    conn.rollback()
    assert before.count("safermap_") == len(migrated[0])


def test_a_changed_file_is_caught(conn, migrated):
    """The comparison above can fail: a function whose body differs by one character differs."""
    in_db, _ = migrated
    text = sql.load("routing").replace("'trail')", "'trail', 'via_ferrata')")
    with conn.transaction(force_rollback=True):
        conn.execute(f"CREATE SCHEMA {SCRATCH}")
        conn.execute(f"SET LOCAL search_path = {SCRATCH}, public")
        conn.execute(text)
        changed = _read(conn, FUNCTIONS, SCRATCH)
    conn.rollback()
    assert changed["safermap_walkable(highway text)"] != in_db["safermap_walkable(highway text)"]
    assert changed["safermap_build_route_network(p_partnership integer)"] == \
        in_db["safermap_build_route_network(p_partnership integer)"]


def test_no_file_changed_since_the_newest_migration_that_loads_it():
    """A fresh database replays 0014 with today's files, so it cannot tell an edit that no migration
    loads; a database already migrated would never get it. Each loading migration records the
    digest of every file it loads (LOADS_SQL): the newest record of each file must be the file."""
    scripts = ScriptDirectory(str(ROOT / "migrations"))
    newest: dict[str, tuple[str, str]] = {}
    for script in scripts.walk_revisions():  # head first
        for name, recorded in getattr(script.module, "LOADS_SQL", {}).items():
            newest.setdefault(name, (script.revision, recorded))
    assert sorted(newest) == sorted(sql.ORDER), "a file that no migration loads"
    stale = {f"app/sql/{name}.sql": f"changed since migration {rev} loaded it: add a migration that loads it"
             for name, (rev, recorded) in newest.items() if recorded != sql.digest(name)}
    assert stale == {}


def test_the_sql_files_ship_with_the_package():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "*.sql" in pyproject["tool"]["setuptools"]["package-data"]["app.sql"]
