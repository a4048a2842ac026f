"""The coupled park run (snapshot): allocation, three networks, balances closed, JSON outputs."""
import json

import numpy as np
import pytest
from numpy.testing import assert_allclose

from test_park import NET1, VALID, _write_park   # the valid park.toml of the loader's tests
from parktwin.twin import balance as bal
from parktwin.twin.coupled import run_park, write_outputs
from parktwin.twin.park import load_park

pytestmark = pytest.mark.skipif(not NET1.exists(), reason=f"{NET1} not found")

SHORT = (VALID.replace("capacity_m3d = 4000", "capacity_m3d = 1000")
         .replace("reclaimed_offer_m3d = 1500", "reclaimed_offer_m3d = 200"))


def _closes(intake, outputs):
    assert_allclose(np.asarray(outputs, float), np.asarray(intake, float), rtol=1e-3, atol=1e-9)


@pytest.fixture(scope="module")
def run_and_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("coupled")
    park = load_park(_write_park(tmp / "park"))
    result = run_park(park)            # the 24 h run, the default
    return park, result, write_outputs(result, tmp / "out")


def test_every_balance_closes(run_and_files):
    park, result, _ = run_and_files
    table = result.balance
    for name, e in table["enterprises"].items():
        ent = park.enterprise(name)
        _closes(e["intake"] + e["reclaimed_in"], e["consumption"] + e["discharge"] + e["losses"])
        _closes(e["intake"] + e["reclaimed_in"], ent.needs.total_m3d)
        _closes(e["total_use"], e["intake"] + e["reclaimed_in"] + e["reused"])
        assert e["reused"] == pytest.approx(ent.recycling.total_m3d)
    for name, p in table["plants"].items():
        _closes(p["intake"], sum(p["outputs"].values()) + p["losses"])
    pk = table["park"]
    _closes(pk["intake"] + pk["reclaimed_in"], pk["consumption"] + pk["discharge"] + pk["losses"])
    for key in ("intake", "reclaimed_in", "reused", "consumption", "discharge", "losses"):
        members = sum(e[key] for e in table["enterprises"].values())
        extra = {"intake": pk["network_losses_fresh"], "reclaimed_in": pk["network_losses_reclaimed"],
                 "discharge": -pk["network_losses_sewer"],
                 "losses": pk["network_losses_fresh"] + pk["network_losses_reclaimed"]
                 + pk["network_losses_sewer"]}.get(key, 0.0)
        _closes(pk[key], members + extra)
    # The books close by construction, so the run reports no per-enterprise closure; the boundary is
    # the check (tests/test_boundary.py).
    assert not any(k.startswith("balance_closure[") for k in result.indicators)


def test_networks_carry_the_enterprise_flows(run_and_files):
    park, result, _ = run_and_files
    for name in ("supply", "reclaimed", "discharge"):
        s = result.service[name]
        assert s.converged, name
        assert s.delivered_m3d == pytest.approx(s.requested_m3d, rel=1e-6), name
    discharge = sum(f.discharge for f in result.allocation.enterprises)
    assert result.service["discharge"].requested_m3d == pytest.approx(discharge)
    fresh = sum(f.intake_fresh for f in result.allocation.enterprises)
    assert result.service["supply"].requested_m3d == pytest.approx(fresh)


def test_json_outputs_have_units(run_and_files):
    park, result, (ind_path, bal_path) = run_and_files
    ind = json.loads(ind_path.read_text())["indicators"]
    for key in ("reuse_rate", "substitution_rate", "leakage_rate", "discharge_to_city",
                "intake_per_unit_product[steelworks]", "boundary_closure"):
        assert {"value", "unit", "target", "met"} <= set(ind[key]), key
    assert ind["reuse_rate"]["target"] == pytest.approx(0.6)
    assert ind["intake_per_unit_product[steelworks]"]["target"] == pytest.approx(3.5)   # park's own quota
    b = json.loads(bal_path.read_text())
    assert b["unit"] == "m3/d"
    assert set(b["enterprises"]) == {"steelworks", "brewery"} and set(b["plants"]) == {"wastewater", "reclaimed"}
    for row in list(b["enterprises"].values()) + list(b["plants"].values()):
        assert {"intake", "reclaimed_in", "reused", "consumption", "discharge", "losses"} <= set(row)
    assert set(b["networks"]) == {"supply", "reclaimed", "discharge"}


