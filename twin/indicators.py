"""Water-efficiency indicators of a park water balance (daily volumes, m³/d).

Two inflow totals are kept apart on purpose (docs/indicators.md explains the choice):

* ``intake`` Vi (取水量) counts conventional sources only: surface, ground, municipal water. The quota
  table and the water-per-10,000-yuan indicator measure pressure on these resources.
* ``new water`` Vn = Vi + Vu adds unconventional water Vu (reclaimed, rain, mine water). A cubic metre of
  reclaimed water is used, lost or discharged like a fresh one, so the indicators that describe how water
  flows through the system (reuse, leakage, discharge rates, balance closure) divide by Vn. With Vu = 0
  they are the textbook formulas of GB/T 7119 / GB/T 12452.

Every function returns an ``Indicator``; a zero denominator gives ``value=None`` and a ``reason``.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

from parktwin.twin.quotas import quota_for

RATE = "fraction"
VOLUME_FIELDS = ("intake_fresh", "intake_unconventional", "reused", "consumption", "discharge", "losses")
DENOMINATORS = ("intake_plus_unconventional", "intake")
CLASSIFICATIONS = ("unconventional", "reuse")   # what the park plant's reclaimed water counts as
# Domain notes (water-efficiency-domain.md §1): unit intakes must close against metered totals within 10 %.
BALANCE_TOLERANCE = 0.10


def _check_volume(owner: str, name: str, value, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{owner}: field {name!r} must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True)
class EnterpriseBalance:
    """One enterprise's daily water balance. ``sector`` is a key of twin.quotas or None (no quota)."""

    name: str
    intake_fresh: float                 # Vi, conventional sources
    intake_unconventional: float = 0.0  # Vu: reclaimed (park plant or city), rainwater, mine water
    reused: float = 0.0                 # Vr: recirculation + cascade (series) use
    consumption: float = 0.0            # Vco
    discharge: float = 0.0              # Vd, to the park sewer
    losses: float = 0.0                 # Vl, inside the enterprise
    product_output: float | None = None  # units of product per day
    product_unit: str | None = None
    value_added: float | None = None    # 10,000 yuan per day
    sector: str | None = None

    def __post_init__(self):
        owner = f"enterprise {self.name!r}"
        for f in VOLUME_FIELDS:
            _check_volume(owner, f, getattr(self, f))
        _check_volume(owner, "product_output", self.product_output, allow_none=True)
        _check_volume(owner, "value_added", self.value_added, allow_none=True)
        if self.sector is not None:
            try:
                q = quota_for(self.sector)
            except ValueError as exc:
                raise ValueError(f"{owner}: field 'sector': {exc}") from None
            # A quota per kL compared with output in t would be silently wrong by the density.
            if self.product_unit is not None and self.product_unit != q.unit:
                raise ValueError(f"{owner}: field 'product_unit' is {self.product_unit!r} but the "
                                 f"{self.sector!r} quota is per {q.unit!r}")

    @property
    def new_water(self) -> float:
        return self.intake_fresh + self.intake_unconventional


@dataclass(frozen=True)
class ParkBalance:
    """The park: its enterprises plus what happens in the park's own networks."""

    enterprises: tuple[EnterpriseBalance, ...]
    network_losses_fresh: float = 0.0          # leaks in the park's fresh-water network
    network_losses_unconventional: float = 0.0  # leaks in the reclaimed-water network
    # Exfiltration from the discharge network: discharged by the enterprises, never reaching a plant, so
    # at park level a loss and not discharge.
    network_losses_sewer: float = 0.0
    discharge_to_city: float = 0.0             # park sewer / plant effluent sent to the city
    name: str = "park"
    # Of intake_unconventional: reclaimed water the park's own plant made from the park's wastewater.
    # Whether it is unconventional water or reuse is a classification (CLASSIFICATIONS); at the
    # boundary it is neither: it never crossed the fence.
    unconventional_internal: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "enterprises", tuple(self.enterprises))
        owner = f"park {self.name!r}"
        for e in self.enterprises:
            if not isinstance(e, EnterpriseBalance):
                raise ValueError(f"{owner}: field 'enterprises' must hold EnterpriseBalance, got {type(e).__name__}")
        for f in ("network_losses_fresh", "network_losses_unconventional", "network_losses_sewer",
                  "discharge_to_city", "unconventional_internal"):
            _check_volume(owner, f, getattr(self, f))
        if self.unconventional_internal > self.intake_unconventional * (1 + 1e-12) + 1e-9:
            raise ValueError(f"{owner}: field 'unconventional_internal' ({self.unconventional_internal:g}) exceeds "
                             f"the unconventional intake ({self.intake_unconventional:g})")
        names = [e.name for e in self.enterprises]
        if len(set(names)) != len(names):
            raise ValueError(f"{owner}: enterprise names must be unique, got {names}")

    def _sum(self, f: str) -> float:
        return math.fsum(getattr(e, f) for e in self.enterprises)

    # Network leaks are drawn from the source before reaching an enterprise, so they belong to the
    # park's intake (fresh network) or unconventional supply (reclaimed network).
    @property
    def intake_fresh(self) -> float:
        return self._sum("intake_fresh") + self.network_losses_fresh

    @property
    def intake_unconventional(self) -> float:
        return self._sum("intake_unconventional") + self.network_losses_unconventional

    @property
    def reused(self) -> float:
        return self._sum("reused")

    @property
    def consumption(self) -> float:
        return self._sum("consumption")

    @property
    def discharge(self) -> float:
        return max(self._sum("discharge") - self.network_losses_sewer, 0.0)

    @property
    def losses(self) -> float:
        return (self._sum("losses") + self.network_losses_fresh + self.network_losses_unconventional
                + self.network_losses_sewer)

    @property
    def new_water(self) -> float:
        return self.intake_fresh + self.intake_unconventional

    @property
    def value_added(self) -> float | None:
        vals = [e.value_added for e in self.enterprises]
        return None if not vals or any(v is None for v in vals) else math.fsum(vals)

    @property
    def boundary_new_water(self) -> float:
        """What crossed the fence as supply: conventional intake and unconventional water from outside."""
        return self.intake_fresh + self.intake_unconventional - self.unconventional_internal


