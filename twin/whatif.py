"""What-if operations on a park: pure edits of the frozen `Park`, then compare two runs.

    new = apply(park, [ExpandEnterprise("paper_mill", 1.3), CityReclaimedOffer(4000)])
    deltas = compare(run_park(park), run_park(new))

Each operation is a frozen dataclass; `apply` validates it against the park and returns a new Park
(built with dataclasses.replace, the input is never changed). A bad operation raises `WhatIfError`
"<Operation>: <field>: <reason>".

Modelling choices:

* ExpandEnterprise scales annual output, value added, every water need and the recycling volumes by
  the same factor (same technology, more of it); fractions, shift hours and junctions are kept.
* PlantOutage is the plant at zero capacity: a wastewater plant out sends all the park's wastewater to
  the city plant (and so feeds no reclaimed water); a reclaimed plant out produces nothing, so the park
  is served by the city's reclaimed offer and fresh water, and the export to the city stops.
* JunctionLeak, PumpOutage and Perturbation are hydraulic: they add perturbation rows
  (`Park.hydraulic_changes`) to one of the park's networks, checked against that network here, and
  `twin.coupled.run_park` applies them on top of the enterprise demands. A pump out of service is its
  link closed (`status closed`; the network's own controls may still restart it, as in EPANET). Demand
  attributes are refused: the park's demands come from its enterprises (ExpandEnterprise, AddEnterprise).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace
from pathlib import Path

from parktwin.twin.park_schema import (
    NETWORKS, SHIFT_HOURS, Enterprise, HydraulicChange, Park, ParkError, Recycling, WaterNeeds,
)

# The park's demands come from its enterprises; rows on these would fight the allocation.
DEMAND_ATTRIBUTES = ("demand_multiplier", "base_demand_m3s")

PLANTS = ("wastewater", "reclaimed")


class WhatIfError(ValueError):
    """A what-if operation does not fit the park; the message reads "<Operation>: <field>: <reason>"."""

    def __init__(self, operation: object, field: str, reason: str):
        op = type(operation).__name__
        super().__init__(f"{op}: {field}: {reason}")
        self.operation, self.field, self.reason = operation, field, reason


@dataclass(frozen=True)
class ExpandEnterprise:
    name: str
    factor: float           # 1.3 = +30 % output, value added, water needs and recycling


@dataclass(frozen=True)
class AddEnterprise:
    enterprise: Enterprise  # its junctions must exist in the park's networks


@dataclass(frozen=True)
class PlantCapacity:
    plant: str              # "wastewater" | "reclaimed"
    capacity_m3d: float


@dataclass(frozen=True)
class PlantRecovery:
    unit: str               # name of a treatment unit of the reclaimed plant
    recovery_fraction: float


@dataclass(frozen=True)
class PlantOutage:
    plant: str              # "wastewater" | "reclaimed"


@dataclass(frozen=True)
class CityReclaimedOffer:
    m3d: float


@dataclass(frozen=True)
class CityFreshHead:
    """The municipal supply head at the park boundary (the park must name city.fresh_reservoir)."""
    head_m: float


@dataclass(frozen=True)
class JunctionLeak:
    """An orifice leak at a junction of one network: q = Cd·A·sqrt(2·g·p)."""
    network: str
    junction: str
    area_m2: float
    discharge_coefficient: float = 0.75


@dataclass(frozen=True)
class PumpOutage:
    network: str
    pump: str


@dataclass(frozen=True)
class Perturbation:
    """A raw perturbation row on one of the park's networks (attributes of the perturbation table)."""
    network: str
    element: str
    attribute: str
    value: str | float


Operation = (ExpandEnterprise | AddEnterprise | PlantCapacity | PlantRecovery | PlantOutage
             | CityReclaimedOffer | CityFreshHead | JunctionLeak | PumpOutage | Perturbation)


def _number(op, field: str, lo: float = 0.0, hi: float | None = None, lo_open: bool = False) -> float:
    value = getattr(op, field)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise WhatIfError(op, field, f"expected a finite number, got {value!r}")
    value = float(value)
    if value < lo or (lo_open and value == lo):
        raise WhatIfError(op, field, f"must be {'>' if lo_open else '>='} {lo:g}, got {value:g}")
    if hi is not None and value > hi:
        raise WhatIfError(op, field, f"must be <= {hi:g}, got {value:g}")
    return value


def _plant(op) -> str:
    if op.plant not in PLANTS:
        raise WhatIfError(op, "plant", f"unknown plant {op.plant!r} (valid: {', '.join(PLANTS)})")
    return op.plant


