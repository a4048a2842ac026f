"""Total dissolved solids (TDS) through the park: a steady salt balance over the allocation's daily flows.

TDS is conservative (no reaction, no decay), so where water of known TDS mixes, the mixture's TDS is the
flow-weighted mean, and a treatment unit only splits salt between its product and its reject. Every
flow here is the allocation's (`twin.balance.Allocation`, the same books as the report's water balance);
only concentrations are added:

* sources (park.toml ``[quality]``, mg/L): the city's fresh water, the city's reclaimed offer, and the
  park wastewater plant's influent. Biological treatment removes no dissolved salts and its losses
  (sludge water, evaporation from the basins) are taken to leave at the same TDS, so the reclaimed
  plant's feed carries the influent's TDS.
* the reclaimed plant's units in series (UF, then RO, ...), each with its recovery r and local salt
  rejection R (``salt_rejection_fraction``, default 0: UF and filters do not desalt). Along a membrane
  the permeate at each point carries (1 - R) times the feed-side concentration there, and the feed side
  concentrates as water leaves it. Integrated over the module (salt balance d(c·(1-x)) = -(1-R)·c·dx
  at recovered fraction x) this gives, for a feed of TDS c_f:

      concentrate  c_c = c_f · (1 - r)^(-R)
      permeate     c_p = c_f · (1 - (1 - r)^(1 - R)) / r

  so feed = permeate + concentrate holds for salt exactly. For R near 1, c_p ≈ (1 - R)·c_f·ln(1/(1-r))/r,
  the textbook log-mean feed-side model; for R = 0 the unit passes its feed's TDS. Lower recovery means a
  less concentrated feed side: slightly cleaner permeate and a weaker brine, and less permeate. The
  permeate given up is the module's last and saltiest, c_f·(1-R)·(1-r)^(-R), so the delivered TDS rises
  when the water replacing it (city offer, fresh) is saltier than that (docs/quality.md).
* brine to the city: every unit's reject together, its TDS from the plant's salt balance
  (feed salt - product salt) / brine flow.
* the reclaimed network has one source (the plant's product pump station, where the city's offer joins
  too), so at steady state every junction gets the same blend of plant product and city water; the supply
  network's sources are all the city's fresh water. A steady blend per network is therefore what EPANET's
  quality engine would reach after the travel time; it is used instead of a 24 h quality run, whose first
  hours would only show the file's initial quality washing out.
* an enterprise's reclaimable grades (cooling make-up, washing, greening) get reclaimed water in the share
  the allocation gave the enterprise, the rest fresh; fresh-only grades get fresh water. Per grade the
  delivered TDS is the blend, checked against GB/T 19923-2005 for its use where the standard has one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType

from parktwin.twin.balance import Allocation
from parktwin.twin.park_schema import FRESH_GRADES, RECLAIMED_GRADES, Park, SourceQuality

TDS_UNIT = "mg/L"
STANDARD = "GB/T 19923-2005, Table 1"


@dataclass(frozen=True)
class UseLimit:
    use: str                  # the standard's name for the use
    tds_max_mg_l: float


# GB/T 19923-2005 Table 1, TDS row (shared reference water-efficiency-domain.md; the 2024 edition's table
# was not available). Greening and domestic water are outside this standard (GB/T 25499, GB 5749): no check.
GBT19923_TDS_LIMITS = MappingProxyType({
    "cooling_makeup": UseLimit("open recirculating cooling make-up", 1000.0),
    "washing": UseLimit("washing", 1000.0),
    "boiler": UseLimit("boiler make-up", 1000.0),
    "process": UseLimit("process and product water", 1000.0),
})


def permeate_factor(recovery: float, rejection: float) -> float:
    """Product TDS / feed TDS of one unit (module docstring); 1 for a unit that rejects no salt."""
    return (1.0 - (1.0 - recovery) ** (1.0 - rejection)) / recovery


def concentrate_factor(recovery: float, rejection: float) -> float:
    """Reject TDS / feed TDS of one unit; at recovery 1 there is no reject, and the factor is infinite."""
    return math.inf if recovery >= 1.0 else (1.0 - recovery) ** (-rejection)


def _blend(parts) -> float | None:
    """Flow-weighted TDS of (m³/d, mg/L) parts; None where no water flows (no concentration to speak of)."""
    volume = math.fsum(q for q, _ in parts)
    if volume <= 0.0:
        return None
    return math.fsum(q * c for q, c in parts if q > 0.0) / volume


@dataclass(frozen=True)
class UnitQuality:
    """One treatment unit's day: flows (m³/d) and TDS (mg/L); TDS None where nothing flows."""
    name: str
    recovery_fraction: float
    salt_rejection_fraction: float
    feed_m3d: float
    feed_tds_mg_l: float
    product_m3d: float
    product_tds_mg_l: float
    reject_m3d: float
    reject_tds_mg_l: float | None