@dataclass(frozen=True)
class ClassifiedVolumes:
    """A park's Vi, Vu, Vr under one classification of its own plant's reclaimed water."""
    classification: str
    intake_fresh: float
    intake_unconventional: float
    reused: float

    @property
    def new_water(self) -> float:
        return self.intake_fresh + self.intake_unconventional


def classified(b: ParkBalance, classification: str) -> ClassifiedVolumes:
    """"unconventional": the park plant's product is Vu (GB/T 7119 non-conventional water: reclaimed
    water, whatever its origin); "reuse": it is Vr (the park's wastewater treated and used again in the
    park, as an enterprise counts its own treated reuse)."""
    if classification == "unconventional":
        return ClassifiedVolumes(classification, b.intake_fresh, b.intake_unconventional, b.reused)
    if classification == "reuse":
        return ClassifiedVolumes(classification, b.intake_fresh, b.intake_unconventional - b.unconventional_internal,
                                 b.reused + b.unconventional_internal)
    raise ValueError(f"park reclaimed water classification must be one of {CLASSIFICATIONS}, got {classification!r}")


@dataclass(frozen=True)
class Indicator:
    name: str
    value: float | None
    unit: str
    formula: str
    target: float | None = None
    sense: str = "min"          # "min": value >= target is met; "max": value <= target is met
    reason: str | None = None   # why value is None
    extra: dict = field(default_factory=dict)

    @property
    def met(self) -> bool | None:
        if self.target is None or self.value is None:
            return None
        return self.value >= self.target if self.sense == "min" else self.value <= self.target

    def as_dict(self) -> dict:
        d = {"value": self.value, "unit": self.unit, "target": self.target, "met": self.met,
             "formula": self.formula, "reason": self.reason}
        d.update(self.extra)
        return d


def _ratio(name, num, den, unit, formula, target=None, sense="min", why_zero="denominator is zero", **extra):
    if den <= 0:
        return Indicator(name, None, unit, formula, target, sense, reason=why_zero, extra=extra)
    return Indicator(name, num / den, unit, formula, target, sense, extra=extra)


def reuse_rate(b, target: float | None = None) -> Indicator:
    """R = Vr / (Vi + Vu + Vr): share of all water used that is reused (recirculation + cascade)."""
    return _ratio("reuse_rate", b.reused, b.new_water + b.reused, RATE,
                  "R = Vr / (Vi + Vu + Vr)", target, why_zero="no water used (Vi + Vu + Vr = 0)")


def substitution_rate(b, denominator: str = "intake_plus_unconventional",
                      target: float | None = None) -> Indicator:
    """Unconventional-water substitution: Vu/(Vi+Vu) (GB/T 7119 default) or Vu/Vi (some 节水型社会 indicators)."""
    if denominator == "intake_plus_unconventional":
        return _ratio("substitution_rate", b.intake_unconventional, b.new_water, RATE, "Ru = Vu / (Vi + Vu)",
                      target, why_zero="no water drawn (Vi + Vu = 0)", denominator=denominator)
    if denominator == "intake":
        return _ratio("substitution_rate", b.intake_unconventional, b.intake_fresh, RATE, "Ru = Vu / Vi",
                      target, why_zero="conventional intake Vi is zero", denominator=denominator)
    raise ValueError(f"denominator must be one of {DENOMINATORS}, got {denominator!r}")


