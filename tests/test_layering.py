"""The layers of the code stay apart: analysis, ingest and tile drawing know nothing of the HTTP
API (analysis and ingest raise domain errors, mapped to statuses in one table), every piece of MVT
SQL lives in app/tiles/, so there is one place to read how a tile is drawn, and test modules share
builders instead of importing each other. Checked on the source itself (imports parsed, not
grepped), so a new module is covered."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[1] / "app"


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


@pytest.mark.parametrize("package", ["analysis", "ingest", "tiles"])
def test_inner_layers_never_import_the_api(package):
    offenders = {str(p.relative_to(APP)): sorted(m for m in _imports(p) if m == "app.api" or m.startswith("app.api."))
                 for p in sorted((APP / package).rglob("*.py"))}
    assert {k: v for k, v in offenders.items() if v} == {}


@pytest.mark.parametrize("package", ["analysis", "ingest"])
def test_inner_layers_raise_domain_errors_not_http_ones(package):
    """They raise app.domain_errors; which status each gets is app/errors.py's one table."""
    offenders = {str(p.relative_to(APP)): sorted(m for m in _imports(p) if m == "app.errors" or m.startswith("app.errors."))
                 for p in sorted((APP / package).rglob("*.py"))}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_every_domain_error_has_a_status():
    from app import domain_errors
    from app.errors import STATUS_CODES
    kinds = {v for v in vars(domain_errors).values()
             if isinstance(v, type) and issubclass(v, domain_errors.DomainError)}
    assert kinds - set(STATUS_CODES) == set()


def test_mvt_sql_lives_only_in_app_tiles():
    outside = [str(p.relative_to(APP)) for p in APP.rglob("*.py")
               if "ST_AsMVT" in p.read_text() and (APP / "tiles") not in p.parents]
    assert outside == []
    assert any("ST_AsMVT" in p.read_text() for p in (APP / "tiles").rglob("*.py"))


TESTS = Path(__file__).resolve().parent
# Modules whose owners move them to tests/factories.py in parallel branches; they still import
# helpers from other test modules. This set only ever shrinks.


def _test_module_imports(path: Path) -> list[str]:
    """Test modules that `path` imports, absolute (tests.test_x) or relative (.test_x)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("tests.test_")]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module.startswith(("tests.test_", "test_")) or (node.level and module.startswith("test_")):
                found.append(module)
            elif module in ("tests", "") and (module or node.level):
                found += [a.name for a in node.names if a.name.startswith("test_")]
    return sorted(found)


def test_no_test_module_imports_another():
    """Shared builders live in tests/factories.py (and hand-made worlds in tests/scenes.py), so a test
    module can be read, run and changed on its own."""
    offenders = {p.name: _test_module_imports(p) for p in sorted(TESTS.rglob("*.py"))}
    offenders = {k: v for k, v in offenders.items() if v}
    assert offenders == {}
