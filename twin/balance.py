"""Daily water allocation and balance of a park (m³/d), GB/T 12452 style; no hydraulics here.

Conventions (each is a modelling choice, kept in one place):

* An enterprise's intake (Vi + Vu) is its total need over all grades; recycling (cooling circulation,
  cascade use) is reuse Vr and never touches the park networks. Total use = intake + reused.
* consumption = consumption_fraction × intake, discharge = discharge_fraction × intake and
  losses = intake − consumption − discharge, so intake = consumption + discharge + losses exactly.
* Reclaimed supply: the park plant's capacity is its **feed** capacity (water treated per day), so it can
  produce at most min(capacity, wastewater-plant effluent) × recovery of its units in series. The
  committed export to the city (``reclaimed_to_city_m3d``) is served first; the rest, then the city's
  reclaimed offer, serve the park. Brine = feed × (1 − recovery) leaves with the plant effluent to the
  city (it does not re-enter the wastewater plant, which would recirculate the salt).
* Reclaimable needs are served with reclaimed water **in proportion** to each enterprise's reclaimable
  need when supply is short; the shortfall falls back to fresh water. Fresh-only grades are always fresh.
* Wastewater plant: treats up to its capacity; the overflow goes to the city plant (what exceeds the
  city's room is reported as ``overflow_unhandled_m3d``). It loses ``losses_fraction`` of what it treats
  (sludge water, evaporation); the rest is effluent, part of it the reclaimed plant's feed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from parktwin.twin.indicators import EnterpriseBalance, ParkBalance
from parktwin.twin.park_schema import Park

CLOSURE_TOLERANCE = 1e-3    # every balance must close within 0.1 %


@dataclass(frozen=True)
class EnterpriseFlows:
    """One enterprise's day, m³/d."""
    name: str
    intake_fresh: float          # Vi: fresh-only needs + reclaimable needs reclaimed water could not serve
    intake_reclaimed: float      # Vu: reclaimed water (park plant or city)
    reused: float                # Vr: recycling inside the enterprise
    consumption: float
    discharge: float             # to the discharge network
    losses: float

    @property
    def intake(self) -> float:
        return self.intake_fresh + self.intake_reclaimed

    @property
    def total_use(self) -> float:
        return self.intake + self.reused

    @property
    def residual(self) -> float:
        return self.intake - (self.consumption + self.discharge + self.losses)


@dataclass(frozen=True)
class PlantFlows:
    """A plant's day, m³/d: inflow = sum(outputs) + losses."""
    name: str
    inflow: float
    outputs: dict = field(default_factory=dict)   # destination -> m³/d
    losses: float = 0.0

    @property
    def residual(self) -> float:
        return self.inflow - (math.fsum(self.outputs.values()) + self.losses)


@dataclass(frozen=True)
class Allocation:
    """The park's allocation: enterprises, plants and the park-level supply figures, m³/d."""
    enterprises: tuple[EnterpriseFlows, ...]
    wastewater_plant: PlantFlows
    reclaimed_plant: PlantFlows
    reclaimable_need: float
    reclaimed_from_plant: float
    reclaimed_from_city: float
    reclaimed_to_city: float
    discharge_to_city: float           # plant effluent not reclaimed + overflow to the city plant + brine
    overflow_unhandled: float          # overflow beyond the city plant's room
    fresh_total: float
    fresh_over_capacity: float         # fresh demand beyond the city's fresh capacity (not served in reality)

    def flows(self, name: str) -> EnterpriseFlows:
        for e in self.enterprises:
            if e.name == name:
                return e
        raise KeyError(name)


