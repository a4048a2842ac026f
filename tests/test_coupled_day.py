"""The coupled 24 h run of the example park: shift profiles, daily integrals, tanks, leaks over the day."""
import math
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from parktwin.hydraulics.inputs import GRAVITY_MS2, LEAK_DISCHARGE_COEFF
from parktwin.twin.coupled import run_park
from parktwin.twin.park import load_park
from parktwin.twin.park_hydraulics import shift_profile
from parktwin.twin.whatif import JunctionLeak, apply

EXAMPLE = Path(__file__).resolve().parents[1] / "twin" / "example_park"


@pytest.fixture(scope="module")
def park():
    return load_park(EXAMPLE)


@pytest.fixture(scope="module")
def day(park):
    return run_park(park, duration_s=86400)


def test_shift_profiles():
    for hours, on in ((24, range(24)), (16, range(6, 22)), (8, range(8, 16))):
        p = shift_profile(hours)
        assert_allclose(p.mean(), 1.0)
        assert_allclose(p[list(on)], 24.0 / hours)
        assert np.count_nonzero(p) == hours
    with pytest.raises(ValueError, match="shift_hours"):
        shift_profile(12)


def test_enterprises_draw_over_their_shift(park, day):
    h = day.hydraulics["supply"]
    assert list(h.times_s) == list(range(0, 86401, 3600))
    for name in ("food_plant", "brewery", "steelworks"):
        ent = park.enterprise(name)
        j = h.net.node_index(ent.junctions["supply"])
        fresh = day.allocation.flows(name).intake_fresh / 86400.0
        expected = fresh * shift_profile(ent.shift_hours)                  # clock hours 0..23
        assert_allclose(h.demand_m3s[:24, j], expected, rtol=1e-9, atol=1e-12, err_msg=name)
    s = day.service["supply"]
    assert_allclose(s.delivered_m3d, s.requested_m3d, rtol=1e-9)


def test_day_balances_close_with_the_tank(day):
    for name, s in day.service.items():
        assert s.converged, name
        assert abs(s.closure_residual_m3d) <= 1e-3 * abs(s.source_outflow_m3d), (name, s.as_dict())
    h = day.hydraulics["supply"]
    t = h.net.tank_node[0]
    area_m2 = math.pi * h.net.tank_diameter_m[0] ** 2 / 4.0
    from_levels = area_m2 * (h.head_m[-1, t] - h.head_m[0, t])
    # Tank levels move with the step-wise Euler update EPANET uses; the hourly integral must agree.
    assert_allclose(day.service["supply"].storage_change_m3d, from_levels, rtol=1e-3)
    assert day.service_violations() == []


def test_a_leak_over_the_day_follows_the_orifice_law_hour_by_hour(park, day):
    area = 1e-3
    leaky = run_park(apply(park, [JunctionLeak("supply", "S0502", area)]), duration_s=86400)
    h = leaky.hydraulics["supply"]
    j = h.net.node_index("S0502")
    p = h.pressure_m[:24, j]
    orifice = LEAK_DISCHARGE_COEFF * area * np.sqrt(2.0 * GRAVITY_MS2 * np.maximum(p, 0.0))
    assert_allclose(h.leak_m3s[:24, j], orifice, rtol=1e-6)
    # The day's volume sums every hydraulic step; the tank filling adds steps between the hourly reports,
    # so the hourly samples agree only to the pressure change within those hours.
    assert_allclose(leaky.service["supply"].leaks_m3d, orifice.sum() * 3600.0, rtol=1e-3)
    pk = leaky.balance["park"]
    assert_allclose(pk["network_losses_fresh"], leaky.service["supply"].leaks_m3d)
    assert_allclose(pk["intake"], day.balance["park"]["intake"] + leaky.service["supply"].leaks_m3d, rtol=1e-9)
    assert leaky.indicators["leakage_rate"]["value"] > day.indicators["leakage_rate"]["value"]
    s = leaky.service["supply"]
    assert_allclose(leaky.indicators["network_leakage_rate[supply]"]["value"],
                    s.leaks_m3d / (s.delivered_m3d + s.leaks_m3d))
    assert leaky.indicators["network_leakage_rate[reclaimed]"]["value"] == 0.0
    unserved = day.indicators["unserved_demand[supply]"]
    assert unserved["value"] == 0.0 and unserved["unit"] == "m3/d" and unserved["met"] is True
    assert day.indicators["low_pressure_junctions[reclaimed]"]["value"] == 0.0


def test_day_and_snapshot_share_the_daily_allocation(park, day):
    snap = run_park(park, duration_s=0)
    assert snap.balance["enterprises"] == day.balance["enterprises"]
    assert snap.indicators["reuse_rate"]["value"] == day.indicators["reuse_rate"]["value"]
    # The day sees the shifts: pressure at the food plant (08:00-16:00) drops when it starts and recovers
    # when it stops; its reported pressure is the day's minimum.
    h = day.hydraulics["supply"]
    j = h.net.node_index(park.enterprise("food_plant").junctions["supply"])
    assert h.pressure_m[8, j] < h.pressure_m[7, j] and h.pressure_m[16, j] > h.pressure_m[15, j]
    assert day.service["supply"].enterprise_pressure_m["food_plant"] == pytest.approx(h.pressure_m[:, j].min())
