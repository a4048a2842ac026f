"""Load and validate a park description: a folder with park.toml and supply/reclaimed/discharge.inp.

Every problem raises one `ParkError` "<file>: <key path>: <reason>" at load time, so that a bad
description never reaches the balance or the solver, where the same mistake would surface as a
confusing number instead of a message.
"""
from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any

from parktwin.twin import quotas
from parktwin.twin.park_meters import check_meter_elements, read_meters
from parktwin.twin.park_schema import (
    FRESH_GRADES, NETWORKS, RECLAIMED_GRADES, SALT_REJECTION_DEFAULT, SHIFT_HOURS, TDS_MAX_MG_L, CityLinks,
    Enterprise, Park, ParkError, ReclaimedPlant, Recycling, SourceQuality, Targets, TreatmentUnit, WastewaterPlant,
    WaterNeeds,
)

__all__ = [
    "load_park", "ParkError", "Park", "Enterprise", "WaterNeeds", "Recycling", "ReclaimedPlant",
    "TreatmentUnit", "WastewaterPlant", "CityLinks", "Targets", "SourceQuality", "NETWORKS", "known_sectors",
]

PARK_FILE = "park.toml"
_MISSING = object()


def known_sectors() -> tuple[str, ...]:
    """Sector keys of the quota table, so a park can only name sectors that have a quota."""
    return quotas.sectors()


class _Table:
    """A TOML table that remembers its key path, so every error can say where it happened."""

    def __init__(self, data: dict, path: str):
        self.data, self.path = data, path
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def fail(self, name: str, reason: str) -> ParkError:
        return ParkError(PARK_FILE, self.key(name), reason)

    def raw(self, name: str, default: Any = _MISSING) -> Any:
        self.used.add(name)
        if name not in self.data:
            if default is _MISSING:
                raise self.fail(name, "required key is missing")
            return default
        return self.data[name]

    def table(self, name: str, default: Any = _MISSING) -> "_Table":
        value = self.raw(name, {} if default is not _MISSING else _MISSING)
        if not isinstance(value, dict):
            raise self.fail(name, f"expected a table, got {type(value).__name__}")
        return _Table(value, self.key(name))

    def string(self, name: str, default: Any = _MISSING) -> str:
        value = self.raw(name, default)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(name, f"expected a non-empty string, got {value!r}")
        return value

    def number(self, name: str, default: Any = _MISSING, *, lo: float | None = 0.0, hi: float | None = None,
               lo_open: bool = False) -> float:
        value = self.raw(name, default)
        # TOML booleans are Python ints; `true` as a capacity is a typo, not 1.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(name, f"expected a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise self.fail(name, f"must be finite, got {value!r}")
        if lo is not None and (value <= lo if lo_open else value < lo):
            raise self.fail(name, f"must be {'>' if lo_open else '>='} {lo:g}, got {value:g}")
        if hi is not None and value > hi:
            raise self.fail(name, f"must be <= {hi:g}, got {value:g}")
        return value

    def fraction(self, name: str, default: Any = _MISSING) -> float:
        return self.number(name, default, lo=0.0, hi=1.0)

    def done(self) -> None:
        """Reject keys nobody read: a misspelt optional key would otherwise be silently ignored."""
        extra = sorted(set(self.data) - self.used)
        if extra:
            raise self.fail(extra[0], f"unknown key (expected one of: {', '.join(sorted(self.used))})")


def _junction_id(t: _Table, name: str) -> str:
    value = t.raw(name)
    # Junction ids are strings in EPANET; TOML authors often write numeric ones bare.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise t.fail(name, f"expected a junction id, got {value!r}")
    return value.strip()


