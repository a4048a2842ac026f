"""The park description: a valid folder loads; each kind of mistake gets one error naming file, key, reason."""
import dataclasses
import shutil
from pathlib import Path

import pytest

from parktwin.twin.park import NETWORKS, ParkError, load_park

SHARED = Path(__file__).resolve().parents[2] / "shared"
NET1 = SHARED / "networks" / "epanet-tests" / "network_one" / "NET1.inp"
pytestmark = pytest.mark.skipif(not NET1.exists(), reason=f"NET1.inp not found under {SHARED}")

VALID = """
[park]
name = "Demo chemical park"

[enterprises.steelworks]
sector = "crude_steel"
product = "crude steel"
annual_output = 1.2e6
value_added_10k_yuan = 85000
consumption_fraction = 0.25
discharge_fraction = 0.6
shift_hours = 24
[enterprises.steelworks.needs_m3d]
process = 2000
boiler = 300
domestic = 50
cooling_makeup = 1500
washing = 200
greening = 40
[enterprises.steelworks.recycling]
cooling_circulation_m3d = 60000
cascade_use_m3d = 500
[enterprises.steelworks.junctions]
supply = "10"
reclaimed = "11"
discharge = "12"

[enterprises.brewery]
sector = "beer"
product = "beer (kL)"
annual_output = 2.0e5
value_added_10k_yuan = 12000
consumption_fraction = 0.1
discharge_fraction = 0.85
shift_hours = 16
[enterprises.brewery.needs_m3d]
process = 900
domestic = 30
washing = 120
[enterprises.brewery.junctions]
supply = 21
reclaimed = "22"
discharge = "23"

[plants.wastewater]
capacity_m3d = 8000

[plants.reclaimed]
capacity_m3d = 4000
[[plants.reclaimed.units]]
name = "UF"
recovery_fraction = 0.92
[[plants.reclaimed.units]]
name = "RO"
recovery_fraction = 0.75

[city]
fresh_head_m = 45.0
fresh_capacity_m3d = 20000
reclaimed_offer_m3d = 1500
wastewater_capacity_m3d = 10000
reclaimed_to_city_m3d = 500

[targets]
reuse_rate_fraction = 0.6
substitution_rate_fraction = 0.3
[targets.sector_quotas_m3_per_unit]
crude_steel = 3.5
beer = 5.0
"""


def _write_park(folder: Path, toml: str = VALID, networks=NETWORKS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "park.toml").write_text(toml)
    for net in networks:
        shutil.copyfile(NET1, folder / f"{net}.inp")
    return folder


def _error(tmp_path, toml: str = VALID, networks=NETWORKS) -> str:
    folder = _write_park(tmp_path / "park", toml, networks)
    with pytest.raises(ParkError) as info:
        load_park(folder)
    return str(info.value)


def test_valid_park_loads(tmp_path):
    park = load_park(_write_park(tmp_path / "park"))
    assert park.name == "Demo chemical park"
    assert [e.name for e in park.enterprises] == ["steelworks", "brewery"]
    steel = park.enterprise("steelworks")
    assert steel.sector == "crude_steel" and steel.shift_hours == 24
    assert steel.needs.fresh_only_m3d == pytest.approx(2350)
    assert steel.needs.reclaimable_m3d == pytest.approx(1740)
    assert steel.recycling.total_m3d == pytest.approx(60500)
    assert dict(steel.junctions) == {"supply": "10", "reclaimed": "11", "discharge": "12"}
    brewery = park.enterprise("brewery")
    assert brewery.junctions["supply"] == "21"                     # bare TOML integer read as an id
    assert brewery.needs.boiler_m3d == 0.0 and brewery.recycling.total_m3d == 0.0   # optional grades
    assert park.reclaimed_plant.recovery_fraction == pytest.approx(0.92 * 0.75)
    assert [u.name for u in park.reclaimed_plant.units] == ["UF", "RO"]
    assert park.wastewater_plant.capacity_m3d == 8000
    assert park.city.fresh_head_m == 45.0
    assert park.targets.sector_quotas_m3_per_unit["crude_steel"] == 3.5
    assert Path(park.network_path("discharge")).name == "discharge.inp"
    with pytest.raises(dataclasses.FrozenInstanceError):
        steel.sector = "beer"
    with pytest.raises(TypeError):
        steel.junctions["supply"] = "13"


