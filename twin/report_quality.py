"""Water quality (TDS) as report sections (Markdown): pure formatting of `twin.park_quality`'s results."""
from __future__ import annotations

from parktwin.twin.park_quality import GBT19923_TDS_LIMITS, STANDARD, ParkQuality, compare_quality
from parktwin.twin.park_schema import RECLAIMED_GRADES

# What a what-if section shows of the quality comparison (per-enterprise rows follow these).
PARK_ROWS = (("plant_product", "reclaimed plant product (m³/d)"), ("plant_product_tds", "product TDS (mg/L)"),
             ("brine", "brine to the city (m³/d)"), ("brine_tds", "brine TDS (mg/L)"),
             ("reclaimed_network_tds", "reclaimed network TDS (mg/L)"),
             ("salt_to_city", "salt to the city (kg/d)"), ("gbt19923_failures", "grades above their limit"))


def _mg(x) -> str:
    return "-" if x is None else f"{x:,.0f}" if abs(x) >= 100 else f"{x:.1f}"


def _pct(x) -> str:
    return "-" if x is None else f"{100.0 * x:.1f} %"


def _check(passes) -> str:
    return "-" if passes is None else ("pass" if passes else "**FAIL**")


def _table(header, rows) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return out + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows] + [""]


def quality_section(q: ParkQuality | None) -> list[str]:
    lines = ["## Water quality: total dissolved solids (TDS, mg/L)", ""]
    if q is None:
        return lines + ["Not modelled: park.toml has no `[quality]` table (docs/example-park.md, water quality).", ""]
    s = q.sources
    lines += [f"A steady salt balance on the day's flows (twin/park_quality.py): city fresh water "
              f"{_mg(s.city_fresh_tds_mg_l)}, city reclaimed water {_mg(s.city_reclaimed_tds_mg_l)}, wastewater "
              f"plant influent {_mg(s.wastewater_tds_mg_l)} mg/L (park.toml `[quality]`). Limits: {STANDARD}.", ""]
    rows = [(u.name, f"{u.recovery_fraction:g}", f"{u.salt_rejection_fraction:g}", _mg(u.feed_m3d),
             _mg(u.feed_tds_mg_l), _mg(u.product_m3d), _mg(u.product_tds_mg_l), _mg(u.reject_m3d),
             _mg(u.reject_tds_mg_l)) for u in q.units]
    lines += ["Reclaimed-water plant, units in series:", ""]
    lines += _table(("unit", "recovery", "salt rejection", "feed (m³/d)", "feed TDS", "product (m³/d)",
                     "product TDS", "reject (m³/d)", "reject TDS"), rows)
    lines += [f"Brine to the city: {_mg(q.brine_m3d)} m³/d at {_mg(q.brine_tds_mg_l)} mg/L (every unit's reject). "
              f"Reclaimed network: {_mg(q.reclaimed_from_plant_m3d)} m³/d from the park plant and "
              f"{_mg(q.reclaimed_from_city_m3d)} m³/d from the city, blended to "
              f"**{_mg(q.reclaimed_network_tds_mg_l)} mg/L**. Discharge to the city: {_mg(q.discharge_to_city_m3d)} "
              f"m³/d at {_mg(q.discharge_to_city_tds_mg_l)} mg/L, {_mg(q.salt_to_city_kg_d)} kg of salt a day.", ""]
    uses = [g for g in GBT19923_TDS_LIMITS if any(x.grade == g for e in q.enterprises for x in e.grades)]
    rows = []
    for e in q.enterprises:
        by_grade = {g.grade: g for g in e.grades}
        reclaimable = [g for g in e.grades if g.grade in RECLAIMED_GRADES]
        need = sum(g.need_m3d for g in reclaimable)
        share = sum(g.reclaimed_m3d for g in reclaimable) / need if need > 0 else None
        cells = [f"{_mg(by_grade[u].tds_mg_l)} {_check(by_grade[u].passes)}" if u in by_grade else "-" for u in uses]
        rows.append((e.name, _mg(e.intake_m3d), _pct(e.reclaimed_share), f"**{_mg(e.tds_mg_l)}**", _pct(share),
                     *cells, _check(e.passes)))
    limits = "; ".join(f"{GBT19923_TDS_LIMITS[u].use} ≤ {_mg(GBT19923_TDS_LIMITS[u].tds_max_mg_l)}" for u in uses)
    lines += ["Delivered TDS and reclaimed share per enterprise; per grade, its TDS (mg/L) against GB/T 19923 for "
              f"its use ({limits} mg/L; greening and domestic water are outside that standard; every grade's "
              "figures are in balance.json, `quality`):", ""]
    lines += _table(("enterprise", "intake (m³/d)", "reclaimed share of intake", "delivered TDS",
                     "reclaimed share of reclaimable grades", *(g.replace("_", " ") for g in uses), "GB/T 19923"),
                    rows)
    failures = q.failures()
    lines += [f"{len(failures)} grade(s) above their limit." if failures else
              "Every grade within its GB/T 19923 TDS limit.", ""]
    return lines


def _change(d: dict) -> str:
    if d["change"] is None:
        return "-"
    if d["unit"] == "fraction":
        return f"{100.0 * d['change']:+.1f} pt"
    if d["unit"] == "grades":
        return f"{int(d['change']):+d}"
    return f"{d['change']:+,.1f}"


def _value(x, unit) -> str:
    if unit == "grades":
        return "-" if x is None else str(int(x))
    return _pct(x) if unit == "fraction" else _mg(x)


def quality_whatif_rows(base: ParkQuality | None, changed: ParkQuality | None) -> list[str]:
    """The what-if's effect on TDS: park figures, then each enterprise's delivered TDS and reclaimed share."""
    cmp = compare_quality(base, changed)
    if not cmp:
        return []
    rows = [(label, _value(cmp[k]["before"], cmp[k]["unit"]), _value(cmp[k]["after"], cmp[k]["unit"]),
             _change(cmp[k])) for k, label in PARK_ROWS if k in cmp]
    names = [e.name for e in (base.enterprises if base is not None else ())]
    names += [e.name for e in (changed.enterprises if changed is not None else ()) if e.name not in names]
    for name in names:
        t, s = cmp[f"delivered_tds[{name}]"], cmp[f"reclaimed_share[{name}]"]
        rows.append((f"{name}: delivered TDS (mg/L)", _mg(t["before"]), _mg(t["after"]), _change(t)))
        rows.append((f"{name}: reclaimed share", _pct(s["before"]), _pct(s["after"]), _change(s)))
    return _table(("water quality", "base", "what-if", "change"), rows)


def quality_summary(q: ParkQuality) -> str:
    """One line for the command line: the reclaimed blend, the brine and the GB/T 19923 checks."""
    checks = [g.passes for e in q.enterprises for g in e.grades if g.passes is not None]
    return (f"TDS: reclaimed network {_mg(q.reclaimed_network_tds_mg_l)} mg/L (plant product "
            f"{_mg(q.plant_product_tds_mg_l)}, city {_mg(q.sources.city_reclaimed_tds_mg_l)}), fresh "
            f"{_mg(q.sources.city_fresh_tds_mg_l)}, brine to city {_mg(q.brine_m3d)} m3/d at {_mg(q.brine_tds_mg_l)} "
            f"mg/L; GB/T 19923: {sum(checks)} of {len(checks)} grade checks pass")
