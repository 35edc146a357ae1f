"""Real desktop-GIS clients against the running app: GDAL's OAPIF driver (ogrinfo, ogr2ogr), OWSLib's
OGC API Features client, and, where Debian's python3-qgis is installed, QGIS's own OAPIF provider.
Each lists the collections, reads more than one page of incidents completely, and reads EPSG:27700."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests import factories

BNG = "http://www.opengis.net/def/crs/EPSG/0/27700"
N = 57  # more than 2 pages of 20, and not a multiple of the page size


async def _scene(db, make_caller):
    caller = await make_caller("ogc-clients", "admin")
    ds = await factories.dataset(db, caller.partnership_id, "police-crime", "exact", name="Police crime")
    pts = factories.scattered(N, seed=3)
    ids = await factories.incidents(db, caller.partnership_id, ds,
                                    [(x, y, ["Burglary", "Drugs", "Robbery"][i % 3], "2024-0" + str(1 + i % 3))
                                     for i, (x, y) in enumerate(pts)])
    await factories.camera(db, caller.partnership_id, "CAM-1")
    await db.commit()
    return caller, ds, ids


def _gdal_env(caller) -> dict[str, str]:
    return {**os.environ, "GDAL_HTTP_HEADERS": f"Authorization: Bearer {caller.token}",
            "GDAL_HTTP_UNSAFESSL": "NO", "CPL_DEBUG": "OFF", "GDAL_HTTP_TIMEOUT": "30"}


needs_gdal = pytest.mark.skipif(shutil.which("ogr2ogr") is None,
                                reason="GDAL's ogrinfo/ogr2ogr are missing (Debian gdal-bin: make system-deps)")


@needs_gdal
async def test_gdal_lists_reads_every_page_and_reads_27700(live_server, db, make_caller, tmp_path: Path):
    caller, ds, ids = await _scene(db, make_caller)
    env = _gdal_env(caller)
    listing = subprocess.run(["ogrinfo", "-ro", "-q", f"OAPIF:{live_server}/ogc"], env=env, capture_output=True,
                             text=True, timeout=120)
    assert listing.returncode == 0, listing.stderr
    for name in ("incidents", "cameras", "coverage", "streets", "buildings", "gaps", "safe_routes", f"dataset-{ds}"):
        assert f": {name} " in listing.stdout or f": {name}\n" in listing.stdout, listing.stdout

    # Every incident, 20 a page: three pages followed by their next links, none skipped or repeated.
    out = tmp_path / "incidents.geojson"
    copy = subprocess.run(["ogr2ogr", "-f", "GeoJSON", str(out), f"OAPIF:{live_server}/ogc", "incidents",
                           "-oo", "PAGE_SIZE=20", "-preserve_fid"], env=env, capture_output=True, text=True, timeout=120)
    assert copy.returncode == 0, copy.stderr
    got = json.loads(out.read_text())["features"]
    assert sorted(f["id"] for f in got) == ids

    # EPSG:27700: the items in British National Grid metres, read by GDAL's GeoJSON reader.
    info = subprocess.run(["ogrinfo", "-ro", "-al", "-so",
                           f"{live_server}/ogc/collections/incidents/items?crs={BNG}&limit=100"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert info.returncode == 0, info.stderr
    assert "British_National_Grid" in info.stdout or "British National Grid" in info.stdout, info.stdout
    assert f"Feature Count: {N}" in info.stdout
    extent = next(line for line in info.stdout.splitlines() if line.startswith("Extent:"))
    assert "(37" in extent or "(38" in extent, extent  # eastings about 380,000 m in Manchester


async def test_owslib_lists_pages_and_reads_27700(live_server, db, make_caller):
    from owslib.ogcapi.features import Features
    caller, ds, ids = await _scene(db, make_caller)
    api = Features(f"{live_server}/ogc", headers={"Authorization": f"Bearer {caller.token}"}, timeout=60)
    names = {c["id"] for c in api.collections()["collections"]}
    assert {"incidents", "cameras", f"dataset-{ds}"} <= names
    assert api.collection_queryables("incidents")["properties"]["category"]["type"] == "string"
    # OWSLib takes one page per call: follow the next links' cursors as a client must.
    seen: list[int] = []
    kwargs: dict = {"limit": 20}
    pages = 0
    while True:
        page = api.collection_items("incidents", **kwargs)
        pages += 1
        seen += [f["id"] for f in page["features"]]
        nxt = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
        if nxt is None:
            break
        from urllib.parse import parse_qs, urlsplit
        kwargs = {"limit": 20, "cursor": parse_qs(urlsplit(nxt).query)["cursor"][0]}
    assert pages == 3 and seen == ids
    bng = api.collection_items("incidents", crs=BNG, limit=5)
    e, n = bng["features"][0]["geometry"]["coordinates"]
    assert 370_000 < e < 390_000 and 390_000 < n < 405_000
    drugs = api.collection_items("incidents", filter="category = 'Drugs' AND month >= '2024-02'", limit=100)
    assert drugs["numberMatched"] == len([i for i in range(N) if i % 3 == 1 and 1 + i % 3 >= 2])


QGIS_SCRIPT = textwrap.dedent("""
    import json, sys
    from qgis.core import QgsApplication, QgsNetworkAccessManager, QgsVectorLayer
    QgsApplication.setPrefixPath("/usr", True)
    app = QgsApplication([], False)
    app.initQgis()
    base, token = sys.argv[1], sys.argv[2]

    # QGIS 3.22 has no header auth method yet (its auth manager's "API header" came later): every
    # request QGIS makes gets the bearer header the way that method sends it.
    def bearer(request):
        request.setRawHeader(b"Authorization", ("Bearer " + token).encode())
    QgsNetworkAccessManager.setRequestPreprocessor(bearer)

    from qgis.core import Qgis
    out = {"version": Qgis.QGIS_VERSION_INT}
    for name, extra in (("incidents", ""), ("bng", " srsname='EPSG:27700'")):
        uri = f"url='{base}/ogc' typename='incidents' pageSize='20'" + extra
        layer = QgsVectorLayer(uri, name, "OAPIF")
        if not layer.isValid():
            out[name] = {"valid": False}
            continue
        feats = list(layer.getFeatures())
        out[name] = {"valid": True, "count": layer.featureCount(), "read": len(feats),
                     "ids": sorted(f.id() for f in feats), "crs": layer.crs().authid(),
                     "x": feats[0].geometry().asPoint().x() if feats else None}
    print(json.dumps(out), flush=True)
    import os
    os._exit(0)  # QGIS 3.22 may crash in its own teardown (exitQgis) after everything was read