def _enterprise_index(park: Park, op) -> int:
    for i, e in enumerate(park.enterprises):
        if e.name == op.name:
            return i
    names = ", ".join(e.name for e in park.enterprises)
    raise WhatIfError(op, "name", f"unknown enterprise {op.name!r} (park has: {names})")


def _scale(obj, factor: float):
    return replace(obj, **{f: getattr(obj, f) * factor for f in obj.__dataclass_fields__})


def _expand(park: Park, op: ExpandEnterprise) -> Park:
    factor = _number(op, "factor")
    i = _enterprise_index(park, op)
    e = park.enterprises[i]
    new = replace(e, annual_output=e.annual_output * factor, value_added_10k_yuan=e.value_added_10k_yuan * factor,
                  needs=_scale(e.needs, factor), recycling=_scale(e.recycling, factor))
    return replace(park, enterprises=park.enterprises[:i] + (new,) + park.enterprises[i + 1:])


def _add(park: Park, op: AddEnterprise) -> Park:
    e = op.enterprise
    if not isinstance(e, Enterprise):
        raise WhatIfError(op, "enterprise", f"expected an Enterprise, got {type(e).__name__}")
    if any(x.name == e.name for x in park.enterprises):
        raise WhatIfError(op, "enterprise.name", f"the park already has an enterprise {e.name!r}")
    if not isinstance(e.needs, WaterNeeds) or not isinstance(e.recycling, Recycling):
        raise WhatIfError(op, "enterprise.needs", "needs must be WaterNeeds and recycling Recycling")
    for owner, obj in (("needs", e.needs), ("recycling", e.recycling)):
        for f in obj.__dataclass_fields__:
            v = getattr(obj, f)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0:
                raise WhatIfError(op, f"enterprise.{owner}.{f}", f"must be a finite number >= 0, got {v!r}")
    for f in ("annual_output", "value_added_10k_yuan", "consumption_fraction", "discharge_fraction"):
        v = getattr(e, f)
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0:
            raise WhatIfError(op, f"enterprise.{f}", f"must be a finite number >= 0, got {v!r}")
    if e.consumption_fraction + e.discharge_fraction > 1.0 + 1e-12:
        raise WhatIfError(op, "enterprise.discharge_fraction",
                          f"consumption_fraction + discharge_fraction must be <= 1, got "
                          f"{e.consumption_fraction + e.discharge_fraction:g}")
    if e.shift_hours not in SHIFT_HOURS:
        raise WhatIfError(op, "enterprise.shift_hours", f"must be one of {SHIFT_HOURS}, got {e.shift_hours!r}")
    missing = [n for n in NETWORKS if n not in e.junctions]
    if missing:
        raise WhatIfError(op, "enterprise.junctions", f"needs a junction in every network, missing {missing}")
    from parktwin.twin.park import _check_networks   # the loader's own junction check (touches the .inp files)
    try:
        _check_networks(Path(park.folder), (e,), park.city)
    except ParkError as exc:
        raise WhatIfError(op, "enterprise.junctions", str(exc)) from exc
    return replace(park, enterprises=park.enterprises + (e,))


def _capacity(park: Park, op: PlantCapacity) -> Park:
    plant = _plant(op)
    cap = _number(op, "capacity_m3d")
    if plant == "wastewater":
        return replace(park, wastewater_plant=replace(park.wastewater_plant, capacity_m3d=cap))
    return replace(park, reclaimed_plant=replace(park.reclaimed_plant, capacity_m3d=cap))


def _recovery(park: Park, op: PlantRecovery) -> Park:
    # Recovery 0 is a plant that produces nothing: use PlantOutage for that (the balance divides by it).
    r = _number(op, "recovery_fraction", lo=0.0, hi=1.0, lo_open=True)
    units = park.reclaimed_plant.units
    if op.unit not in [u.name for u in units]:
        raise WhatIfError(op, "unit", f"unknown treatment unit {op.unit!r} "
                                      f"(reclaimed plant has: {', '.join(u.name for u in units)})")
    units = tuple(replace(u, recovery_fraction=r) if u.name == op.unit else u for u in units)
    return replace(park, reclaimed_plant=replace(park.reclaimed_plant, units=units))


def _outage(park: Park, op: PlantOutage) -> Park:
    return _capacity(park, PlantCapacity(_plant(op), 0.0))


def _offer(park: Park, op: CityReclaimedOffer) -> Park:
    return replace(park, city=replace(park.city, reclaimed_offer_m3d=_number(op, "m3d")))


def _fresh_head(park: Park, op: CityFreshHead) -> Park:
    head = _number(op, "head_m", lo=-1e4)
    if park.city.fresh_reservoir is None:
        raise WhatIfError(op, "head_m", "the park does not name its municipal reservoir (city.fresh_reservoir "
                                        "in park.toml), so the city's head is not applied to supply.inp")
    return replace(park, city=replace(park.city, fresh_head_m=head))


