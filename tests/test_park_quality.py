"""TDS through the park (issue 14, part 3): a two-enterprise park against a hand calculation, the what-ifs
a process engineer would try (RO recovery down, plant out with the city's offer up), the example park's
report with its GB/T 19923 checks, `park whatif` and `render`, and one clear error per bad input.

Every expected number below is worked out by hand from the park's figures (the arithmetic is written out,
with its value in the comment); none is computed by the code under test.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from numpy.testing import assert_allclose

from parktwin.twin import balance as bal
from parktwin.twin.park import NETWORKS, ParkError, load_park
from parktwin.twin.park_quality import compare_quality, park_quality
from parktwin.twin.whatif import CityReclaimedOffer, PlantOutage, PlantRecovery, apply

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
NET1 = SHARED / "networks" / "epanet-tests" / "network_one" / "NET1.inp"
EXAMPLE = REPO / "twin" / "example_park"
needs_net1 = pytest.mark.skipif(not NET1.exists(), reason=f"NET1.inp not found under {SHARED}")

# Two enterprises on NET1 copies. Enterprise `towers`: 800 m³/d, of which 700 reclaimable (cooling make-up
# 600, washing 100); `laundry`: 700 m³/d, of which 300 reclaimable (washing). Salty wastewater (1600 mg/L),
# soft fresh water (250 mg/L), a saline city reclaimed water (1200 mg/L, no desalination).
TWO = """
[park]
name = "Two-enterprise TDS park"

[enterprises.towers]
sector = "crude_steel"
product = "steel (t)"
annual_output = 1e5
value_added_10k_yuan = 1e4
consumption_fraction = 0.5
discharge_fraction = 0.5
shift_hours = 24
[enterprises.towers.needs_m3d]
process = 100
cooling_makeup = 600
washing = 100
[enterprises.towers.junctions]
supply = "10"
reclaimed = "11"
discharge = "12"

[enterprises.laundry]
sector = "beer"
product = "beer (kL)"
annual_output = 1e5
value_added_10k_yuan = 1e4
consumption_fraction = 0.2
discharge_fraction = 0.8
shift_hours = 24
[enterprises.laundry.needs_m3d]
process = 300
boiler = 100
washing = 300
[enterprises.laundry.junctions]
supply = "21"
reclaimed = "22"
discharge = "23"

[plants.wastewater]
capacity_m3d = 2000

[plants.reclaimed]
capacity_m3d = 800
[[plants.reclaimed.units]]
name = "UF"
recovery_fraction = 0.9
[[plants.reclaimed.units]]
name = "RO"
recovery_fraction = 0.75
salt_rejection_fraction = 0.97

[quality]
city_fresh_tds_mg_l = 250
city_reclaimed_tds_mg_l = 1200
wastewater_tds_mg_l = 1600

[city]
fresh_head_m = 45.0
fresh_capacity_m3d = 10000
reclaimed_offer_m3d = 100
wastewater_capacity_m3d = 5000
reclaimed_to_city_m3d = 40

