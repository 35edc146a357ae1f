"""app/models.py describes the migrated schema exactly (migrations/env.py gives Alembic the same
metadata and filters, so `alembic revision --autogenerate` at head writes an empty migration).

Two views of "exactly": Alembic's compare_metadata (tables, columns, types, nullability, server
defaults, foreign keys with ON DELETE, unique constraints, indexes), and, for what Alembic does not
compare (CHECK constraints, partial and INCLUDE indexes), PostgreSQL's own description of the
migrated tables against the same tables built from the models in a scratch schema that is rolled
back. The last tests make sure each check can fail.
"""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import CheckConstraint, Connection, MetaData, Sequence, create_engine, text

from app.models import COMPARE_OPTIONS, PARTITION_PREFIXES, Base, data_version_seq
from app.settings import to_sync_url

SCRATCH = "safermap_model_check"

# Each table's columns, constraints and indexes as PostgreSQL prints them (triggers, views and
# functions are not in the models). Read with search_path set to the schema alone (plus public for
# PostGIS), so that names print unqualified in both.
CATALOG = text(r"""
    SELECT 'column' AS kind, c.relname AS tbl, a.attname AS name,
           format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
           || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '') AS def
    FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE n.nspname = :schema AND c.relname = ANY(:tables) AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT 'constraint', c.relname, k.conname, pg_get_constraintdef(k.oid)
    FROM pg_constraint k
    JOIN pg_class c ON c.oid = k.conrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = :schema AND c.relname = ANY(:tables) AND k.contype IN ('p', 'u', 'f', 'c', 'x')
    UNION ALL
    SELECT 'index', c.relname, i.relname, regexp_replace(pg_get_indexdef(i.oid), ' ON (ONLY )?[a-z_]+\.', ' ON \1')
    FROM pg_index x
    JOIN pg_class i ON i.oid = x.indexrelid
    JOIN pg_class c ON c.oid = x.indrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = :schema AND c.relname = ANY(:tables)
    UNION ALL
    SELECT 'sequence', '', s.relname, ''
    FROM pg_class s JOIN pg_namespace n ON n.oid = s.relnamespace
    WHERE n.nspname = :schema AND s.relkind = 'S'
""")


@pytest.fixture(scope="module")
def conn(database_url: str) -> Iterator[Connection]:
    engine = create_engine(to_sync_url(database_url))
    with engine.connect() as connection:
        yield connection
    engine.dispose()


def alembic_diff(conn: Connection, metadata: MetaData) -> list:
    with conn.begin():
        return compare_metadata(MigrationContext.configure(conn, opts=COMPARE_OPTIONS), metadata)


def catalog(conn: Connection, schema: str, tables: list[str]) -> set[tuple[str, str, str, str]]:
    conn.execute(text(f"SET LOCAL search_path = {schema}, public"))
    return {tuple(r) for r in conn.execute(CATALOG, {"schema": schema, "tables": tables})}


def catalog_diff(conn: Connection, metadata: MetaData) -> tuple[set, set]:
    """(only in the migrated schema, only in the models), each as (kind, table, name, definition)."""
    tables = sorted(metadata.tables)
    with conn.begin() as tx:
        migrated = catalog(conn, "public", tables)
        conn.execute(text(f"CREATE SCHEMA {SCRATCH}"))
        conn.execute(text(f"SET LOCAL search_path = {SCRATCH}, public"))
        metadata.create_all(conn, checkfirst=False)  # the migrated tables are visible too
        modelled = catalog(conn, SCRATCH, tables)
        tx.rollback()
    return migrated - modelled, modelled - migrated


def copy_of_models() -> MetaData:
    metadata = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        table.to_metadata(metadata)
    Sequence(data_version_seq.name, metadata=metadata)  # (to_metadata copies tables only)
    return metadata


def test_alembic_finds_no_difference(conn):
    assert alembic_diff(conn, Base.metadata) == []


def test_postgresql_describes_models_and_migrations_alike(conn):
    only_migrated, only_modelled = catalog_diff(conn, Base.metadata)
    assert (sorted(only_migrated), sorted(only_modelled)) == ([], [])


def test_every_migrated_table_is_modelled(conn):
    with conn.begin():
        tables = set(conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'")).scalars())
    skipped = {t for t in tables if not COMPARE_OPTIONS["include_name"](t, "table", {"schema_name": None})}
    partitions = {t for t in skipped if t.startswith(PARTITION_PREFIXES)}
    assert "incident_p_default" in partitions
    assert skipped - partitions == {"spatial_ref_sys"}, "only extension tables and partitions may be left out"
    assert tables - skipped == set(Base.metadata.tables)


def test_a_missing_column_is_a_difference(conn):
    metadata = copy_of_models()
    camera = metadata.tables["camera"]
    camera._columns.remove(camera.c.notes)  # (a private mutation, on this copy only)
    diff = alembic_diff(conn, metadata)
    assert [d[0] for d in diff] == ["remove_column"] and diff[0][3].name == "notes"


def test_a_changed_check_constraint_is_a_difference(conn):
    metadata = copy_of_models()
    camera = metadata.tables["camera"]
    bearing = next(c for c in camera.constraints if c.name == "camera_bearing_check")
    camera.constraints.remove(bearing)
    camera.append_constraint(CheckConstraint("bearing >= 0 AND bearing <= 360", name="bearing"))
    assert alembic_diff(conn, metadata) == [], "Alembic does not compare CHECK constraints..."
    only_migrated, only_modelled = catalog_diff(conn, metadata)
    assert [r[2] for r in only_migrated] == [r[2] for r in only_modelled] == ["camera_bearing_check"]  # ...we do
