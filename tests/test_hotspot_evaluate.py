"""Which hotspot method predicts best: hit rate, PAI and RRI on synthetic data with a known answer,
on arrays and end to end through `safermap hotspots evaluate` against real PostGIS."""
from __future__ import annotations

import asyncio
import json
from datetime import date

import numpy as np
import pytest

from app.analysis.hotspot_evaluate import evaluate_arrays, flag_and_measure, parse_area, resample
from app.analysis.kde import quartic_kde
from app.domain_errors import InvalidValue
from tests.factories import SIDE, X0, Y0, plant, police_partnership

FINE, FACTOR = 25.0, 4          # 100 m evaluation cells of 4 x 4 density cells
BANDWIDTH = 150.0
GRID = (30, 30)                 # 900 evaluation cells: 5% is 45 of them
BLOCK = (slice(10, 15), slice(12, 21))  # 5 x 9 = 45 evaluation cells: exactly 5% of the area


def scatter(rng, n_block: int, n_rest: int) -> np.ndarray:
    """Fine-grid counts: n_block incidents uniformly in BLOCK, n_rest uniformly elsewhere."""
    coarse_mask = np.zeros(GRID, dtype=bool)
    coarse_mask[BLOCK] = True
    fine_mask = np.kron(coarse_mask, np.ones((FACTOR, FACTOR), dtype=bool))
    counts = np.zeros(fine_mask.shape)
    for mask, n in ((fine_mask, n_block), (~fine_mask, n_rest)):
        cells = np.flatnonzero(mask)
        np.add.at(counts.ravel(), rng.choice(cells, n), 1)
    return counts


def coarse(fine: np.ndarray) -> np.ndarray:
    """Fine counts summed into the 100 m evaluation cells (both grids start at 0, 0)."""
    return resample(fine, 0.0, 0.0, FINE, 0.0, 0.0, FINE * FACTOR, GRID)


def results(train_fine, test_fine, area=0.05, methods=("kde", "grid", "gistar")):
    """Each method's result, the KDE computed on the fine grid as the map computes it."""
    kde = resample(quartic_kde(train_fine, FINE, BANDWIDTH), 0.0, 0.0, FINE, 0.0, 0.0, FINE * FACTOR, GRID)
    return {r.method: r for r in evaluate_arrays(coarse(train_fine), coarse(test_fine), kde, list(methods), area)}


def test_a_persistent_hotspot_scores_its_analytic_pai():
    """Half of all incidents, in training and test alike, fall in a block of 5% of the area: a
    method that flags exactly that block has hit rate 0.5 and PAI 0.5 / 0.05 = 10."""
    rng = np.random.default_rng(42)
    train, test = scatter(rng, 4500, 4500), scatter(rng, 1000, 1000)
    r = results(train, test)
    in_block = coarse(test)[BLOCK].sum() / test.sum()  # exactly 0.5 here
    assert r["grid"].cells == 45 and r["grid"].area_share == pytest.approx(0.05)
    assert r["grid"].hit_rate == pytest.approx(in_block) and r["grid"].pai == pytest.approx(10.0)
    assert r["grid"].rri == pytest.approx(1.0, abs=0.02)  # the block kept its share
    # Smoothing blurs the block's corners into their neighbours: close to, never above, the answer.
    for method in ("kde", "gistar"):
        assert 8.0 <= r[method].pai <= 10.0 + 1e-9, (method, r[method].pai)


def test_uniform_data_gives_a_pai_of_about_one():
    rng = np.random.default_rng(5)
    shape = (GRID[0] * FACTOR, GRID[1] * FACTOR)
    pais = {m: [] for m in ("kde", "grid", "gistar")}
    for _ in range(4):
        train = rng.poisson(6000 / (shape[0] * shape[1]), shape).astype(float)
        test = rng.poisson(3000 / (shape[0] * shape[1]), shape).astype(float)
        for m, r in results(train, test).items():
            pais[m].append(r.pai)
    for m, values in pais.items():
        assert 0.8 < np.mean(values) < 1.2, (m, values)


def test_a_fading_hotspot_has_a_recapture_rate_below_one():
    """Training: 60% in the block; test: 30%. RRI = (0.3 / 0.6) = 0.5 (Levine 2008)."""
    rng = np.random.default_rng(9)
    train, test = scatter(rng, 6000, 4000), scatter(rng, 900, 2100)
    grid = results(train, test, methods=["grid"])["grid"]
    assert grid.hit_rate == pytest.approx(0.3)
    # (test in the flagged cells / training in them) / (test total / training total)
    assert grid.rri == pytest.approx((900 / 6000) / (3000 / 10000))


def test_ties_at_the_cut_off_count_in_proportion():
    """With every cell scored alike, no method can do better than chance: hit rate = area share."""
    test = np.random.default_rng(1).poisson(3, (20, 20)).astype(float)
    r = flag_and_measure("grid", np.ones((20, 20)), np.ones((20, 20)), test, 0.05)
    assert r.cells == 20 and r.hit_rate == pytest.approx(0.05) and r.pai == pytest.approx(1.0)