[targets]
reuse_rate_fraction = 0.5
substitution_rate_fraction = 0.2
"""


def _folder(tmp_path, toml: str = TWO) -> Path:
    folder = tmp_path / "park"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "park.toml").write_text(toml)
    for net in NETWORKS:
        shutil.copyfile(NET1, folder / f"{net}.inp")
    return folder


@pytest.fixture
def two(tmp_path):
    return load_park(_folder(tmp_path))


def _quality(park):
    return park_quality(park, bal.allocate(park))


# ---- The base case by hand --------------------------------------------------------------------------------
# Wastewater: towers 0.5 x 800 = 400, laundry 0.8 x 700 = 560 -> 960 m³/d at 1600 mg/L, all treated.
# Plant: feed = min(800 capacity, 960) = 800; recovery 0.9 x 0.75 = 0.675 -> product 540 m³/d:
#   40 to the city, 500 to the park; the city's offer adds 100 -> 600 of 1000 reclaimable: share 0.6.
#   Brine = 800 - 540 = 260 m³/d.
# UF (no rejection): 720 m³/d at 1600 mg/L, 80 m³/d reject at 1600 mg/L.
# RO, r = 0.75, R = 0.97: permeate/feed = (1 - 0.25^0.03) / 0.75; 0.25^0.03 = 2^-0.06 = 0.959264
#   -> 0.040736 / 0.75 = 0.0543147 -> permeate 1600 x 0.0543147 = 86.90 mg/L.
#   concentrate/feed = 0.25^-0.97 = 2^1.94 = 3.83706 -> 6139.3 mg/L.
C_P = 1600 * (1 - 2 ** -0.06) / 0.75                     # 86.90 mg/L
C_RO_REJECT = 1600 * 2 ** 1.94                            # 6139.3 mg/L
# Brine by the plant's salt balance: (800 x 1600 - 540 x 86.90) / 260 = (1 280 000 - 46 928) / 260
BRINE = (800 * 1600 - 540 * C_P) / 260                   # 4742.6 mg/L
# Reclaimed network: (500 x 86.90 + 100 x 1200) / 600 = (43 452 + 120 000) / 600
C_REC = (500 * C_P + 100 * 1200) / 600                   # 272.42 mg/L
# A reclaimable grade: 60 % reclaimed, 40 % fresh: 0.6 x 272.42 + 0.4 x 250 = 163.45 + 100
C_GRADE = 0.6 * C_REC + 0.4 * 250                         # 263.45 mg/L
# towers: 420 m³/d reclaimed (0.6 x 700), 380 fresh: (380 x 250 + 420 x 272.42) / 800 = 209 417 / 800
C_TOWERS = (380 * 250 + 420 * C_REC) / 800                # 261.77 mg/L
# laundry: 180 reclaimed (0.6 x 300), 520 fresh: (520 x 250 + 180 x 272.42) / 700 = 179 036 / 700
C_LAUNDRY = (520 * 250 + 180 * C_REC) / 700               # 255.77 mg/L
# To the city: 160 m³/d of effluent (960 - 800) at 1600 and the brine: (256 000 + 1 233 072) / 420
C_CITY = (160 * 1600 + 260 * BRINE) / 420                 # 3545.4 mg/L


@needs_net1
def test_two_enterprise_park_by_hand(two):
    q = _quality(two)
    # The worked numbers themselves, so that a slip in the arithmetic above shows here.
    assert_allclose([C_P, C_RO_REJECT, BRINE, C_REC, C_GRADE, C_TOWERS, C_LAUNDRY, C_CITY],
                    [86.90, 6139.3, 4742.6, 272.42, 263.45, 261.77, 255.77, 3545.4], atol=0.05)
    uf, ro = q.units
    assert_allclose([uf.feed_m3d, uf.product_m3d, uf.reject_m3d, uf.product_tds_mg_l, uf.reject_tds_mg_l],
                    [800, 720, 80, 1600, 1600], rtol=1e-12)
    assert_allclose([ro.feed_m3d, ro.product_m3d, ro.reject_m3d], [720, 540, 180], rtol=1e-12)
    assert_allclose([ro.product_tds_mg_l, ro.reject_tds_mg_l], [C_P, C_RO_REJECT], rtol=1e-9)
    assert_allclose([q.plant_product_tds_mg_l, q.brine_m3d, q.brine_tds_mg_l], [C_P, 260, BRINE], rtol=1e-9)
    # The brine is every unit's reject: 80 x 1600 + 180 x 6139.3 = 1 233 072 g/d over 260 m³/d.
    assert_allclose((80 * 1600 + 180 * C_RO_REJECT) / 260, BRINE, rtol=1e-9)
    assert_allclose(q.reclaimed_network_tds_mg_l, C_REC, rtol=1e-9)
    towers, laundry = q.enterprise("towers"), q.enterprise("laundry")
    assert_allclose([towers.tds_mg_l, laundry.tds_mg_l], [C_TOWERS, C_LAUNDRY], rtol=1e-9)
    assert_allclose([towers.reclaimed_share, laundry.reclaimed_share], [420 / 800, 180 / 700], rtol=1e-12)
    grades = {g.grade: g for g in towers.grades}
    assert set(grades) == {"process", "cooling_makeup", "washing"}
    assert_allclose([grades["cooling_makeup"].tds_mg_l, grades["washing"].tds_mg_l, grades["process"].tds_mg_l],
                    [C_GRADE, C_GRADE, 250], rtol=1e-9)
    assert_allclose([grades["cooling_makeup"].reclaimed_share, grades["process"].reclaimed_share], [0.6, 0.0])
    assert {g.grade: g.passes for g in laundry.grades} == {"process": True, "boiler": True, "washing": True}
    assert towers.passes and laundry.passes and q.failures() == []
    assert_allclose([q.discharge_to_city_m3d, q.discharge_to_city_tds_mg_l], [420, C_CITY], rtol=1e-9)
    assert_allclose(q.salt_to_city_kg_d, (160 * 1600 + 260 * BRINE) / 1000, rtol=1e-9)   # 1489.1 kg/d


@needs_net1
def test_lower_ro_recovery_moves_quality_the_way_an_engineer_expects(two):
    """RO recovery 0.75 -> 0.60 at a feed-limited plant: the feed side concentrates less, so the permeate
    is a little cleaner and the brine weaker and larger; there is less permeate, so the city's offer (all
    used already) cannot fill in and fresh water makes up: the reclaimed share falls and, with the cleanest
    water now scarcer, the delivered TDS rises."""
    base = _quality(two)
    low = _quality(apply(two, [PlantRecovery("RO", 0.6)]))
    # By hand: recovery 0.9 x 0.6 = 0.54, product 800 x 0.54 = 432: 40 to the city, 392 to the park, 100 from
    # the city -> 492 of 1000: share 0.492. Brine 800 - 432 = 368 m³/d.
    # Permeate: 0.4^0.03 = exp(0.03 x ln 0.4) = 0.972885 -> 0.027115 / 0.6 = 0.045192 -> 72.31 mg/L.
    c_p = 1600 * (1 - 0.4 ** 0.03) / 0.6                 # 72.31 mg/L (was 86.90)
    brine = (800 * 1600 - 432 * c_p) / 368               # (1 280 000 - 31 237) / 368 = 3393.4 mg/L (was 4742.6)
    c_rec = (392 * c_p + 100 * 1200) / 492               # (28 345 + 120 000) / 492 = 301.51 mg/L (was 272.42)
    c_grade = 0.492 * c_rec + 0.508 * 250                # 148.34 + 127.00 = 275.34 mg/L (was 263.45)
    towers_rec = 0.492 * 700                             # 344.4 m³/d reclaimed of 800
    c_towers = ((800 - towers_rec) * 250 + towers_rec * c_rec) / 800   # 272.17 mg/L (was 261.77)
    assert_allclose([c_p, brine, c_rec, c_grade, c_towers], [72.31, 3393.4, 301.51, 275.34, 272.17], atol=0.05)
    assert_allclose([low.plant_product_tds_mg_l, low.brine_tds_mg_l, low.brine_m3d, low.reclaimed_network_tds_mg_l],
                    [c_p, brine, 368, c_rec], rtol=1e-9)
    towers = low.enterprise("towers")
    assert_allclose([towers.tds_mg_l, towers.reclaimed_share], [c_towers, towers_rec / 800], rtol=1e-9)
    assert_allclose({g.grade: g.tds_mg_l for g in towers.grades}["cooling_makeup"], c_grade, rtol=1e-9)
    # The directions, as the comparison a report shows them.
    d = compare_quality(base, low)
    assert d["plant_product_tds"]["change"] < 0 and d["plant_product"]["change"] < 0
    assert d["brine_tds"]["change"] < 0 and d["brine"]["change"] > 0
    for name in ("towers", "laundry"):
        assert d[f"reclaimed_share[{name}]"]["change"] < 0
        assert d[f"delivered_tds[{name}]"]["change"] > 0
    assert d["delivered_tds[towers.cooling_makeup]"]["unit"] == "mg/L"


@needs_net1
def test_plant_out_with_a_saline_city_offer_fails_gbt19923(two):
    """The park plant out and the city's offer raised to the whole reclaimable need: every reclaimable grade
    gets the city's 1200 mg/L, above the 1000 mg/L of GB/T 19923 for cooling make-up and washing."""
    q = _quality(apply(two, [PlantOutage("reclaimed"), CityReclaimedOffer(1000)]))
    assert q.plant_feed_m3d == 0 and q.plant_product_tds_mg_l is None and q.brine_tds_mg_l is None
    assert_allclose(q.reclaimed_network_tds_mg_l, 1200)
    # towers: 100 fresh at 250 and 700 city water at 1200: (25 000 + 840 000) / 800 = 1081.25 mg/L
    assert_allclose(q.enterprise("towers").tds_mg_l, (100 * 250 + 700 * 1200) / 800, rtol=1e-12)
    assert sorted((f["enterprise"], f["grade"]) for f in q.failures()) == [
        ("laundry", "washing"), ("towers", "cooling_makeup"), ("towers", "washing")]
    assert q.enterprise("towers").passes is False
    assert {g.grade: g.passes for g in q.enterprise("laundry").grades}["process"] is True