@pytest.mark.parametrize("old, new, expected", [
    ('sector = "crude_steel"', 'sector = "stel"',
     "park.toml: enterprises.steelworks.sector: unknown sector 'stel' (valid: "),
    ('reclaimed = "22"', 'reclaimed = "99"',
     "park.toml: enterprises.brewery.junctions.reclaimed: junction '99' is not in reclaimed.inp"),
    ("capacity_m3d = 8000", "capacity_m3d = -5",
     "park.toml: plants.wastewater.capacity_m3d: must be >= 0, got -5"),
    ("discharge_fraction = 0.85", "discharge_fraction = 1.2",
     "park.toml: enterprises.brewery.discharge_fraction: must be <= 1, got 1.2"),
    ("discharge_fraction = 0.6", "discharge_fraction = 0.8",
     "park.toml: enterprises.steelworks.discharge_fraction: consumption_fraction + discharge_fraction "
     "must be <= 1, got 0.25 + 0.8 = 1.05"),
    ('product = "crude steel"\n', "",
     "park.toml: enterprises.steelworks.product: required key is missing"),
    ("shift_hours = 16", "shift_hours = 12",
     "park.toml: enterprises.brewery.shift_hours: must be one of 8, 16, 24 hours, got 12"),
    ("recovery_fraction = 0.75", "recovery_fraction = 0",
     "park.toml: plants.reclaimed.units[1].recovery_fraction: must be > 0, got 0"),
    ("fresh_capacity_m3d = 20000", "fresh_capacity_m3d = nan",
     "park.toml: city.fresh_capacity_m3d: must be finite, got nan"),
    ("reuse_rate_fraction = 0.6", "reuse_rate_fraction = 0.6\nreuse_rate = 0.5",
     "park.toml: targets.reuse_rate: unknown key"),
    ("beer = 5.0", "bier = 5.0",
     "park.toml: targets.sector_quotas_m3_per_unit.bier: unknown sector 'bier'"),
    ("fresh_head_m = 45.0", 'fresh_head_m = 45.0\nfresh_reservoir = "2"',
     "park.toml: city.fresh_reservoir: '2' is not a reservoir of supply.inp (its reservoirs: 9)"),
    ("fresh_head_m = 45.0", 'fresh_head_m = 45.0\nfresh_reservoir = 9',
     "park.toml: city.fresh_reservoir: expected a non-empty string, got 9"),
    ('sector = "crude_steel"', 'sector = "crude_steel"\nno_provincial_quota = true',
     "park.toml: enterprises.steelworks.no_provincial_quota: sector 'crude_steel' has a provincial quota"),
    ('sector = "crude_steel"', 'sector = "foundry"\nno_provincial_quota = "yes"',
     "park.toml: enterprises.steelworks.no_provincial_quota: expected true or false, got 'yes'"),
    ("substitution_rate_fraction = 0.3", 'substitution_rate_fraction = 0.3\npark_reclaimed_as = "recycled"',
     "park.toml: targets.park_reclaimed_as: expected one of unconventional, reuse, got 'recycled'"),
    ("substitution_rate_fraction = 0.3",
     "substitution_rate_fraction = 0.3\n[targets.water_per_10k_yuan]\nbaseline_m3_per_10k_yuan = 0",
     "park.toml: targets.water_per_10k_yuan.baseline_m3_per_10k_yuan: must be > 0, got 0"),
    ("substitution_rate_fraction = 0.3",
     "substitution_rate_fraction = 0.3\n[targets.water_per_10k_yuan]\nbaseline_m3_per_10k_yuan = 30\n"
     "baseline_year = 2020.5",
     "park.toml: targets.water_per_10k_yuan.baseline_year: expected a year, got 2020.5"),
])
def test_bad_park_file_gets_one_clear_error(tmp_path, old, new, expected):
    assert VALID.count(old) == 1, old
    message = _error(tmp_path, VALID.replace(old, new))
    assert message.startswith(expected), message


def test_missing_network_file(tmp_path):
    message = _error(tmp_path, networks=("supply", "discharge"))
    assert message.startswith("reclaimed.inp: file: not found in park folder"), message


def test_missing_park_toml_and_bad_syntax(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    with pytest.raises(ParkError, match=r"^park\.toml: file: not found"):
        load_park(folder)
    with pytest.raises(ParkError, match=r"^park\.toml: syntax: "):
        load_park(_write_park(tmp_path / "broken", "[park\nname = 1"))


def test_park_error_is_a_value_error_with_parts(tmp_path):
    folder = _write_park(tmp_path / "park", VALID.replace("capacity_m3d = 4000", "capacity_m3d = -1"))
    with pytest.raises(ValueError) as info:
        load_park(folder)
    err = info.value
    assert isinstance(err, ParkError)
    assert (err.file, err.key) == ("park.toml", "plants.reclaimed.capacity_m3d")


def test_sector_without_quota_classification_and_intensity_baseline(tmp_path):
    toml = (VALID.replace('sector = "crude_steel"', 'sector = "foundry"\nno_provincial_quota = true')
            .replace("crude_steel = 3.5\n", "")
            .replace("substitution_rate_fraction = 0.3", 'substitution_rate_fraction = 0.3\npark_reclaimed_as = "reuse"\n'
                     '[targets.water_per_10k_yuan]\nbaseline_m3_per_10k_yuan = 30.5\nbaseline_year = 2021\n'
                     'price_basis = "current prices"\nreduction_fraction = 0.1'))
    park = load_park(_write_park(tmp_path / "park", toml))
    steel = park.enterprise("steelworks")
    assert steel.sector == "foundry" and steel.has_quota is False
    assert park.enterprise("brewery").has_quota is True
    t = park.targets
    assert t.park_reclaimed_as == "reuse"
    assert (t.intensity_baseline_m3_per_10k_yuan, t.intensity_baseline_year, t.intensity_price_basis,
            t.intensity_reduction_fraction) == (30.5, 2021, "current prices", 0.1)
    defaults = load_park(_write_park(tmp_path / "valid")).targets
    assert defaults.park_reclaimed_as == "unconventional" and defaults.intensity_baseline_m3_per_10k_yuan is None