def split_enterprise(name: str, fresh_only: float, reclaimable: float, reclaimed_share: float, reused: float,
                     consumption_fraction: float, discharge_fraction: float) -> EnterpriseFlows:
    """One enterprise's flows given the share (0..1) of its reclaimable need served by reclaimed water."""
    if not 0.0 <= reclaimed_share <= 1.0 + 1e-12:
        raise ValueError(f"enterprise {name!r}: reclaimed share must be in [0, 1], got {reclaimed_share!r}")
    intake_reclaimed = reclaimable * min(reclaimed_share, 1.0)
    intake_fresh = fresh_only + (reclaimable - intake_reclaimed)
    intake = fresh_only + reclaimable
    consumption = consumption_fraction * intake
    discharge = discharge_fraction * intake
    losses = intake - consumption - discharge
    if losses < -1e-9 * max(intake, 1.0):
        raise ValueError(f"enterprise {name!r}: consumption_fraction + discharge_fraction = "
                         f"{consumption_fraction + discharge_fraction:g} > 1 leaves negative losses ({losses:g} m3/d)")
    return EnterpriseFlows(name, intake_fresh, intake_reclaimed, reused, consumption, discharge, max(losses, 0.0))


def allocate(park: Park, sewer_losses_m3d: float = 0.0) -> Allocation:
    """Allocate every enterprise's needs and route the wastewater through the plants (daily averages).

    ``sewer_losses_m3d``: what leaks out of the discharge network before the wastewater plant (from the
    hydraulic run); it is part of the enterprises' discharge, so it only reduces the plant inflow.
    """
    ents = park.enterprises
    discharges = math.fsum(e.discharge_fraction * e.needs.total_m3d for e in ents)

    ww = park.wastewater_plant
    ww_inflow = max(discharges - sewer_losses_m3d, 0.0)
    treated = min(ww_inflow, ww.capacity_m3d)
    plant_losses = ww.losses_fraction * treated
    overflow = ww_inflow - treated
    overflow_city = min(overflow, park.city.wastewater_capacity_m3d)

    rp, city = park.reclaimed_plant, park.city
    recovery = rp.recovery_fraction
    reclaimable = math.fsum(e.needs.reclaimable_m3d for e in ents)
    max_feed = min(rp.capacity_m3d, treated - plant_losses)
    max_product = max_feed * recovery
    to_city = min(city.reclaimed_to_city_m3d, max_product)
    from_plant = min(max_product - to_city, reclaimable)
    from_city = min(city.reclaimed_offer_m3d, reclaimable - from_plant)
    served = from_plant + from_city
    share = served / reclaimable if reclaimable > 0 else 0.0
    # The plant treats only what is used: feed for the park's share and the city export.
    feed = (from_plant + to_city) / recovery
    brine = feed - (from_plant + to_city)

    flows = tuple(split_enterprise(e.name, e.needs.fresh_only_m3d, e.needs.reclaimable_m3d, share,
                                   e.recycling.total_m3d, e.consumption_fraction, e.discharge_fraction)
                  for e in ents)
    effluent_to_city = treated - plant_losses - feed
    ww_plant = PlantFlows("wastewater", ww_inflow, {
        "reclaimed_plant_feed": feed, "effluent_to_city": effluent_to_city,
        "overflow_to_city_plant": overflow_city, "overflow_unhandled": overflow - overflow_city},
        losses=plant_losses)
    rec_plant = PlantFlows("reclaimed", feed, {
        "reclaimed_to_park": from_plant, "reclaimed_to_city": to_city, "brine_to_city": brine})
    fresh_total = math.fsum(f.intake_fresh for f in flows)
    return Allocation(
        enterprises=flows, wastewater_plant=ww_plant, reclaimed_plant=rec_plant,
        reclaimable_need=reclaimable, reclaimed_from_plant=from_plant, reclaimed_from_city=from_city,
        reclaimed_to_city=to_city, discharge_to_city=effluent_to_city + overflow_city + brine,
        overflow_unhandled=overflow - overflow_city, fresh_total=fresh_total,
        fresh_over_capacity=max(fresh_total - city.fresh_capacity_m3d, 0.0))