def _network(park: Park, op):
    if op.network not in NETWORKS:
        raise WhatIfError(op, "network", f"unknown network {op.network!r} (valid: {', '.join(NETWORKS)})")
    from parktwin.hydraulics.compile import load_network
    return load_network(park.network_path(op.network))


def _with_rows(park: Park, op, rows: list[tuple[str, str, str]], field_of: dict[str, str]) -> Park:
    """Add (element, attribute, value) rows on op.network after checking them against that network and
    against the rows already there; an error names the operation's field."""
    from parktwin.scenarios.perturbations import PerturbationError, PerturbationTable
    net = _network(park, op)
    for element, attribute, _ in rows:
        if attribute in DEMAND_ATTRIBUTES:
            raise WhatIfError(op, field_of.get("attribute", "attribute"),
                              f"{attribute} is not a park what-if: the park's demands come from its enterprises "
                              "(use ExpandEnterprise or AddEnterprise)")
    earlier = [(c.element, c.attribute, c.value) for c in park.hydraulic_changes if c.network == op.network]
    table_rows = [("what-if", *r) for r in earlier + rows]
    try:
        PerturbationTable.from_rows(table_rows, source=op.network).validate(net)
    except PerturbationError as exc:
        row = (exc.row_number or 1) - 1 - len(earlier)
        reason = exc.reason
        if "repeats row" in reason:
            element, attribute, _ = rows[max(row, 0)]
            raise WhatIfError(op, field_of.get("element", "element"),
                              f"{attribute} of {element!r} is already set by an earlier operation") from None
        if reason.startswith("unknown attribute"):
            kind = "attribute"
        elif "value" in reason or "range" in reason:
            kind = "value"
        else:
            kind = "element"
        raise WhatIfError(op, field_of.get(kind, kind), reason) from None
    changes = tuple(HydraulicChange(op.network, e, a, v) for e, a, v in rows)
    return replace(park, hydraulic_changes=park.hydraulic_changes + changes)


def _leak(park: Park, op: JunctionLeak) -> Park:
    area = _number(op, "area_m2", lo_open=True)
    cd = _number(op, "discharge_coefficient", lo_open=True, hi=1.0)
    rows = [(op.junction, "leak_area_m2", repr(area))]
    if cd != 0.75:
        rows.append((op.junction, "leak_cd", repr(cd)))
    return _with_rows(park, op, rows, {"element": "junction", "value": "area_m2"})


def _pump_outage(park: Park, op: PumpOutage) -> Park:
    net = _network(park, op)
    pumps = [net.link_ids[k] for k in net.pump_link]
    if op.pump not in pumps:
        raise WhatIfError(op, "pump", f"{op.pump!r} is not a pump of {op.network}.inp "
                                      f"(its pumps: {', '.join(pumps) if pumps else 'none'})")
    return _with_rows(park, op, [(op.pump, "status", "closed")], {"element": "pump"})


def _raw(park: Park, op: Perturbation) -> Park:
    value = op.value if isinstance(op.value, str) else repr(float(op.value))
    return _with_rows(park, op, [(str(op.element), str(op.attribute), value)], {})


_HANDLERS = {ExpandEnterprise: _expand, AddEnterprise: _add, PlantCapacity: _capacity, PlantRecovery: _recovery,
             PlantOutage: _outage, CityReclaimedOffer: _offer, CityFreshHead: _fresh_head, JunctionLeak: _leak,
             PumpOutage: _pump_outage,
             Perturbation: _raw}


def apply(park: Park, operations) -> Park:
    """A new Park with the operations applied in order; `park` is left unchanged."""
    if isinstance(operations, tuple(_HANDLERS)):
        operations = (operations,)
    for op in operations:
        handler = _HANDLERS.get(type(op))
        if handler is None:
            raise TypeError(f"unknown what-if operation {op!r} (valid: "
                            f"{', '.join(t.__name__ for t in _HANDLERS)})")
        park = handler(park, op)
    return park


def compare(base_result, new_result) -> dict:
    """Indicator key -> {before, after, change, unit}; change is None where either value is None.

    Keys present in only one run (an added enterprise) appear with the other side None.
    """
    before, after = base_result.indicators, new_result.indicators
    out = {}
    for key in list(before) + [k for k in after if k not in before]:
        b = before.get(key, {}).get("value")
        a = after.get(key, {}).get("value")
        unit = (before.get(key) or after.get(key)).get("unit")
        out[key] = {"before": b, "after": a, "change": None if a is None or b is None else a - b, "unit": unit}
    return out