def intake_per_unit_product(e: EnterpriseBalance, quota_year: str = "2020") -> Indicator:
    """Vi / Q against the sector's Hunan-plan benchmark (met when at or below it)."""
    q = quota_for(e.sector) if e.sector is not None else None
    unit = f"m3/{q.unit}" if q else f"m3/{e.product_unit or 'unit'}"
    extra = {"enterprise": e.name, "sector": e.sector,
             "quota_source": q.source if q else None, "quota_year": quota_year if q else None}
    target = q.quota(quota_year) if q else None
    if e.product_output is None:
        return Indicator("intake_per_unit_product", None, unit, "Vui = Vi / Q", target, "max",
                         reason="product output not given", extra=extra)
    return _ratio("intake_per_unit_product", e.intake_fresh, e.product_output, unit, "Vui = Vi / Q",
                  target, "max", why_zero="product output Q is zero", **extra)


@dataclass(frozen=True)
class IntensityBaseline:
    """Water per 10,000 yuan of value added in a baseline year, and the relative target against it
    (the Hunan plan: -16 % by 2025 against 2020). Value added must be on the same price basis."""
    value_m3_per_10k_yuan: float
    year: int = 2020
    price_basis: str = "constant 2020 prices"
    reduction_fraction: float = 0.16

    def __post_init__(self):
        if not (math.isfinite(self.value_m3_per_10k_yuan) and self.value_m3_per_10k_yuan > 0):
            raise ValueError(f"baseline water per 10,000 yuan must be > 0, got {self.value_m3_per_10k_yuan!r}")
        if not 0.0 <= self.reduction_fraction < 1.0:
            raise ValueError(f"reduction_fraction must be in [0, 1), got {self.reduction_fraction!r}")

    @property
    def target(self) -> float:
        return self.value_m3_per_10k_yuan * (1.0 - self.reduction_fraction)


def water_per_10k_yuan(b, target: float | None = None, baseline: IntensityBaseline | None = None) -> Indicator:
    """Vi / value added (10,000 yuan): new conventional water only, reuse excluded. With a baseline the
    target is the baseline less its relative reduction, and the change against the baseline is given."""
    extra = {}
    if baseline is not None:
        target = baseline.target if target is None else target
        extra = {"baseline": baseline.value_m3_per_10k_yuan, "baseline_year": baseline.year,
                 "price_basis": baseline.price_basis, "reduction_target": baseline.reduction_fraction}
    if b.value_added is None:
        return Indicator("water_per_10k_yuan", None, "m3/10^4 yuan", "W = Vi / VA", target, "max",
                         reason="value added not given (for every enterprise)", extra=extra)
    ind = _ratio("water_per_10k_yuan", b.intake_fresh, b.value_added, "m3/10^4 yuan", "W = Vi / VA",
                 target, "max", why_zero="value added is zero", **extra)
    if baseline is not None and ind.value is not None:
        ind.extra["change_vs_baseline"] = ind.value / baseline.value_m3_per_10k_yuan - 1.0
    elif baseline is None and b is not None and isinstance(b, ParkBalance):
        ind.extra["reason_no_target"] = "no baseline year given: the plan's target is relative (-16 % vs 2020)"
    return ind


REAL_LOSSES = ("real losses: physical leaks and on-site losses; apparent losses (meter error, unbilled "
               "use) are not modelled")


def leakage_rate(b, target: float | None = None) -> Indicator:
    """Kl = Vl / (Vi + Vu) (GB/T 7119 用水综合漏失率); for a park Vl includes the leaks of its fresh,
    reclaimed and discharge networks. Real losses only."""
    return _ratio("leakage_rate", b.losses, b.new_water, RATE, "Kl = Vl / (Vi + Vu)", target, "max",
                  why_zero="no water drawn (Vi + Vu = 0)", label=REAL_LOSSES)


def network_leakage_rate(network: str, leaks_m3d: float, delivered_m3d: float,
                         target: float | None = None) -> Indicator:
    """CJJ 92-2016 R_WL = (Qs - Qa) / Qs of one pipe network: Qs what entered it, Qa what reached users."""
    return _ratio("network_leakage_rate", leaks_m3d, delivered_m3d + leaks_m3d, RATE,
                  "R_WL = (Qs - Qa) / Qs = leaks / (delivered + leaks)", target, "max",
                  why_zero="nothing entered the network", network=network, leaks_m3d=leaks_m3d,
                  label="real losses of the pipe network (CJJ 92-2016 R_WL before corrections)")


def low_pressure_junctions(network: str, count: int, min_pressure_m: float) -> Indicator:
    """Junctions whose pressure fell below the service pressure during the run (target: none)."""
    return Indicator("low_pressure_junctions", float(count), "junctions", f"count(p_min < {min_pressure_m:g} m)",
                     0.0, "max", extra={"network": network, "min_pressure_m": min_pressure_m})