def check_closure(alloc: Allocation, tolerance: float = CLOSURE_TOLERANCE) -> None:
    """Raise ValueError naming the first enterprise or plant whose balance does not close."""
    items = [(f"enterprise {e.name!r}", e.residual, e.intake) for e in alloc.enterprises]
    items += [(f"plant {p.name!r}", p.residual, p.inflow) for p in (alloc.wastewater_plant, alloc.reclaimed_plant)]
    for owner, residual, scale in items:
        if abs(residual) > tolerance * max(scale, 1e-9) and abs(residual) > 1e-9:
            raise ValueError(f"{owner}: balance does not close: residual {residual:g} m3/d of {scale:g} m3/d")


def park_balance(park: Park, alloc: Allocation, network_losses_fresh: float = 0.0,
                 network_losses_reclaimed: float = 0.0, days_per_year: float = 365.0,
                 network_losses_sewer: float = 0.0) -> ParkBalance:
    """The indicators' ParkBalance: daily flows, daily product output and value added (annual / 365)."""
    ents = []
    for e, f in zip(park.enterprises, alloc.enterprises):
        ents.append(EnterpriseBalance(
            name=e.name, intake_fresh=f.intake_fresh, intake_unconventional=f.intake_reclaimed,
            reused=f.reused, consumption=f.consumption, discharge=f.discharge, losses=f.losses,
            product_output=e.annual_output / days_per_year, value_added=e.value_added_10k_yuan / days_per_year,
            sector=e.sector if e.has_quota else None))
    return ParkBalance(enterprises=tuple(ents), network_losses_fresh=network_losses_fresh,
                       network_losses_unconventional=network_losses_reclaimed,
                       network_losses_sewer=network_losses_sewer,
                       discharge_to_city=alloc.discharge_to_city, name=park.name,
                       unconventional_internal=alloc.reclaimed_from_plant)


def balance_table(alloc: Allocation, pb: ParkBalance) -> dict:
    """Per enterprise, plant and the park: intake, reclaimed_in, reused, consumption, discharge, losses (m³/d)."""
    out = {"unit": "m3/d", "enterprises": {}, "plants": {}}
    for f in alloc.enterprises:
        out["enterprises"][f.name] = {
            "intake": f.intake_fresh, "reclaimed_in": f.intake_reclaimed, "reused": f.reused,
            "consumption": f.consumption, "discharge": f.discharge, "losses": f.losses,
            "total_use": f.total_use, "residual": f.residual}
    ww, rp = alloc.wastewater_plant, alloc.reclaimed_plant
    out["plants"]["wastewater"] = {
        "intake": ww.inflow, "reclaimed_in": 0.0, "reused": 0.0, "consumption": 0.0,
        "discharge": ww.outputs["effluent_to_city"] + ww.outputs["overflow_to_city_plant"]
        + ww.outputs["overflow_unhandled"], "losses": ww.losses, "outputs": dict(ww.outputs),
        "residual": ww.residual}
    out["plants"]["reclaimed"] = {
        "intake": rp.inflow, "reclaimed_in": 0.0, "reused": 0.0, "consumption": 0.0,
        "discharge": rp.outputs["brine_to_city"], "losses": rp.losses, "outputs": dict(rp.outputs),
        "residual": rp.residual}
    out["park"] = {
        "intake": pb.intake_fresh, "reclaimed_in": pb.intake_unconventional, "reused": pb.reused,
        "consumption": pb.consumption, "discharge": pb.discharge, "losses": pb.losses,
        "network_losses_fresh": pb.network_losses_fresh,
        "network_losses_reclaimed": pb.network_losses_unconventional,
        "network_losses_sewer": pb.network_losses_sewer,
        "discharge_to_city": pb.discharge_to_city, "total_use": pb.new_water + pb.reused,
        "residual": pb.new_water - (pb.consumption + pb.discharge + pb.losses),
        "reclaimed_from_plant": alloc.reclaimed_from_plant, "reclaimed_from_city": alloc.reclaimed_from_city,
        "reclaimed_to_city": alloc.reclaimed_to_city, "fresh_over_capacity": alloc.fresh_over_capacity,
        "overflow_unhandled": alloc.overflow_unhandled}
    return out
