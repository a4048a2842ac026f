"""The park's daily allocation and headline indicators for many scenarios at once, as arrays [S] or [S, E].

`twin.balance.allocate` and `twin.indicators.evaluate` work on one frozen Park, which is what a report
needs; a Monte-Carlo study needs the same arithmetic for thousands of scenarios that differ only in a few
numbers (each enterprise's needs scaled, the reclaimed plant out or not, the city's offer scaled, the
networks' leaks). Here that arithmetic is written once more over arrays, operation for operation as in
`allocate` and `park_balance` (the same sums in the same order, `math.fsum` where they use it), so a
batch gives the single runs' numbers to the last bit and costs almost no Python per scenario; the park
Monte-Carlo tests check it against `run_park` scenario by scenario.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from parktwin.twin.park_schema import Park


@dataclass(frozen=True)
class ParkArrays:
    """The numbers of a park the batch needs, per enterprise [E] (needs per grade [E, 3])."""
    fresh_grades_m3d: np.ndarray       # process, boiler, domestic
    reclaimable_grades_m3d: np.ndarray  # cooling make-up, washing, greening
    reused_m3d: np.ndarray
    consumption_fraction: np.ndarray
    discharge_fraction: np.ndarray
    wastewater_capacity_m3d: float
    wastewater_losses_fraction: float
    reclaimed_capacity_m3d: float
    recovery_fraction: float
    reclaimed_to_city_m3d: float
    reclaimed_offer_m3d: float
    city_wastewater_capacity_m3d: float

    @staticmethod
    def of(park: Park) -> "ParkArrays":
        ents = park.enterprises
        return ParkArrays(
            fresh_grades_m3d=np.array([[e.needs.process_m3d, e.needs.boiler_m3d, e.needs.domestic_m3d]
                                       for e in ents]).reshape(len(ents), 3),
            reclaimable_grades_m3d=np.array([[e.needs.cooling_makeup_m3d, e.needs.washing_m3d,
                                              e.needs.greening_m3d] for e in ents]).reshape(len(ents), 3),
            reused_m3d=np.array([e.recycling.total_m3d for e in ents]),
            consumption_fraction=np.array([e.consumption_fraction for e in ents]),
            discharge_fraction=np.array([e.discharge_fraction for e in ents]),
            wastewater_capacity_m3d=park.wastewater_plant.capacity_m3d,
            wastewater_losses_fraction=park.wastewater_plant.losses_fraction,
            reclaimed_capacity_m3d=park.reclaimed_plant.capacity_m3d,
            recovery_fraction=park.reclaimed_plant.recovery_fraction,
            reclaimed_to_city_m3d=park.city.reclaimed_to_city_m3d,
            reclaimed_offer_m3d=park.city.reclaimed_offer_m3d,
            city_wastewater_capacity_m3d=park.city.wastewater_capacity_m3d)


@dataclass(frozen=True)
class BatchAllocation:
    """What `allocate` gives, per scenario: enterprise flows [S, E] and park figures [S], m³/d."""
    intake_fresh: np.ndarray
    intake_reclaimed: np.ndarray
    discharge: np.ndarray
    losses: np.ndarray
    reclaimable_need: np.ndarray
    reclaimed_from_plant: np.ndarray
    reclaimed_from_city: np.ndarray

    @property
    def reclaimed_shortfall(self) -> np.ndarray:
        return np.maximum(self.reclaimable_need - self.reclaimed_from_plant - self.reclaimed_from_city, 0.0)


def _fsum_rows(values: np.ndarray) -> np.ndarray:
    """math.fsum of each row: the scalar code sums with fsum, and a batch must give its numbers exactly."""
    return np.array([math.fsum(row) for row in values])


def allocate_batch(p: ParkArrays, demand_factor: np.ndarray, reclaimed_out: np.ndarray,
                   offer_factor: np.ndarray, sewer_losses_m3d: np.ndarray | float = 0.0) -> BatchAllocation:
    """`twin.balance.allocate` for S scenarios: needs times demand_factor [S, E], the reclaimed plant at
    zero capacity where reclaimed_out [S], the city's offer times offer_factor [S]."""
    # Each grade scaled, then added in WaterNeeds' order: (a·f + b·f) + c·f, not (a + b + c)·f.
    f, g, r = demand_factor, p.fresh_grades_m3d, p.reclaimable_grades_m3d
    fresh_only = (g[None, :, 0] * f + g[None, :, 1] * f) + g[None, :, 2] * f
    reclaimable_e = (r[None, :, 0] * f + r[None, :, 1] * f) + r[None, :, 2] * f
    intake = fresh_only + reclaimable_e
    discharges = _fsum_rows(p.discharge_fraction[None, :] * intake)
    ww_inflow = np.maximum(discharges - sewer_losses_m3d, 0.0)
    treated = np.minimum(ww_inflow, p.wastewater_capacity_m3d)
    plant_losses = p.wastewater_losses_fraction * treated
    capacity = np.where(reclaimed_out, 0.0, p.reclaimed_capacity_m3d)
    reclaimable = _fsum_rows(reclaimable_e)
    max_product = np.minimum(capacity, treated - plant_losses) * p.recovery_fraction
    to_city = np.minimum(p.reclaimed_to_city_m3d, max_product)
    from_plant = np.minimum(max_product - to_city, reclaimable)
    from_city = np.minimum(p.reclaimed_offer_m3d * offer_factor, reclaimable - from_plant)
    served = from_plant + from_city
    share = np.divide(served, reclaimable, out=np.zeros_like(served), where=reclaimable > 0)
    intake_reclaimed = reclaimable_e * np.minimum(share, 1.0)[:, None]
    intake_fresh = fresh_only + (reclaimable_e - intake_reclaimed)
    consumption = p.consumption_fraction[None, :] * intake
    discharge = p.discharge_fraction[None, :] * intake
    losses = np.maximum(intake - consumption - discharge, 0.0)
    return BatchAllocation(intake_fresh, intake_reclaimed, discharge, losses, reclaimable, from_plant, from_city)