@dataclass(frozen=True)
class GradeQuality:
    grade: str
    need_m3d: float
    reclaimed_m3d: float
    tds_mg_l: float | None
    limit: UseLimit | None        # None: the grade is no use of GB/T 19923

    @property
    def reclaimed_share(self) -> float:
        return self.reclaimed_m3d / self.need_m3d if self.need_m3d > 0 else 0.0

    @property
    def passes(self) -> bool | None:
        if self.limit is None or self.tds_mg_l is None:
            return None
        return self.tds_mg_l <= self.limit.tds_max_mg_l


@dataclass(frozen=True)
class EnterpriseQuality:
    name: str
    intake_m3d: float
    reclaimed_m3d: float
    tds_mg_l: float | None        # intake-weighted over every grade
    grades: tuple[GradeQuality, ...]

    @property
    def reclaimed_share(self) -> float:
        return self.reclaimed_m3d / self.intake_m3d if self.intake_m3d > 0 else 0.0

    @property
    def passes(self) -> bool | None:
        """Every checked grade within its limit (None: nothing to check)."""
        checks = [g.passes for g in self.grades if g.passes is not None]
        return all(checks) if checks else None


@dataclass(frozen=True)
class ParkQuality:
    sources: SourceQuality
    units: tuple[UnitQuality, ...]
    plant_feed_m3d: float
    plant_product_m3d: float
    plant_product_tds_mg_l: float | None
    brine_m3d: float
    brine_tds_mg_l: float | None
    reclaimed_from_plant_m3d: float
    reclaimed_from_city_m3d: float
    reclaimed_network_tds_mg_l: float | None    # the blend every reclaimed junction receives
    discharge_to_city_m3d: float
    discharge_to_city_tds_mg_l: float | None
    enterprises: tuple[EnterpriseQuality, ...]

    @property
    def salt_to_city_kg_d(self) -> float:
        # m³/d x mg/L = g/d
        c = self.discharge_to_city_tds_mg_l
        return 0.0 if c is None else self.discharge_to_city_m3d * c / 1000.0

    def enterprise(self, name: str) -> EnterpriseQuality:
        for e in self.enterprises:
            if e.name == name:
                return e
        raise KeyError(name)

    def failures(self) -> list[dict]:
        """Every grade above its GB/T 19923 limit: enterprise, grade, use, TDS, limit."""
        return [{"enterprise": e.name, "grade": g.grade, "use": g.limit.use, "tds_mg_l": g.tds_mg_l,
                 "limit_mg_l": g.limit.tds_max_mg_l}
                for e in self.enterprises for g in e.grades if g.passes is False]

    def as_dict(self) -> dict:
        return {
            "unit": TDS_UNIT, "standard": STANDARD, "model": "steady flow-weighted salt balance over the "
            "allocation's daily flows; membrane units with constant local rejection (twin/park_quality.py)",
            "sources": {k: getattr(self.sources, k) for k in self.sources.__dataclass_fields__},
            "reclaimed_plant": {
                "feed_m3d": self.plant_feed_m3d, "product_m3d": self.plant_product_m3d,
                "product_tds_mg_l": self.plant_product_tds_mg_l, "brine_m3d": self.brine_m3d,
                "brine_tds_mg_l": self.brine_tds_mg_l,
                "units": [{k: getattr(u, k) for k in u.__dataclass_fields__} for u in self.units]},
            "reclaimed_network": {"from_plant_m3d": self.reclaimed_from_plant_m3d,
                                  "from_city_m3d": self.reclaimed_from_city_m3d,
                                  "tds_mg_l": self.reclaimed_network_tds_mg_l},
            "discharge_to_city": {"m3d": self.discharge_to_city_m3d, "tds_mg_l": self.discharge_to_city_tds_mg_l,
                                  "salt_kg_d": self.salt_to_city_kg_d},
            "enterprises": {e.name: {
                "intake_m3d": e.intake_m3d, "reclaimed_m3d": e.reclaimed_m3d, "reclaimed_share": e.reclaimed_share,
                "tds_mg_l": e.tds_mg_l, "passes": e.passes,
                "grades": {g.grade: {"need_m3d": g.need_m3d, "reclaimed_m3d": g.reclaimed_m3d,
                                     "reclaimed_share": g.reclaimed_share, "tds_mg_l": g.tds_mg_l,
                                     "use": None if g.limit is None else g.limit.use,
                                     "limit_mg_l": None if g.limit is None else g.limit.tds_max_mg_l,
                                     "passes": g.passes} for g in e.grades}}
                for e in self.enterprises},
            "failures": self.failures()}


def _units(park: Park, feed_m3d: float, feed_tds: float) -> tuple[UnitQuality, ...]:
    out = []
    q, c = feed_m3d, feed_tds
    for u in park.reclaimed_plant.units:
        r, rej = u.recovery_fraction, u.salt_rejection_fraction
        product, reject = q * r, q * (1.0 - r)
        c_p = c * permeate_factor(r, rej)
        c_r = c * concentrate_factor(r, rej) if r < 1.0 else None
        out.append(UnitQuality(u.name, r, rej, q, c, product, c_p, reject, c_r))
        q, c = product, c_p
    return tuple(out)


