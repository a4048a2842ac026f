"""What-if operations on the example park, checked against hand calculations from the balance numbers."""
import dataclasses
import math
from pathlib import Path

import pytest
from numpy.testing import assert_allclose

from parktwin.twin.coupled import run_park
from parktwin.twin.park import load_park
from parktwin.twin.whatif import (
    AddEnterprise, CityFreshHead, CityReclaimedOffer, ExpandEnterprise, JunctionLeak, PlantCapacity, PlantOutage,
    Perturbation, PlantRecovery, PumpOutage, WhatIfError, apply, compare,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "twin" / "example_park"
DAYS = 365.0


@pytest.fixture(scope="module")
def park():
    return load_park(EXAMPLE)


@pytest.fixture(scope="module")
def base(park):
    return run_park(park)


def _largest(park):
    return max(park.enterprises, key=lambda e: e.needs.total_m3d)


def _leaks(result):
    return result.service["supply"].leaks_m3d, result.service["reclaimed"].leaks_m3d


def _sum(result, field):
    return math.fsum(getattr(f, field) for f in result.allocation.enterprises)


def test_expand_largest_user_by_30_percent(park, base):
    big = _largest(park)
    k = 1.3
    new_park = apply(park, [ExpandEnterprise(big.name, k)])
    assert park.enterprise(big.name) is big and big.needs.total_m3d == _largest(park).needs.total_m3d  # pure
    new = run_park(new_park)

    # Hand check that reclaimed supply is not binding after the expansion: the park plant's product
    # (feed capped by capacity and treated effluent, times recovery, less the city export) plus the
    # city's offer covers the whole reclaimable need, so every enterprise gets share 1.
    a = base.allocation
    reclaimable_new = a.reclaimable_need + (k - 1) * big.needs.reclaimable_m3d
    rp = park.reclaimed_plant
    treated_new = min(new.allocation.wastewater_plant.inflow, park.wastewater_plant.capacity_m3d)
    product = min(rp.capacity_m3d, treated_new) * rp.recovery_fraction - park.city.reclaimed_to_city_m3d
    assert product + park.city.reclaimed_offer_m3d >= reclaimable_new
    assert a.reclaimed_from_plant + a.reclaimed_from_city == pytest.approx(a.reclaimable_need)

    # The expanded enterprise: every flow scales by exactly k.
    fb, fn = base.allocation.flows(big.name), new.allocation.flows(big.name)
    for field in ("intake_fresh", "intake_reclaimed", "reused", "consumption", "discharge", "losses"):
        assert_allclose(getattr(fn, field), k * getattr(fb, field), rtol=1e-12, err_msg=field)
    assert_allclose(fn.intake_fresh, k * big.needs.fresh_only_m3d, rtol=1e-12)
    assert_allclose(fn.intake_reclaimed, k * big.needs.reclaimable_m3d, rtol=1e-12)
    # Everyone else is untouched.
    for e in park.enterprises:
        if e.name != big.name:
            assert new.allocation.flows(e.name) == base.allocation.flows(e.name)

    # Park indicators by hand from the base balance (network leaks taken from each run).
    pb = base.park_balance
    (lf0, lr0), (lf1, lr1) = _leaks(base), _leaks(new)
    vi = pb.intake_fresh + (k - 1) * big.needs.fresh_only_m3d + (lf1 - lf0)
    vu = pb.intake_unconventional + (k - 1) * big.needs.reclaimable_m3d + (lr1 - lr0)
    vr = pb.reused + (k - 1) * big.recycling.total_m3d
    va = pb.value_added + (k - 1) * big.value_added_10k_yuan / DAYS
    reuse_expected = vr / (vi + vu + vr)                          # R = Vr / (Vi + Vu + Vr)
    w_expected = vi / va                                          # W = Vi / VA
    subst_expected = vu / (vi + vu)                               # Ru = Vu / (Vi + Vu)

    d = compare(base, new)
    assert_allclose(d["reuse_rate"]["after"], reuse_expected, rtol=1e-12)
    assert_allclose(d["water_per_10k_yuan"]["after"], w_expected, rtol=1e-12)
    assert_allclose(d["substitution_rate"]["after"], subst_expected, rtol=1e-12)
    assert_allclose(d["reuse_rate"]["change"], reuse_expected - base.indicators["reuse_rate"]["value"], rtol=1e-9)
    assert_allclose(d["water_per_10k_yuan"]["change"],
                    w_expected - base.indicators["water_per_10k_yuan"]["value"], rtol=1e-9)

    # Direction: the largest user reuses less and draws more fresh water per yuan than the park average,
    # so growing it lowers the park reuse rate and raises water per 10,000 yuan.
    big_reuse = big.recycling.total_m3d / (big.needs.total_m3d + big.recycling.total_m3d)
    big_w = big.needs.fresh_only_m3d / (big.value_added_10k_yuan / DAYS)
    assert big_reuse < base.indicators["reuse_rate"]["value"] and d["reuse_rate"]["change"] < 0
    assert big_w > base.indicators["water_per_10k_yuan"]["value"] and d["water_per_10k_yuan"]["change"] > 0
    # Its own per-enterprise ratios do not change (everything scaled together).
    assert_allclose(d[f"water_per_10k_yuan[{big.name}]"]["change"], 0.0, atol=1e-9)
    assert d[f"reuse_rate[{big.name}]"]["unit"] == "fraction"


def test_reclaimed_plant_outage_moves_reclaimed_to_fresh(park, base):
    new = run_park(apply(park, PlantOutage("reclaimed")))
    a0, a1 = base.allocation, new.allocation
    assert a1.reclaimed_from_plant == 0.0 and a1.reclaimed_to_city == 0.0
    # By hand: only the city's offer (capped by the need) is left for the park.
    expected_reclaimed = min(park.city.reclaimed_offer_m3d, a0.reclaimable_need)
    assert_allclose(_sum(new, "intake_reclaimed"), expected_reclaimed, rtol=1e-12)
    drop = _sum(base, "intake_reclaimed") - _sum(new, "intake_reclaimed")
    assert drop > 0
    assert_allclose(_sum(new, "intake_fresh") - _sum(base, "intake_fresh"), drop, rtol=1e-9)
    assert_allclose(drop, a0.reclaimed_from_plant + a0.reclaimed_from_city - expected_reclaimed, rtol=1e-9)
    d = compare(base, new)
    assert d["substitution_rate"]["change"] < 0 and d["water_per_10k_yuan"]["change"] > 0


def test_city_offer_cut_falls_back_to_fresh_in_proportion(park, base):
    a0 = base.allocation
    offer = 1000.0
    assert offer < a0.reclaimed_from_city            # binding: the base run uses more than this
    new = run_park(apply(park, CityReclaimedOffer(offer)))
    share = (a0.reclaimed_from_plant + offer) / a0.reclaimable_need
    for e in park.enterprises:
        f = new.allocation.flows(e.name)
        assert_allclose(f.intake_reclaimed, share * e.needs.reclaimable_m3d, rtol=1e-12, err_msg=e.name)
        assert_allclose(f.intake, e.needs.total_m3d, rtol=1e-12)
    assert_allclose(_sum(new, "intake_fresh") - _sum(base, "intake_fresh"), a0.reclaimed_from_city - offer,
                    rtol=1e-9)
    # A larger offer changes nothing: the base need is already fully served.
    more = run_park(apply(park, CityReclaimedOffer(a0.reclaimed_from_city + 5000)))
    assert all(v["change"] in (None, 0.0) for v in compare(base, more).values())


def test_capacity_recovery_and_added_enterprise(park, base):
    p = apply(park, [PlantCapacity("wastewater", 20000), PlantRecovery("RO", 0.8)])
    assert p.wastewater_plant.capacity_m3d == 20000 and p.reclaimed_plant.units[1].recovery_fraction == 0.8
    assert park.reclaimed_plant.units[1].recovery_fraction == 0.75          # input untouched
    assert_allclose(p.reclaimed_plant.recovery_fraction, 0.92 * 0.8)

    donor = park.enterprise("food_plant")
    extra = dataclasses.replace(donor, name="new_bakery")
    new = run_park(apply(park, AddEnterprise(extra)))
    assert len(new.allocation.enterprises) == len(park.enterprises) + 1
    d = compare(base, new)
    assert d["reuse_rate[new_bakery]"]["before"] is None and d["reuse_rate[new_bakery]"]["after"] is not None
    assert_allclose(_sum(new, "intake_fresh") + _sum(new, "intake_reclaimed"),
                    sum(e.needs.total_m3d for e in park.enterprises) + donor.needs.total_m3d, rtol=1e-12)


@pytest.mark.parametrize("op, message", [
    (ExpandEnterprise("no_such_mill", 1.3), "ExpandEnterprise: name: unknown enterprise 'no_such_mill'"),
    (ExpandEnterprise("paper_mill", -0.5), "ExpandEnterprise: factor: must be >= 0, got -0.5"),
    (ExpandEnterprise("paper_mill", float("nan")), "ExpandEnterprise: factor: expected a finite number"),
    (PlantCapacity("desalination", 100), "PlantCapacity: plant: unknown plant 'desalination'"),
    (PlantCapacity("reclaimed", -1), "PlantCapacity: capacity_m3d: must be >= 0"),
    (PlantRecovery("MBR", 0.9), "PlantRecovery: unit: unknown treatment unit 'MBR'"),
    (PlantRecovery("RO", 0.0), "PlantRecovery: recovery_fraction: must be > 0"),
    (PlantRecovery("RO", 1.2), "PlantRecovery: recovery_fraction: must be <= 1"),
    (PlantOutage("pumping_station"), "PlantOutage: plant: unknown plant"),
    (CityReclaimedOffer(-10), "CityReclaimedOffer: m3d: must be >= 0"),
])
def test_bad_operations_are_rejected(park, op, message):
    with pytest.raises(WhatIfError) as exc:
        apply(park, [op])
    assert str(exc.value).startswith(message), str(exc.value)


def test_bad_added_enterprises_and_unsupported_perturbations(park):
    donor = park.enterprise("food_plant")
    with pytest.raises(WhatIfError, match="AddEnterprise: enterprise.name: the park already has .*'food_plant'"):
        apply(park, [AddEnterprise(donor)])
    bad = dataclasses.replace(donor, name="ghost", junctions={**donor.junctions, "supply": "NOPE"})
    with pytest.raises(WhatIfError, match="AddEnterprise: enterprise.junctions: .*'NOPE' is not in supply.inp"):
        apply(park, [AddEnterprise(bad)])
    with pytest.raises(TypeError, match="unknown what-if operation"):
        apply(park, ["grow everything"])
    with pytest.raises(WhatIfError, match="PumpOutage: pump: 'P1' is not a pump of supply.inp"):
        apply(park, [PumpOutage("supply", "P1")])


# ------------------------------------------------------------------ hydraulic what-ifs
def test_leak_is_a_loss_of_the_park(park, base):
    leaky = run_park(apply(park, [JunctionLeak("supply", "S0502", 1e-3)]))
    leak = leaky.service["supply"].leaks_m3d
    assert leak > 100.0
    h = leaky.hydraulics["supply"]
    assert_allclose(h.leak_volume_m3[h.net.node_index("S0502")], leak)
    assert_allclose(leaky.balance["park"]["intake"], base.balance["park"]["intake"] + leak, rtol=1e-9)
    assert_allclose(leaky.balance["park"]["losses"], base.balance["park"]["losses"] + leak, rtol=1e-9)
    delta = compare(base, leaky)
    assert delta["leakage_rate"]["change"] > 0 and delta["reuse_rate"]["change"] < 0
    # the park as loaded is untouched
    assert park.hydraulic_changes == () and len(apply(park, [JunctionLeak("supply", "S0502", 1e-3)])
                                                    .hydraulic_changes) == 1


def test_raw_rows_reach_the_network(park, base):
    # Closing the supply main out of the tank changes the tank's share and nothing else of the balance.
    changed = run_park(apply(park, [Perturbation("supply", "S-TANK", "status", "closed")]))
    h = changed.hydraulics["supply"]
    assert_allclose(h.flow_m3s[:, h.net.link_index("S-TANK")], 0.0)
    assert changed.service["supply"].storage_change_m3d == pytest.approx(0.0, abs=1e-9)
    assert changed.balance["enterprises"] == base.balance["enterprises"]


@pytest.mark.parametrize("op, message", [
    (JunctionLeak("supply", "NOPE", 1e-3), "JunctionLeak: junction: 'NOPE' is not a junction of supply"),
    (JunctionLeak("supply", "MUNICIPAL", 1e-3), "JunctionLeak: junction: 'MUNICIPAL' is not a junction of supply "
                                                "(it is a reservoir)"),
    (JunctionLeak("supply", "S0502", -1e-3), "JunctionLeak: area_m2: must be > 0"),
    (JunctionLeak("sewer", "S0502", 1e-3), "JunctionLeak: network: unknown network 'sewer'"),
    (Perturbation("supply", "*", "demand_multiplier", 2), "Perturbation: attribute: demand_multiplier is not a "
                                                          "park what-if"),
    (Perturbation("supply", "S0502", "colour", "red"), "Perturbation: attribute: unknown attribute 'colour'"),
    (Perturbation("supply", "S0502", "leak_area_m2", "abc"), "Perturbation: value: leak_area_m2 value 'abc'"),
])
def test_bad_hydraulic_operations(park, op, message):
    with pytest.raises(WhatIfError) as exc:
        apply(park, [op])
    assert str(exc.value).startswith(message), str(exc.value)


def test_the_same_leak_twice_is_refused(park):
    with pytest.raises(WhatIfError, match="JunctionLeak: junction: leak_area_m2 of 'S0502' is already set"):
        apply(park, [JunctionLeak("supply", "S0502", 1e-3), JunctionLeak("supply", "S0502", 2e-3)])


def test_pump_outage_on_a_network_with_pumps(tmp_path):
    from test_park import NET1, _write_park
    if not NET1.exists():
        pytest.skip(f"{NET1} not found")
    net1_park = load_park(_write_park(tmp_path / "park"))
    out = run_park(apply(net1_park, [PumpOutage("supply", "9")]), duration_s=0)
    h = out.hydraulics["supply"]
    assert_allclose(h.flow_m3s[0, h.net.link_index("9")], 0.0)
    assert out.service["supply"].source_outflow_m3d == pytest.approx(0.0, abs=1e-9)   # only the tank supplies
    assert out.service["supply"].storage_change_m3d < 0


def test_city_fresh_head_reaches_the_municipal_reservoir(park, base):
    assert park.city.fresh_reservoir == "MUNICIPAL"
    h = base.hydraulics["supply"]
    m = h.net.node_index("MUNICIPAL")
    assert_allclose(h.head_m[:, m], park.city.fresh_head_m)
    lower = run_park(apply(park, [CityFreshHead(park.city.fresh_head_m - 5.0)]))
    hl = lower.hydraulics["supply"]
    assert_allclose(hl.head_m[:, m], park.city.fresh_head_m - 5.0)
    assert lower.service["supply"].min_pressure_m < base.service["supply"].min_pressure_m
    import dataclasses as dc
    unnamed = dc.replace(park, city=dc.replace(park.city, fresh_reservoir=None))
    with pytest.raises(WhatIfError, match="CityFreshHead: head_m: the park does not name its municipal reservoir"):
        apply(unnamed, [CityFreshHead(50.0)])