def headline_indicators(p: ParkArrays, a: BatchAllocation, leaks_fresh_m3d: np.ndarray,
                        leaks_reclaimed_m3d: np.ndarray, substitution_denominator: str,
                        park_reclaimed_as: str = "unconventional", *,
                        leaks_sewer_m3d: np.ndarray) -> dict[str, np.ndarray]:
    """Reuse, substitution and leakage rates [S] as `twin.indicators` computes them (NaN where its
    denominator is zero), and the park's fresh intake; the park plant's reclaimed water counted as
    `park_reclaimed_as` (twin.indicators.classified)."""
    intake_fresh = _fsum_rows(a.intake_fresh) + leaks_fresh_m3d
    intake_unconventional = _fsum_rows(a.intake_reclaimed) + leaks_reclaimed_m3d
    new_water = intake_fresh + intake_unconventional
    reused = np.full_like(new_water, math.fsum(p.reused_m3d))
    losses = ((_fsum_rows(a.losses) + leaks_fresh_m3d + leaks_reclaimed_m3d) + leaks_sewer_m3d)
    if park_reclaimed_as == "reuse":
        intake_unconventional = intake_unconventional - a.reclaimed_from_plant
        reused = reused + a.reclaimed_from_plant
    elif park_reclaimed_as != "unconventional":
        raise ValueError(f"park_reclaimed_as: unknown {park_reclaimed_as!r}")
    new_water_classified = intake_fresh + intake_unconventional

    def ratio(num, den):
        return np.divide(num, den, out=np.full_like(num, np.nan), where=den > 0)

    if substitution_denominator == "intake_plus_unconventional":
        substitution = ratio(intake_unconventional, new_water_classified)
    elif substitution_denominator == "intake":
        substitution = ratio(intake_unconventional, intake_fresh)
    else:
        raise ValueError(f"substitution denominator: unknown {substitution_denominator!r}")
    return {"reuse_rate": ratio(reused, new_water_classified + reused), "substitution_rate": substitution,
            "leakage_rate": ratio(losses, new_water), "fresh_intake_m3d": intake_fresh}