def _enterprise(e, f, fresh_tds: float, reclaimed_tds: float | None) -> EnterpriseQuality:
    reclaimable = e.needs.reclaimable_m3d
    # The allocation gives one reclaimed share per enterprise; its grades share it in proportion to need.
    share = f.intake_reclaimed / reclaimable if reclaimable > 0 else 0.0
    grades = []
    for g in FRESH_GRADES + RECLAIMED_GRADES:
        need = getattr(e.needs, f"{g}_m3d")
        if need <= 0.0:
            continue
        reclaimed = need * share if g in RECLAIMED_GRADES else 0.0
        parts = [(need - reclaimed, fresh_tds)]
        if reclaimed > 0.0:
            parts.append((reclaimed, reclaimed_tds))
        grades.append(GradeQuality(g, need, reclaimed, _blend(parts), GBT19923_TDS_LIMITS.get(g)))
    parts = [(f.intake_fresh, fresh_tds)] + ([(f.intake_reclaimed, reclaimed_tds)] if f.intake_reclaimed > 0 else [])
    return EnterpriseQuality(e.name, f.intake, f.intake_reclaimed, _blend(parts), tuple(grades))


def park_quality(park: Park, alloc: Allocation) -> ParkQuality | None:
    """The park's TDS balance on the allocation's flows; None for a park without a [quality] table."""
    src = park.quality
    if src is None:
        return None
    rp, ww = alloc.reclaimed_plant, alloc.wastewater_plant
    feed, feed_tds = rp.inflow, src.wastewater_tds_mg_l
    units = _units(park, feed, feed_tds)
    product = rp.outputs["reclaimed_to_park"] + rp.outputs["reclaimed_to_city"]
    brine = rp.outputs["brine_to_city"]
    # With no feed the plant makes nothing, and its product has no TDS; the chain's factors still hold.
    product_tds = units[-1].product_tds_mg_l if feed > 0.0 else None
    brine_tds = (feed * feed_tds - product * product_tds) / brine if brine > 0.0 and product_tds is not None else None
    reclaimed_tds = _blend([(alloc.reclaimed_from_plant, product_tds if product_tds is not None else 0.0),
                            (alloc.reclaimed_from_city, src.city_reclaimed_tds_mg_l)])
    to_city = [(ww.outputs["effluent_to_city"] + ww.outputs["overflow_to_city_plant"], src.wastewater_tds_mg_l)]
    if brine_tds is not None:
        to_city.append((brine, brine_tds))
    enterprises = tuple(_enterprise(e, f, src.city_fresh_tds_mg_l, reclaimed_tds)
                        for e, f in zip(park.enterprises, alloc.enterprises))
    return ParkQuality(
        sources=src, units=units, plant_feed_m3d=feed, plant_product_m3d=product, plant_product_tds_mg_l=product_tds,
        brine_m3d=brine, brine_tds_mg_l=brine_tds, reclaimed_from_plant_m3d=alloc.reclaimed_from_plant,
        reclaimed_from_city_m3d=alloc.reclaimed_from_city, reclaimed_network_tds_mg_l=reclaimed_tds,
        discharge_to_city_m3d=math.fsum(q for q, _ in to_city), discharge_to_city_tds_mg_l=_blend(to_city),
        enterprises=enterprises)


def quality_figures(q: ParkQuality) -> dict:
    """The figures a what-if compares: key -> (value, unit)."""
    out = {"plant_product_tds": (q.plant_product_tds_mg_l, TDS_UNIT), "plant_product": (q.plant_product_m3d, "m3/d"),
           "brine_tds": (q.brine_tds_mg_l, TDS_UNIT), "brine": (q.brine_m3d, "m3/d"),
           "reclaimed_network_tds": (q.reclaimed_network_tds_mg_l, TDS_UNIT),
           "discharge_to_city_tds": (q.discharge_to_city_tds_mg_l, TDS_UNIT),
           "salt_to_city": (q.salt_to_city_kg_d, "kg/d"), "gbt19923_failures": (len(q.failures()), "grades")}
    for e in q.enterprises:
        out[f"delivered_tds[{e.name}]"] = (e.tds_mg_l, TDS_UNIT)
        out[f"reclaimed_share[{e.name}]"] = (e.reclaimed_share, "fraction")
        for g in e.grades:
            if g.grade in RECLAIMED_GRADES:
                out[f"delivered_tds[{e.name}.{g.grade}]"] = (g.tds_mg_l, TDS_UNIT)
    return out


def compare_quality(base: ParkQuality | None, changed: ParkQuality | None) -> dict:
    """key -> {before, after, change, unit}, as twin.whatif.compare; {} when neither park models TDS.
    A side without the figure (no [quality], an enterprise only one park has, no flow) is None."""
    before = quality_figures(base) if base is not None else {}
    after = quality_figures(changed) if changed is not None else {}
    out = {}
    for key in list(before) + [k for k in after if k not in before]:
        b, unit = before.get(key, (None, None))
        a, unit_after = after.get(key, (None, None))
        out[key] = {"before": b, "after": a, "change": None if a is None or b is None else a - b,
                    "unit": unit or unit_after}
    return out