def _enterprise(name: str, t: _Table, sectors: tuple[str, ...]) -> Enterprise:
    sector = t.string("sector")
    raw = t.raw("no_provincial_quota", False)
    if not isinstance(raw, bool):
        raise t.fail("no_provincial_quota", f"expected true or false, got {raw!r}")
    if raw and sector in sectors:
        raise t.fail("no_provincial_quota", f"sector {sector!r} has a provincial quota; remove this key")
    if not raw and sector not in sectors:
        raise t.fail("sector", f"unknown sector {sector!r} (valid: {', '.join(sectors)}; a sector without a "
                               "provincial quota needs no_provincial_quota = true)")
    product = t.string("product")
    annual_output = t.number("annual_output")
    value_added = t.number("value_added_10k_yuan")

    nt = t.table("needs_m3d")
    needs = WaterNeeds(**{f"{g}_m3d": nt.number(g, 0.0) for g in FRESH_GRADES + RECLAIMED_GRADES})
    nt.done()
    rt = t.table("recycling", {})
    recycling = Recycling(cooling_circulation_m3d=rt.number("cooling_circulation_m3d", 0.0),
                          cascade_use_m3d=rt.number("cascade_use_m3d", 0.0))
    rt.done()

    consumption = t.fraction("consumption_fraction")
    discharge = t.fraction("discharge_fraction")
    if consumption + discharge > 1.0 + 1e-12:
        raise t.fail("discharge_fraction", f"consumption_fraction + discharge_fraction must be <= 1, "
                                           f"got {consumption:g} + {discharge:g} = {consumption + discharge:g}")

    shift = t.raw("shift_hours")
    if isinstance(shift, bool) or not isinstance(shift, (int, float)) or shift not in SHIFT_HOURS:
        raise t.fail("shift_hours", f"must be one of {', '.join(map(str, SHIFT_HOURS))} hours, got {shift!r}")

    jt = t.table("junctions")
    junctions = {net: _junction_id(jt, net) for net in NETWORKS}
    jt.done()
    t.done()
    return Enterprise(name=name, sector=sector, product=product, annual_output=annual_output,
                      value_added_10k_yuan=value_added, needs=needs, recycling=recycling,
                      consumption_fraction=consumption, discharge_fraction=discharge,
                      shift_hours=int(shift), junctions=junctions, has_quota=not raw)


def _reclaimed_plant(t: _Table) -> ReclaimedPlant:
    capacity = t.number("capacity_m3d")
    units_raw = t.raw("units")
    if not isinstance(units_raw, list) or not units_raw:
        raise t.fail("units", "expected a non-empty array of tables [[plants.reclaimed.units]]")
    units = []
    for i, u in enumerate(units_raw):
        if not isinstance(u, dict):
            raise t.fail(f"units[{i}]", f"expected a table, got {type(u).__name__}")
        ut = _Table(u, t.key(f"units[{i}]"))
        # Recovery 0 would mean a unit that produces nothing; it is a typo, not a design.
        recovery = ut.number("recovery_fraction", lo=0.0, hi=1.0, lo_open=True)
        rejection = ut.number("salt_rejection_fraction", SALT_REJECTION_DEFAULT, lo=None)
        if not 0.0 <= rejection < 1.0:
            # 1 is excluded too: no membrane holds back every ion, and the report would show salt-free water.
            raise ut.fail("salt_rejection_fraction", f"must be in [0, 1), got {rejection:g}")
        units.append(TreatmentUnit(name=ut.string("name"), recovery_fraction=recovery,
                                   salt_rejection_fraction=rejection))
        ut.done()
    t.done()
    return ReclaimedPlant(capacity_m3d=capacity, units=tuple(units))


def _city(t: _Table) -> CityLinks:
    city = CityLinks(fresh_head_m=t.number("fresh_head_m", lo=None),
                     fresh_capacity_m3d=t.number("fresh_capacity_m3d"),
                     reclaimed_offer_m3d=t.number("reclaimed_offer_m3d"),
                     wastewater_capacity_m3d=t.number("wastewater_capacity_m3d"),
                     reclaimed_to_city_m3d=t.number("reclaimed_to_city_m3d"),
                     fresh_reservoir=None if t.raw("fresh_reservoir", None) is None else t.string("fresh_reservoir"))
    t.done()
    return city


def _quality(t: _Table) -> SourceQuality:
    tds = {k: t.number(k, hi=TDS_MAX_MG_L) for k in SourceQuality.__dataclass_fields__}
    t.done()
    return SourceQuality(**tds)


