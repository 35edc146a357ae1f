"""The current definition of every SQL function and trigger, one `.sql` file per topic.

The migrations under `migrations/versions/` replay history, so each keeps the frozen text it ran with;
what a function does NOW is in these files, and the database runs exactly them
(`tests/test_sql_definitions.py` compares every `safermap_*` function and its triggers in a migrated
database with the files).

Every file is idempotent: `CREATE OR REPLACE FUNCTION`, and triggers as `DROP TRIGGER IF EXISTS` +
`CREATE TRIGGER`. The rule for a change:

    change a function or trigger  =  edit its .sql file  +  add a migration that loads the file:

        LOADS_SQL = {"coverage": "<digest>"}     # python -c "from app import sql; print(sql.digests())"

        def upgrade() -> None:
            sql.apply(op.get_bind(), *LOADS_SQL)

A migration records the digest of each file it was written against; the test fails when a file no
longer matches the newest migration that loads it (an edit no migration brings to existing databases).
A new function goes in the file of its topic (or a new file, added to ORDER) the same way.

A migration runs a file as it is when the migration runs, not as it was when the migration was
written: a fresh database replays every migration with today's files. When a file comes to need a
table or column that an older loading migration does not have yet, paste the file's former text into
that older migration (a frozen copy), as the migrations before 0014 keep theirs.
"""
from __future__ import annotations

import hashlib
from importlib import resources

from sqlalchemy.engine import Connection

# The order in which the files may be loaded: a SQL-language function's body is checked when it is
# created, so a file comes after the files whose functions its SQL functions call.
ORDER = (
    "versions",              # data versions: the counter behind tile ETags and caches
    "audit",                 # the audit trail is append-only
    "datasets",              # deleting a data set deletes its incidents
    "sharing",               # who sees which incidents at which level
    "anonymous_locations",   # the anonymous point given out below 'exact'
    "routing",               # the walkable street network
    "coverage",              # a camera's plain coverage: defaults, range, wedge, bands
    "camera_status",         # a camera's status history
    "camera_revision",       # every version of a camera: merges, and deleted cameras known as such
    "coverage_union",        # the union of coverage per grid cell, and incidents outside it
    "route_safety",          # safety attributes of the walkable network, published routes
    "incident_partitions",   # an import swaps in a whole data set-month (partitions of incident)
    "notify",                # LISTEN/NOTIFY for each process's live memory of callers and versions
    "incident_cells",        # the per-data-version aggregate low-zoom incident tiles count from
)


def files() -> list[str]:
    """Every .sql file of the folder, by name without the suffix."""
    return sorted(p.name.removesuffix(".sql") for p in resources.files(__name__).iterdir()
                  if p.name.endswith(".sql"))


def load(name: str) -> str:
    """The text of `name`.sql."""
    if name not in ORDER:
        raise ValueError(f"no SQL file '{name}' in app/sql (known: {', '.join(ORDER)})")
    return resources.files(__name__).joinpath(f"{name}.sql").read_text(encoding="utf-8")


def apply(connection: Connection, *names: str) -> None:
    """Run the named files (all of them, in ORDER, when none is named) on `connection` (a
    migration's op.get_bind()), in its transaction. Sent to the driver as they are, with no parameters, so neither SQLAlchemy nor the
    driver reads `:name` or `%` in them as placeholders (format('%I', ...), RAISE '... %')."""
    for name in names or ORDER:
        connection.exec_driver_sql(load(name), execution_options={"no_parameters": True})


def digest(name: str) -> str:
    """A short digest of `name`.sql, recorded by the migration that loads it (LOADS_SQL)."""
    return hashlib.sha256(load(name).encode()).hexdigest()[:16]


def digests(*names: str) -> dict[str, str]:
    """Each named file's digest (every file's, in ORDER, when none is named): a new LOADS_SQL."""
    return {name: digest(name) for name in names or ORDER}