@needs_net1
def test_run_park_carries_quality_into_balance_report_and_whatif(two, tmp_path):
    from parktwin.twin.coupled import run_park, write_outputs
    from parktwin.twin.report import write_report
    base = run_park(two, duration_s=0)
    low = run_park(apply(two, [PlantRecovery("RO", 0.6)]), duration_s=0)
    # NET1's snapshot leaks nothing from the sewer, so the run's allocation is the books' own.
    assert_allclose(base.quality.enterprise("towers").tds_mg_l, C_TOWERS, rtol=1e-9)
    _, bal_path = write_outputs(base, tmp_path / "out")
    saved = json.loads(bal_path.read_text())["quality"]
    assert saved["unit"] == "mg/L" and saved["standard"].startswith("GB/T 19923")
    assert_allclose(saved["enterprises"]["laundry"]["tds_mg_l"], C_LAUNDRY, rtol=1e-9)
    assert saved["enterprises"]["towers"]["grades"]["cooling_makeup"]["limit_mg_l"] == 1000
    text = write_report(tmp_path / "report.md", base, whatifs=[("RO recovery 0.6", low, "")]).read_text()
    assert "## Water quality: total dissolved solids" in text
    assert "| towers | 800 | 52.5 % | **262** | 60.0 % | 263 pass | 263 pass | - | 250 pass | pass |" in text
    assert "| towers: delivered TDS (mg/L) | 262 | 272 | +10.4 |" in text