def test_reclaimed_shortage_falls_back_to_fresh(tmp_path):
    """By hand: discharges 0.6*4090 + 0.85*1050 = 3346.5 <= 8000 all treated; the reclaimed plant takes
    1000 (its feed capacity) and makes 1000*0.92*0.75 = 690: 500 to the city, 190 to the park; the city
    offers 200; 390 of the 1860 reclaimable m3/d are served, shared in proportion to the needs."""
    park = load_park(_write_park(tmp_path / "park", SHORT))
    a = bal.allocate(park)
    assert a.reclaimed_from_plant == pytest.approx(190) and a.reclaimed_from_city == pytest.approx(200)
    share = 390 / 1860
    steel, brewery = a.flows("steelworks"), a.flows("brewery")
    assert steel.intake_reclaimed == pytest.approx(1740 * share)
    assert steel.intake_fresh == pytest.approx(2350 + 1740 * (1 - share))
    assert brewery.intake_reclaimed == pytest.approx(120 * share)
    assert brewery.intake_fresh == pytest.approx(930 + 120 * (1 - share))
    assert a.reclaimed_plant.inflow == pytest.approx(1000)
    assert a.reclaimed_plant.outputs["brine_to_city"] == pytest.approx(310)
    assert a.wastewater_plant.outputs["effluent_to_city"] == pytest.approx(2346.5)
    assert a.discharge_to_city == pytest.approx(2346.5 + 310)
    bal.check_closure(a)
    # Plenty of reclaimed water (the VALID park): every reclaimable need is served by reclaimed water.
    full = bal.allocate(load_park(_write_park(tmp_path / "valid")))
    assert full.flows("steelworks").intake_reclaimed == pytest.approx(1740)
    assert full.reclaimed_from_city == pytest.approx(1860 - (3346.5 * 0.69 - 500))


def test_wastewater_overflow_goes_to_city_plant(tmp_path):
    park = load_park(_write_park(tmp_path / "park", VALID.replace("capacity_m3d = 8000", "capacity_m3d = 3000")))
    a = bal.allocate(park)
    assert a.wastewater_plant.outputs["overflow_to_city_plant"] == pytest.approx(346.5)
    assert a.overflow_unhandled == 0.0
    bal.check_closure(a)


def test_park_balance_books_network_leaks_as_losses(run_and_files):
    park, result, _ = run_and_files
    pb = bal.park_balance(park, result.allocation, network_losses_fresh=12.0, network_losses_reclaimed=3.0)
    assert pb.intake_fresh == pytest.approx(result.park_balance.intake_fresh + 12.0)
    assert pb.losses == pytest.approx(result.park_balance.losses + 15.0)
    assert pb.new_water == pytest.approx(pb.consumption + pb.discharge + pb.losses)


def test_bad_fractions_raise():
    with pytest.raises(ValueError, match="negative losses"):
        bal.split_enterprise("x", 100.0, 0.0, 0.0, 0.0, consumption_fraction=0.7, discharge_fraction=0.6)


def test_duration_is_a_day_or_a_snapshot(run_and_files):
    park, _, _ = run_and_files
    with pytest.raises(ValueError, match="duration_s: the coupled run is a day"):
        run_park(park, duration_s=3600)


def test_cut_off_network_is_reported(run_and_files):
    """NET1 as a discharge network: once its tank is full nothing can leave, EPANET's 'system
    disconnected'; the network balance shows it and the run says so."""
    _, result, _ = run_and_files
    s = result.service["discharge"]
    assert abs(s.closure_residual_m3d) > 100.0
    kinds = {(v["network"], v["kind"]) for v in result.service_violations()}
    assert ("discharge", "balance_not_closed") in kinds
    assert ("supply", "balance_not_closed") not in kinds