def _targets(t: _Table, sectors: tuple[str, ...]) -> Targets:
    from parktwin.twin.indicators import CLASSIFICATIONS
    reuse = t.fraction("reuse_rate_fraction")
    substitution = t.fraction("substitution_rate_fraction")
    qt = t.table("sector_quotas_m3_per_unit", {})
    overrides = {}
    for sector in qt.data:
        if sector not in sectors:
            raise qt.fail(sector, f"unknown sector {sector!r} (valid: {', '.join(sectors)})")
        overrides[sector] = qt.number(sector)
    how = t.string("park_reclaimed_as", "unconventional")
    if how not in CLASSIFICATIONS:
        raise t.fail("park_reclaimed_as", f"expected one of {', '.join(CLASSIFICATIONS)}, got {how!r}")
    intensity = {}
    if "water_per_10k_yuan" in t.data:
        wt = t.table("water_per_10k_yuan")
        year = wt.number("baseline_year", 2020, lo=1900, hi=2100)
        if not float(year).is_integer():
            raise wt.fail("baseline_year", f"expected a year, got {year!r}")
        intensity = dict(intensity_baseline_m3_per_10k_yuan=wt.number("baseline_m3_per_10k_yuan", lo=0.0, lo_open=True),
                         intensity_baseline_year=int(year),
                         intensity_price_basis=wt.string("price_basis", "constant 2020 prices"),
                         intensity_reduction_fraction=wt.number("reduction_fraction", 0.16, lo=0.0, hi=0.99))
        wt.done()
    t.done()
    return Targets(reuse_rate_fraction=reuse, substitution_rate_fraction=substitution,
                   sector_quotas_m3_per_unit=overrides, park_reclaimed_as=how, **intensity)


def _check_networks(folder: Path, enterprises: tuple[Enterprise, ...], city: CityLinks) -> None:
    # Only here does the loader touch hydraulics; junction checks need the compiled ids.
    from parktwin.hydraulics.compile import load_network

    for net_name in NETWORKS:
        fname = f"{net_name}.inp"
        path = folder / fname
        if not path.is_file():
            raise ParkError(fname, "file", f"not found in park folder {folder} "
                                           f"(a park needs {', '.join(n + '.inp' for n in NETWORKS)})")
        try:
            net = load_network(path)
        except Exception as exc:   # the reader raises many types; the user needs the file named
            raise ParkError(fname, "file", f"cannot be read as an EPANET network: {exc}") from exc
        ids = set(net.junction_ids)
        if net_name == "supply" and city.fresh_reservoir is not None:
            reservoirs = [net.node_ids[i] for i in net.reservoir_node]
            if city.fresh_reservoir not in reservoirs:
                raise ParkError(PARK_FILE, "city.fresh_reservoir", f"{city.fresh_reservoir!r} is not a reservoir "
                                f"of {fname} (its reservoirs: {', '.join(reservoirs) or 'none'})")
        for ent in enterprises:
            jid = ent.junctions[net_name]
            if jid not in ids:
                raise ParkError(PARK_FILE, f"enterprises.{ent.name}.junctions.{net_name}",
                                f"junction {jid!r} is not in {fname} ({len(ids)} junctions)")


def load_park(folder: str | Path) -> Park:
    """Read and validate a park folder; raises ParkError "<file>: <key path>: <reason>" on the first problem."""
    folder = Path(folder)
    toml_path = folder / PARK_FILE
    if not toml_path.is_file():
        raise ParkError(PARK_FILE, "file", f"not found in park folder {folder}")
    try:
        with toml_path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ParkError(PARK_FILE, "syntax", str(exc)) from exc

    root = _Table(data, "")
    sectors = known_sectors()
    park_t = root.table("park")
    name = park_t.string("name")
    park_t.done()

    ents_t = root.table("enterprises")
    if not ents_t.data:
        raise root.fail("enterprises", "a park needs at least one enterprise")
    enterprises = []
    for ent_name in ents_t.data:
        enterprises.append(_enterprise(ent_name, ents_t.table(ent_name), sectors))
    enterprises = tuple(enterprises)

    plants_t = root.table("plants")
    ww_t = plants_t.table("wastewater")
    wastewater = WastewaterPlant(capacity_m3d=ww_t.number("capacity_m3d"),
                                 losses_fraction=ww_t.number("losses_fraction", 0.0, lo=0.0, hi=0.5))
    ww_t.done()
    reclaimed = _reclaimed_plant(plants_t.table("reclaimed"))
    plants_t.done()

    city = _city(root.table("city"))
    targets = _targets(root.table("targets"), sectors)
    meters = read_meters(root.raw("meters", None), {e.name for e in enterprises})
    quality = _quality(root.table("quality")) if "quality" in data else None
    root.done()

    _check_networks(folder, enterprises, city)
    check_meter_elements(folder, meters)
    return Park(name=name, folder=str(folder), enterprises=enterprises, wastewater_plant=wastewater,
                reclaimed_plant=reclaimed, city=city, targets=targets, meters=meters,
                quality=quality)