""")


async def test_qgis_loads_the_incidents_layer(live_server, db, make_caller, tmp_path: Path):
    python = "/usr/bin/python3"
    probe = subprocess.run([python, "-c", "import qgis.core"], capture_output=True, text=True) \
        if Path(python).exists() else None
    if probe is None or probe.returncode != 0:
        pytest.skip("Debian's python3-qgis is not installed (make system-deps installs it); "
                    "QGIS's OAPIF provider cannot be tried here")
    caller, _, ids = await _scene(db, make_caller)
    script = tmp_path / "qgis_oapif.py"
    script.write_text(QGIS_SCRIPT)
    # Debian's python, not the venv's: none of the venv's variables.
    env = {"PATH": "/usr/bin:/bin", "QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": str(tmp_path),
           "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    run = subprocess.run([python, str(script), live_server, caller.token], env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    # Three pages of 20 followed to the end: the layer's feature count and the features read agree.
    assert result["incidents"]["valid"], result
    assert result["incidents"]["count"] == N and result["incidents"]["read"] == N, result
    assert result["bng"]["read"] == N, result
    if result["version"] >= 32800:  # QGIS asks for the layer's CRS (Part 2) from 3.28 on
        assert result["bng"]["crs"] == "EPSG:27700" and 370_000 < result["bng"]["x"] < 390_000, result