def test_a_fine_density_is_summed_into_the_cell_holding_each_centre():
    fine = np.arange(1, 31, dtype=float).reshape(5, 6)  # 10 m cells
    out = resample(fine, 0.0, 0.0, 10.0, 0.0, 0.0, 20.0, (3, 3))
    expected = np.array([[fine[2 * r:2 * r + 2, 2 * c:2 * c + 2].sum() for c in range(3)] for r in range(3)])
    np.testing.assert_array_equal(out, expected)
    # Shifted 10 m west: the first column's centres fall outside the coarse grid and are dropped.
    shifted = resample(fine, -10.0, 0.0, 10.0, 0.0, 0.0, 20.0, (3, 3))
    assert shifted.sum() == fine[:, 1:].sum() and shifted[0, 0] == fine[0:2, 1:3].sum()


def test_area_is_a_share_of_the_study_area():
    assert parse_area("5%") == pytest.approx(0.05) and parse_area("0.1") == pytest.approx(0.1)
    for bad in ("0%", "100%", "-1", "five", "150%"):
        with pytest.raises(InvalidValue):
            parse_area(bad)


# -- end to end ------------------------------------------------------------------------------------

async def test_the_cli_prints_hit_rate_pai_and_rri_for_each_method(db, make_caller, database_url, monkeypatch):
    """Months January-June and a held-out July, each with a third of its incidents in one block of
    45 cells of 100 m in a 3 km square. Flagging the block's share of the study area, grid flags
    exactly the block, so its hit rate is the block's share of July's incidents and its PAI that
    over the area share."""
    from typer.testing import CliRunner

    from app.cli import app as cli
    from app.settings import get_settings

    where = await police_partnership(db, make_caller, slug="eval-csp")
    rng = np.random.default_rng(3)
    bx0, by0 = X0 + BLOCK[1].start * 100, Y0 + BLOCK[0].start * 100
    block_w, block_h = (BLOCK[1].stop - BLOCK[1].start) * 100, (BLOCK[0].stop - BLOCK[0].start) * 100
    planted = {}
    for month in range(1, 8):
        n_block, n_rest = 100, 200
        bx, by = rng.uniform(bx0 + 1, bx0 + block_w - 1, n_block), rng.uniform(by0 + 1, by0 + block_h - 1, n_block)
        rx, ry = rng.uniform(X0 + 1, X0 + SIDE - 1, 3 * n_rest), rng.uniform(Y0 + 1, Y0 + SIDE - 1, 3 * n_rest)
        outside = ~((rx >= bx0) & (rx < bx0 + block_w) & (ry >= by0) & (ry < by0 + block_h))
        rx, ry = rx[outside][:n_rest], ry[outside][:n_rest]
        await plant(db, *where.ids, np.r_[bx, rx], np.r_[by, ry], date(2024, month, 1))
        planted[month] = (n_block, n_block + len(rx))

    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()

    def run(*args: str):
        return CliRunner().invoke(cli, ["hotspots", "evaluate", "--partnership", "eval-csp", *args])
    try:
        table = await asyncio.to_thread(run, "--train", "2024-01:2024-06", "--test", "2024-07",
                                        "--method", "kde", "--method", "grid", "--method", "gistar",
                                        "--area", "5%", "--cell-m", "100")
        first = json.loads((await asyncio.to_thread(run, "--train", "2024-01:2024-06", "--test", "2024-07",
                                                    "--cell-m", "100", "--json")).output)
        # The study area is the grid over the incidents' extent (a little more than the 3 km square).
        block_share = 45 / first["cells"]
        as_json = await asyncio.to_thread(run, "--train", "2024-01:2024-06", "--test", "2024-07",
                                          "--area", repr(block_share), "--cell-m", "100", "--json")
        reversed_ = await asyncio.to_thread(run, "--train", "2024-07", "--test", "2024-01:2024-06")
        nobody = await asyncio.to_thread(run, "--train", "2023-01:2023-06", "--test", "2023-07")
    finally:
        get_settings.cache_clear()
    assert table.exit_code == 0, table.output
    for word in ("hit rate", "PAI", "RRI", "kde", "grid", "gistar", "best by PAI"):
        assert word in table.output

    body = json.loads(as_json.output)
    assert body["cells"] >= 900 and body["test"]["incidents"] == planted[7][1]
    assert body["train"]["incidents"] == sum(planted[m][1] for m in range(1, 7))
    by_method = {m["method"]: m for m in body["methods"]}
    n_block, total = planted[7]
    assert by_method["grid"]["cells"] == 45
    assert by_method["grid"]["hit_rate"] == pytest.approx(n_block / total)
    assert by_method["grid"]["pai"] == pytest.approx((n_block / total) / block_share)
    train_share = sum(planted[m][0] for m in range(1, 7)) / body["train"]["incidents"]
    assert by_method["grid"]["rri"] == pytest.approx((n_block / total) / train_share)
    for method in ("kde", "gistar"):
        assert by_method[method]["pai"] > 0.75 * by_method["grid"]["pai"]

    assert reversed_.exit_code == 2 and "after" in reversed_.output
    assert nobody.exit_code == 2 and "no mapped incidents" in nobody.output