def unserved_demand(network: str, unserved_m3d: float) -> Indicator:
    """Enterprise demand the network could not deliver (pressure-driven runs, failures), m³/d."""
    return Indicator("unserved_demand", unserved_m3d, "m3/d", "requested - delivered", 0.0, "max",
                     extra={"network": network})


def discharge_to_city(p: ParkBalance, target: float | None = None) -> Indicator:
    """Volume sent to the city (m³/d) and, as extra, the discharge rate at the park boundary (GB/T 7119
    Kd = Vd / Vi): over what crossed the fence as supply, not over the park plant's loop as well."""
    den = p.boundary_new_water
    share = p.discharge_to_city / den if den > 0 else None
    return Indicator("discharge_to_city", p.discharge_to_city, "m3/d", "Vd,city (metered)", target, "max",
                     extra={"discharge_rate": share,
                            "discharge_rate_formula": "Kd = Vd,city / (Vi + Vu,city) at the park boundary"})


def balance_closure(e: EnterpriseBalance) -> Indicator:
    """Relative residual of Vi + Vu = Vco + Vd + Vl; met when within BALANCE_TOLERANCE."""
    residual = e.new_water - (e.consumption + e.discharge + e.losses)
    return _ratio("balance_closure", abs(residual), e.new_water, RATE, "|Vi + Vu - (Vco + Vd + Vl)| / (Vi + Vu)",
                  BALANCE_TOLERANCE, "max", why_zero="no water drawn (Vi + Vu = 0)", enterprise=e.name,
                  residual_m3d=residual)


@dataclass(frozen=True)
class Targets:
    """Defaults from the Hunan plan (三、主要目标 and task 10); None means report without a target."""

    reuse_rate: float | None = 0.94           # 规模以上工业用水重复利用率 "94 % 左右"
    substitution_rate: float | None = 0.10    # 工业园区非常规水源替代率 >= 10 %
    substitution_denominator: str = "intake_plus_unconventional"
    quota_year: str = "2020"                  # "2020" provincial averages or "2025" expectations
    water_per_10k_yuan: float | None = None   # an absolute target; or give a baseline:
    water_per_10k_yuan_baseline: IntensityBaseline | None = None   # the plan's -16 % vs 2020
    leakage_rate: float | None = None
    discharge_to_city: float | None = None    # m³/d, e.g. the permitted discharge
    park_reclaimed_as: str = "unconventional"  # CLASSIFICATIONS: the park plant's reclaimed water


def _both(kind: str, b: ParkBalance, t: Targets) -> Indicator:
    """Reuse or substitution rate under the park's classification, the other classification as extra."""
    def one(how):
        v = classified(b, how)
        if kind == "reuse_rate":
            return reuse_rate(v, t.reuse_rate)
        return substitution_rate(v, t.substitution_denominator, t.substitution_rate)
    ind = one(t.park_reclaimed_as)
    other = CLASSIFICATIONS[1 - CLASSIFICATIONS.index(t.park_reclaimed_as)]
    alt = one(other)
    ind.extra.update({"park_reclaimed_as": t.park_reclaimed_as, "scope": "park",
                      "other_classification": {"park_reclaimed_as": other, "value": alt.value, "met": alt.met}})
    return ind


def evaluate(balance: ParkBalance, targets: Targets = Targets()) -> dict:
    """Every indicator as {key: {value, unit, target, met, formula, reason, ...}}.

    Park-level keys are the indicator names; per-enterprise keys are "<indicator>[<enterprise>]". The
    reuse and substitution targets are park-level (the plan's 94 % is a provincial aggregate for
    industry above designated size, its 10 % a park target), so an enterprise's rates carry no target;
    an enterprise is judged against its sector's quota (intake per unit of product).
    """
    t = targets
    if t.park_reclaimed_as not in CLASSIFICATIONS:
        raise ValueError(f"park_reclaimed_as must be one of {CLASSIFICATIONS}, got {t.park_reclaimed_as!r}")
    inds = [
        _both("reuse_rate", balance, t),
        _both("substitution_rate", balance, t),
        water_per_10k_yuan(balance, t.water_per_10k_yuan, t.water_per_10k_yuan_baseline),
        leakage_rate(balance, t.leakage_rate),
        discharge_to_city(balance, t.discharge_to_city),
    ]
    out = {i.name: i.as_dict() for i in inds}
    for e in balance.enterprises:
        for i in (reuse_rate(e),
                  substitution_rate(e, t.substitution_denominator),
                  intake_per_unit_product(e, t.quota_year),
                  water_per_10k_yuan(e),
                  leakage_rate(e),
                  balance_closure(e)):
            out[f"{i.name}[{e.name}]"] = i.as_dict()
    return out