def test_example_park_report_has_tds_and_gbt19923_for_every_enterprise(tmp_path):
    from parktwin.twin.coupled import run_park
    from parktwin.twin.report import write_report
    park = load_park(EXAMPLE)
    result = run_park(park, duration_s=0)
    text = write_report(tmp_path / "report.md", result).read_text()
    section = text[text.index("## Water quality"):]
    assert "GB/T 19923-2005" in section and "reclaimed share of intake" in section
    for e in park.enterprises:
        row = next(line for line in section.splitlines() if line.startswith(f"| {e.name} |"))
        assert row.endswith("| pass |"), row
        eq = result.quality.enterprise(e.name)
        assert 0 < eq.reclaimed_share < 1 and eq.tds_mg_l is not None
    # The example's RO permeate is the cleanest water of the park and its brine the saltiest.
    q = result.quality
    assert q.plant_product_tds_mg_l < q.sources.city_fresh_tds_mg_l < q.sources.wastewater_tds_mg_l < q.brine_tds_mg_l


def test_park_whatif_cli_writes_quality_comparison(tmp_path):
    ops = tmp_path / "ops.json"
    ops.write_text(json.dumps([{"op": "plant_recovery", "unit": "RO", "recovery_fraction": 0.6}]))
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "parktwin.api.cli", "park", "whatif", str(EXAMPLE), "--ops",
                           str(ops), "--out", str(out), "--snapshot"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    quality = json.loads((out / "comparison.json").read_text())["quality"]
    assert quality["plant_product_tds"]["change"] < 0 and quality["brine_tds"]["change"] < 0
    # The example's city offer fills what the plant no longer makes, with saltier water.
    assert quality["reclaimed_network_tds"]["change"] > 0
    assert "plant_product_tds" in done.stdout


def test_render_tds_needs_a_quality_table():
    from types import SimpleNamespace

    from parktwin.viz.park_scene import delivered_tds_mg_l
    park = load_park(EXAMPLE)
    with pytest.raises(ValueError, match=r"no \[quality\] table"):
        delivered_tds_mg_l(park, SimpleNamespace(quality=None))


def test_render_tds_of_the_example_park(tmp_path):
    from parktwin.viz.probe import offscreen_problem
    problem = offscreen_problem()
    if problem:
        pytest.skip(problem)
    done = subprocess.run([sys.executable, "-m", "parktwin.api.cli", "render", str(EXAMPLE), "--quantity", "tds",
                           "--out", str(tmp_path / "tds.png")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "tds.png").stat().st_size > 10_000


@needs_net1
@pytest.mark.parametrize("old, new, message", [
    ("city_fresh_tds_mg_l = 250", "city_fresh_tds_mg_l = -5",
     "park.toml: quality.city_fresh_tds_mg_l: must be >= 0, got -5"),
    ("salt_rejection_fraction = 0.97", "salt_rejection_fraction = 1.0",
     "park.toml: plants.reclaimed.units[1].salt_rejection_fraction: must be in [0, 1), got 1"),
    ("salt_rejection_fraction = 0.97", "salt_rejection_fraction = -0.1",
     "park.toml: plants.reclaimed.units[1].salt_rejection_fraction: must be in [0, 1), got -0.1"),
    ("wastewater_tds_mg_l = 1600\n", "",
     "park.toml: quality.wastewater_tds_mg_l: required key is missing"),
    ("wastewater_tds_mg_l = 1600", "wastewater_tds_mg_l = 1600\nbrine_tds = 3",
     "park.toml: quality.brine_tds: unknown key"),
])
def test_bad_quality_inputs_are_one_clear_error(tmp_path, old, new, message):
    assert old in TWO
    with pytest.raises(ParkError) as info:
        load_park(_folder(tmp_path, TWO.replace(old, new)))
    assert str(info.value).startswith(message)


@needs_net1
def test_a_park_without_quality_has_none(tmp_path):
    start, end = TWO.index("[quality]"), TWO.index("[city]")
    park = load_park(_folder(tmp_path, TWO[:start] + TWO[end:]))
    assert park.quality is None and _quality(park) is None
    assert compare_quality(None, None) == {}
