"""The park's water balance at its boundary, from the hydraulic results: what meters at the fence would read.

The per-unit books (`twin.balance`) close by construction: an enterprise's losses are its intake less
its consumption and discharge. This balance can fail, because its inflows and outflows come from the
solved networks where a meter would stand, and only what no meter sees comes from the books:

* in:  ``fresh_m3d``            the supply network's reservoirs' outflow over the day (municipal intake);
       ``city_reclaimed_m3d``   what the reclaimed network drew at its source beyond the park plant's
                                product (the city's reclaimed water enters at the same station);
* out: ``consumption_m3d``      books: the enterprises' consumption Vco and on-site losses Vl (evaporated,
                                bound in product or lost inside a fence: no park meter sees it);
       ``discharge_to_city_m3d`` the discharge network's outfalls (its reservoirs' inflow) less what the
                                park plants keep: reclaimed product to the park and the export, plant losses;
       ``reclaimed_export_m3d`` the park plant's committed export, as far as the outfall feeds it;
       ``network_leaks_m3d``    every network's leaks from the solver, sewer exfiltration included;
       ``plant_losses_m3d``     the wastewater plant's losses_fraction (park.toml) of what it treated;
* ``storage_change_m3d``        every tank's volume at the end of the day less at its start.

residual = Σin − Σout − storage_change and closure = |residual| / Σin. Written out, the residual is the
enterprises' booked intake that the networks did not deliver (unserved demand, negative), discharge the
sewer did not take, water drawn at junctions no enterprise books (background demands, emitters) and each
network's own mass-balance error (a part cut off from every source): the
`causes`, which sum to the residual and which the report names. Sewer exfiltration and a tank that does
not return to its level are not in the residual (they are network leaks and storage change) but are
causes of books and meters differing, so they are listed too (``in_residual=False``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from parktwin.twin.park_schema import Park

CLOSURE_TOLERANCE = 1e-3          # the boundary balance of a run must close within 0.1 %
# A cause smaller than this share of the intake is solver round-off, not worth naming.
NEGLIGIBLE_FRACTION = 1e-6


@dataclass(frozen=True)
class Cause:
    """One reason books and meters differ, m³/d. `in_residual`: whether it is part of the residual."""
    name: str
    m3d: float
    in_residual: bool
    detail: str

    def as_dict(self) -> dict:
        return {"name": self.name, "m3d": self.m3d, "in_residual": self.in_residual, "detail": self.detail}


@dataclass(frozen=True)
class BoundaryBalance:
    fresh_m3d: float
    city_reclaimed_m3d: float
    consumption_m3d: float
    discharge_to_city_m3d: float
    reclaimed_export_m3d: float
    network_leaks_m3d: float
    plant_losses_m3d: float
    storage_change_m3d: float
    causes: tuple[Cause, ...] = ()
    # Where the parts come from, per network and plant (m³/d), for the report and the meter ledger.
    detail: dict = field(default_factory=dict)

    @property
    def inflow_m3d(self) -> float:
        return math.fsum((self.fresh_m3d, self.city_reclaimed_m3d))

    @property
    def outflow_m3d(self) -> float:
        return math.fsum((self.consumption_m3d, self.discharge_to_city_m3d, self.reclaimed_export_m3d,
                          self.network_leaks_m3d, self.plant_losses_m3d))

    @property
    def residual_m3d(self) -> float:
        return math.fsum((self.fresh_m3d, self.city_reclaimed_m3d, -self.consumption_m3d,
                          -self.discharge_to_city_m3d, -self.reclaimed_export_m3d, -self.network_leaks_m3d,
                          -self.plant_losses_m3d, -self.storage_change_m3d))

    @property
    def closure(self) -> float | None:
        """|residual| / Σin; None when nothing came in."""
        return abs(self.residual_m3d) / self.inflow_m3d if self.inflow_m3d > 0 else None

    @property
    def closes(self) -> bool:
        c = self.closure
        return c is not None and c <= CLOSURE_TOLERANCE

    def as_dict(self) -> dict:
        """The `boundary` object of balance.json."""
        return {
            "unit": "m3/d",
            "in": {"fresh_m3d": self.fresh_m3d, "city_reclaimed_m3d": self.city_reclaimed_m3d},
            "out": {"consumption_m3d": self.consumption_m3d, "discharge_to_city_m3d": self.discharge_to_city_m3d,
                    "reclaimed_export_m3d": self.reclaimed_export_m3d, "network_leaks_m3d": self.network_leaks_m3d,
                    "plant_losses_m3d": self.plant_losses_m3d},
            "storage_change_m3d": self.storage_change_m3d,
            "residual_m3d": self.residual_m3d,
            "closure": self.closure,
            "closure_tolerance": CLOSURE_TOLERANCE,
            "closes": self.closes,
            "causes": [c.as_dict() for c in self.causes],
            "detail": self.detail,
        }


def plant_stage(park: Park, outfall_m3d: float, reclaimed_draw_m3d: float) -> dict:
    """The plants fed by what reached the outfall (m³/d), serving what the reclaimed network drew:
    the same rules as `twin.balance.allocate` (export first, then the park), applied to metered flows."""
    ww, rp = park.wastewater_plant, park.reclaimed_plant
    inflow = max(outfall_m3d, 0.0)
    treated = min(inflow, ww.capacity_m3d)
    losses = ww.losses_fraction * treated
    recovery = rp.recovery_fraction
    max_product = min(rp.capacity_m3d, treated - losses) * recovery
    export = min(park.city.reclaimed_to_city_m3d, max_product)
    to_park = min(max_product - export, max(reclaimed_draw_m3d, 0.0))
    feed = (to_park + export) / recovery
    return {"outfall_m3d": outfall_m3d, "treated_m3d": treated, "overflow_m3d": inflow - treated,
            "reclaimed_feed_m3d": feed, "reclaimed_to_park_m3d": to_park, "reclaimed_export_m3d": export,
            "brine_m3d": feed - to_park - export, "losses_m3d": losses}


def boundary_balance(park: Park, books, service: dict) -> BoundaryBalance:
    """The boundary balance of one run: `books` its `twin.balance.Allocation`, `service` network name ->
    `twin.coupled.NetworkService` (the day's hydraulic figures)."""
    s, r, d = service["supply"], service["reclaimed"], service["discharge"]
    fresh = s.source_outflow_m3d
    outfall = -d.source_outflow_m3d
    plants = plant_stage(park, outfall, r.source_outflow_m3d)
    city_reclaimed = r.source_outflow_m3d - plants["reclaimed_to_park_m3d"]
    consumption = math.fsum(f.consumption + f.losses for f in books.enterprises)
    plant_losses = plants["losses_m3d"]
    discharge = outfall - plants["reclaimed_to_park_m3d"] - plants["reclaimed_export_m3d"] - plant_losses
    leaks = math.fsum(x.leaks_m3d for x in service.values())
    storage = math.fsum(x.storage_change_m3d for x in service.values())
    detail = {
        "networks": {n: {"source_outflow_m3d": x.source_outflow_m3d, "leaks_m3d": x.leaks_m3d,
                         "storage_change_m3d": x.storage_change_m3d, "requested_m3d": x.requested_m3d,
                         "delivered_m3d": x.delivered_m3d} for n, x in service.items()},
        "plants": plants,
        "consumption_parts_m3d": {"consumption": math.fsum(f.consumption for f in books.enterprises),
                                  "enterprise_losses": math.fsum(f.losses for f in books.enterprises)},
        "books_m3d": {"fresh_intake": books.fresh_total, "reclaimed_from_city": books.reclaimed_from_city,
                      "discharge_to_city": books.discharge_to_city},
    }
    return BoundaryBalance(fresh, city_reclaimed, consumption, discharge, plants["reclaimed_export_m3d"], leaks,
                           plant_losses, storage, _causes(service, fresh), detail)


def _causes(service: dict, fresh_m3d: float) -> tuple[Cause, ...]:
    """The named reasons books and meters differ; those `in_residual` sum to the residual exactly."""
    s, r, d = service["supply"], service["reclaimed"], service["discharge"]
    out = [
        Cause("unserved_demand[supply]", s.delivered_m3d - s.requested_m3d, True,
              "fresh water booked to the enterprises that the supply network did not deliver"),
        Cause("unserved_demand[reclaimed]", r.delivered_m3d - r.requested_m3d, True,
              "reclaimed water booked to the enterprises that the reclaimed network did not deliver"),
        Cause("discharge_not_taken", d.requested_m3d - d.delivered_m3d, True,
              "wastewater booked as discharged that the discharge network did not take in"),
    ]
    for name, x in service.items():
        out.append(Cause(f"unbooked_outflow[{name}]", x.unbooked_outflow_m3d, True,
                         "drawn (or, negative, put in) at junctions where no enterprise is booked: background "
                         "demands or emitters of the network file"))
        out.append(Cause(f"network_mass_balance[{name}]", x.closure_residual_m3d, True,
                         "source outflow differs from demands + leaks + storage change: part of the network "
                         "is cut off from every source, or the solver did not converge"))
    out.append(Cause("sewer_exfiltration", d.leaks_m3d, False,
                     "leaks of the discharge network: booked as discharge by the enterprises, never reach the "
                     "outfall (counted in network_leaks_m3d)"))
    for name in ("supply", "reclaimed"):
        out.append(Cause(f"network_leaks[{name}]", service[name].leaks_m3d, False,
                         "real losses of the network: drawn at the source, never reach an enterprise "
                         "(counted in network_leaks_m3d)"))
    for name, x in service.items():
        out.append(Cause(f"tank_storage[{name}]", x.storage_change_m3d, False,
                         "the tanks end the day at another level than they started (counted in "
                         "storage_change_m3d; a periodic run makes it small)"))
    scale = max(abs(fresh_m3d), 1.0) * NEGLIGIBLE_FRACTION
    return tuple(c for c in out if abs(c.m3d) > scale)


def boundary_of(result) -> BoundaryBalance:
    """The boundary balance of a park run (`twin.coupled.run_park`'s result): the entry point for
    reconciling metered readings with the twin."""
    return result.boundary
