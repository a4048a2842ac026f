"""The park report: a Markdown file with the indicators against their targets, the water balance per
enterprise and plant, the TDS each enterprise receives against GB/T 19923 (twin.report_quality), the
effect of a what-if (e.g. a plant outage) on the indicators and on TDS, the headline of a Monte-Carlo
study of the park's operations (twin.park_montecarlo), a leak drill (twin.leak_location) and pictures
when given.

Pure formatting: every number comes from a `twin.coupled.ParkRunResult` or a study file; nothing is
solved here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from parktwin.twin.report_quality import quality_section, quality_whatif_rows

BALANCE_COLUMNS = ("intake", "reclaimed_in", "reused", "consumption", "discharge", "losses")
PARK_INDICATORS = ("reuse_rate", "substitution_rate", "water_per_10k_yuan", "leakage_rate", "discharge_to_city",
                   "boundary_closure",
                   "network_leakage_rate[supply]", "network_leakage_rate[reclaimed]",
                   "low_pressure_junctions[supply]", "low_pressure_junctions[reclaimed]",
                   "unserved_demand[supply]", "unserved_demand[reclaimed]")


@dataclass(frozen=True)
class StudyHeadline:
    """What the report shows of a park Monte-Carlo study."""
    path: str
    description: str
    summary: dict                                     # twin.park_montecarlo summary
    worst: dict = field(default_factory=dict)         # network -> ((junction, P(p < service)), ...) worst first


def study_headline(path, description: str, top: int = 8) -> StudyHeadline:
    """Read a park study file: its summary and each network's junctions most often below service."""
    import json

    import h5py

    from parktwin.twin.park_montecarlo import risk_map
    with h5py.File(path, "r") as f:
        summary = json.loads(f.attrs["summary"])
        networks = list(f["risk"])
    worst = {}
    for net in networks:
        ids, prob = risk_map(path, net)
        order = np.argsort(-prob, kind="stable")[:top]
        worst[net] = tuple((ids[i], float(prob[i])) for i in order if prob[i] > 0)
    return StudyHeadline(str(path), description, summary, worst)


# ---------------------------------------------------------------------------------------------- format
def _num(x, unit: str = "") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if unit == "fraction":
        return f"{100.0 * x:.1f} %"
    if abs(x) < 1e-6:
        return "0"      # solver round-off, e.g. 1e-12 m³/d unserved
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def _status(met) -> str:
    return "no target" if met is None else ("met" if met else "**missed**")


def _table(header, rows) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out + [""]


def indicator_rows(indicators: dict, keys=PARK_INDICATORS):
    rows = []
    for key in keys:
        d = indicators.get(key)
        if d is None:
            continue
        unit = d.get("unit", "")
        rows.append((key, _num(d["value"], unit), "%" if unit == "fraction" else unit,
                     _num(d.get("target"), unit), "≤" if _is_max(key) else "≥", _status(d.get("met"))))
    return rows


def _gap(d: dict, key: str) -> str:
    """Where the value stands against the target: the margin, in the indicator's unit (+ = better)."""
    v, t = d.get("value"), d.get("target")
    if v is None or t is None:
        return "-"
    margin = (t - v) if _is_max(key) else (v - t)
    if d.get("unit") == "fraction":
        return f"{100.0 * margin:+.2f} pt"
    return f"{margin:+,.2f}"


def standing_rows(indicators: dict) -> list[tuple]:
    """The park-level targets: value, target, margin (+ = met with room), and the other classification."""
    rows = []
    for key in ("reuse_rate", "substitution_rate", "water_per_10k_yuan", "boundary_closure"):
        d = indicators.get(key)
        if d is None:
            continue
        unit = d.get("unit", "")
        alt = d.get("other_classification")
        other = (f"{_num(alt['value'], unit)} ({_status(alt['met'])}) if counted as {alt['park_reclaimed_as']}"
                 if alt else "-")
        rows.append((key, _num(d["value"], unit), _num(d.get("target"), unit), _gap(d, key), _status(d.get("met")),
                     other))
    return rows


def _is_max(key: str) -> bool:
    return key.split("[")[0] in ("water_per_10k_yuan", "leakage_rate", "discharge_to_city",
                                 "intake_per_unit_product", "balance_closure", "boundary_closure",
                                 "network_leakage_rate",
                                 "low_pressure_junctions", "unserved_demand")


def indicators_section(result) -> list[str]:
    lines = ["## Indicators against their targets", ""]
    lines += _table(("indicator", "value", "unit", "target", "sense", "status"), indicator_rows(result.indicators))
    ind = result.indicators
    reuse = ind.get("reuse_rate", {})
    if "park_reclaimed_as" in reuse:
        lines += [f"Where the park stands (park level; the park plant's reclaimed water counted as "
                  f"**{reuse['park_reclaimed_as']}**, park.toml `targets.park_reclaimed_as`; the margin is "
                  "positive where the target is met):", ""]
        lines += _table(("target", "value", "target value", "margin", "status", "other classification"),
                        standing_rows(ind))
    w = ind.get("water_per_10k_yuan", {})
    if w.get("baseline") is not None:
        change = w.get("change_vs_baseline")
        lines += [f"Water per 10,000 yuan: {_num(w['baseline'])} m³ in {w['baseline_year']} ({w['price_basis']}); "
                  f"target -{100 * w['reduction_target']:.0f} % = {_num(w['target'])}; now "
                  f"{_num(w['value'])} ({'-' if change is None else f'{100 * change:+.1f} %'} against "
                  f"{w['baseline_year']}).", ""]
    d = ind.get("discharge_to_city", {})
    if d.get("discharge_rate") is not None:
        lines += [f"Discharge rate at the park boundary: {_num(d['discharge_rate'], 'fraction')} "
                  f"({d['discharge_rate_formula']}). Leakage figures are real losses (physical leaks); "
                  "apparent losses are not modelled.", ""]
    ents = [k for k in result.indicators if k.startswith("intake_per_unit_product[")]
    if ents:
        lines += ["Fresh intake per unit of product, against the sector quota:", ""]
        rows = []
        for k in ents:
            d = result.indicators[k]
            status = _status(d.get("met"))
            if d.get("target") is None and str(d.get("quota_source", "")).startswith("none"):
                status = f"no provincial quota ({d.get('sector')})"
            rows.append((k[len("intake_per_unit_product["):-1], _num(d["value"]), d.get("unit", ""),
                         _num(d.get("target")), status))
        lines += _table(("enterprise", "intake / product", "unit", "quota", "status"), rows)
    return lines


def balance_section(result) -> list[str]:
    b = result.balance
    lines = ["## Water balance (m³/d)", ""]
    rows = []
    for name, d in b["enterprises"].items():
        rows.append((name, *(_num(d.get(c, 0.0)) for c in BALANCE_COLUMNS)))
    for name, d in b["plants"].items():
        rows.append((f"plant: {name}", *(_num(d.get(c, 0.0)) for c in BALANCE_COLUMNS)))
    park = b.get("park", {})
    rows.append(("**enterprises + network leaks**", *(f"**{_num(park.get(c, 0.0))}**" for c in BALANCE_COLUMNS)))
    lines += _table(("enterprise / plant", "intake (fresh; plants: inflow)", "reclaimed in", "reused", "consumption", "discharge",
                     "losses"), rows)
    if park:
        lines += ["The last row sums the enterprises' books: the park plant's reclaimed water is in it twice (as "
                  "reclaimed in and, before treatment, as discharge), a loop inside the fence that the boundary "
                  "balance counts once.", ""]
        lines += [f"Network leaks: fresh {_num(park.get('network_losses_fresh'))} m³/d, reclaimed "
                  f"{_num(park.get('network_losses_reclaimed'))} m³/d, sewer exfiltration "
                  f"{_num(park.get('network_losses_sewer'))} m³/d; discharge to the city "
                  f"{_num(park.get('discharge_to_city'))} m³/d; reclaimed water from the park plant "
                  f"{_num(park.get('reclaimed_from_plant'))} m³/d, from the city "
                  f"{_num(park.get('reclaimed_from_city'))} m³/d.", ""]
    nets = b.get("networks", {})
    if nets:
        rows = [(n, "yes" if d["converged"] else "**no**", _num(d["min_pressure_m"]),
                 len(d["low_pressure_junctions"]), _num(d["unserved_m3d"]), _num(d["leaks_m3d"]),
                 _num(d.get("source_outflow_m3d")), _num(d.get("storage_change_m3d")))
                for n, d in nets.items()]
        lines += ["Networks (pressures: the minimum over the run; a reservoir's outflow is negative where it "
                  "takes water in, as the discharge network's plant does):", ""]
        lines += _table(("network", "converged", "min pressure (m)",
                         f"junctions < {result.min_pressure_m:g} m", "unserved (m³/d)", "leaks (m³/d)",
                         "source outflow (m³/d)", "tank storage change (m³)"), rows)
    violations = result.service_violations()
    if violations:
        lines += ["Service violations:", ""]
        lines += _table(("network", "kind", "where", "value"), [
            (v["network"], v["kind"], v.get("enterprise", "-"),
             _num(v.get("pressure_m", v.get("value_m3d")))) for v in violations])
    return lines


BOUNDARY_ROWS = (("in", "fresh_m3d", "fresh water from the city (supply network's sources)"),
                 ("in", "city_reclaimed_m3d", "reclaimed water from the city"),
                 ("out", "consumption_m3d", "consumed and lost inside the enterprises (books)"),
                 ("out", "discharge_to_city_m3d", "discharge to the city (outfall less what the park plants keep)"),
                 ("out", "reclaimed_export_m3d", "reclaimed water exported to the city"),
                 ("out", "network_leaks_m3d", "leaks of the three networks (real losses)"),
                 ("out", "plant_losses_m3d", "plant losses (books)"))


def boundary_section(result) -> list[str]:
    """The balance at the park's fence from the hydraulic results, its residual and the named causes."""
    b = result.boundary
    if b is None:
        return []
    d = b.as_dict()
    days = result.days or {}
    lines = ["## Boundary balance (m³/d, from the hydraulic results)", ""]
    if days.get("reported_day"):
        state = ("the tanks repeat their levels" if days["periodic"] else
                 "**the tanks do not repeat their levels**: the storage change is part of this day")
        lines += [f"Day {days['reported_day']} of a {days['days_run']}-day run; {state} "
                  f"(tolerance {days['tolerance_m']:g} m).", ""]
    rows = [(side, label, _num(d[side][key])) for side, key, label in BOUNDARY_ROWS]
    rows += [("", "storage change of the tanks", _num(b.storage_change_m3d)),
             ("", "**residual** = in - out - storage", f"**{b.residual_m3d:+,.1f}**"),
             ("", "closure = abs(residual) / in", "-" if b.closure is None else
              f"{100 * b.closure:.3f} % ({'within' if b.closes else '**beyond**'} 0.1 %)")]
    lines += _table(("", "part", "m³/d"), rows)
    if b.causes:
        lines += ["Where the books and the hydraulics differ:", ""]
        lines += _table(("cause", "m³/d", "in the residual", "what it is"),
                        [(c.name, f"{c.m3d:+,.1f}", "yes" if c.in_residual else "no (a part above)", c.detail)
                         for c in b.causes])
    else:
        lines += ["Books and hydraulics agree: no cause above round-off.", ""]
    return lines


def whatif_section(title: str, base, changed, description: str = "") -> list[str]:
    lines = [f"## What-if: {title}", ""]
    if description:
        lines += [description, ""]
    rows = []
    for key in PARK_INDICATORS:
        a, c = base.indicators.get(key), changed.indicators.get(key)
        if a is None or c is None:
            continue
        unit = a.get("unit", "")
        va, vc = a["value"], c["value"]
        if va is None or vc is None:
            delta = "-"
        elif unit == "fraction":
            delta = f"{100.0 * (vc - va):+.1f} pt"
        else:
            delta = f"{vc - va:+,.0f}" if abs(vc - va) >= 100 else f"{vc - va:+.2f}"
        rows.append((key, _num(va, unit), _num(vc, unit), delta, _status(a.get("met")), _status(c.get("met"))))
    lines += _table(("indicator", "base", "what-if", "change", "base status", "what-if status"), rows)
    pb, pc = base.balance.get("park", {}), changed.balance.get("park", {})
    if pb and pc:
        rows = [(k, _num(pb.get(k)), _num(pc.get(k)), f"{(pc.get(k) or 0.0) - (pb.get(k) or 0.0):+,.0f}")
                for k in ("intake", "reclaimed_in", "discharge_to_city", "reclaimed_from_plant",
                          "reclaimed_from_city", "fresh_over_capacity", "overflow_unhandled") if k in pb]
        lines += _table(("park flow (m³/d)", "base", "what-if", "change"), rows)
    lines += quality_whatif_rows(getattr(base, "quality", None), getattr(changed, "quality", None))
    return lines


def study_section(study: StudyHeadline) -> list[str]:
    sm = study.summary
    lines = ["## Monte-Carlo study of the park's operations", "",
             f"{sm['scenarios']:,} scenarios; {study.description}. Study file: `{Path(study.path).name}`.", ""]
    rows = [(k.replace("_", " "), f"{100 * v:.2f} %" if v is not None else "-") for k, v in sm["probability"].items()]
    lines += _table(("event", "probability"), rows)
    rows = []
    for k, q in sm["quantiles"].items():
        if q is None:
            continue
        unit = "fraction" if k.endswith("rate") else ""
        rows.append((k, _num(q["p5"], unit), _num(q["p50"], unit), _num(q["p95"], unit)))
    lines += _table(("figure", "5 %", "median", "95 %"), rows)
    at_risk = [(e, p) for e, p in sm.get("enterprise_below_service", {}).items() if p]
    if at_risk:
        lines += [f"Enterprises whose supply or reclaimed connection falls below {sm['min_pressure_m']:g} m:", ""]
        lines += _table(("enterprise", "probability"), [(e, f"{100 * p:.2f} %")
                                                        for e, p in sorted(at_risk, key=lambda x: -x[1])])
    for net, worst in study.worst.items():
        if worst:
            lines += [f"Junctions of the {net} network most often below {sm['min_pressure_m']:g} m:", ""]
            lines += _table(("junction", "probability"), [(j, f"{100 * p:.2f} %") for j, p in worst])
    return lines


def drill_section(drill: dict) -> list[str]:
    loc = drill["location"]
    lines = ["## Leak drill: alarm and localisation", "",
             f"A leak of {drill['true_leak_m3s'] * 1e3:.1f} L/s ({drill['area_m2'] * 1e4:g} cm² orifice) at junction "
             f"**{drill['junction']}** of the supply network, seen by {drill['loggers']} pressure loggers "
             f"(noise {drill['noise_m'] * 1e3:g} mm). Without a leak the readings' χ² would be about "
             f"{loc.n_meters}; it is {loc.chi2_no_leak:,.0f} (alarm above {loc.chi2_alarm_threshold:.0f}): "
             f"**{'alarm' if loc.alarm else 'no alarm'}**. Most likely leak junctions "
             "(`parktwin locate`, docs/leak-location.md):", ""]
    lines += _table(("junction", "probability", "orifice (cm²)", "leak (L/s)", "χ²"), [
        (("**" + c.junction + "**") if c.junction == drill["junction"] else c.junction, f"{100 * c.probability:.1f} %",
         f"{c.area_m2 * 1e4:.2f}", f"{c.leak_m3s * 1e3:.2f}", f"{c.chi2:.1f}") for c in loc.candidates[:5]])
    return lines


def pictures_section(pictures) -> list[str]:
    lines = ["## Pictures", ""]
    for caption, rel_path in pictures:
        lines += [f"![{caption}]({rel_path})", "", f"*{caption}*", ""]
    return lines


def write_report(path, result, *, whatifs=(), study: StudyHeadline | None = None, drill: dict | None = None,
                 pictures=(), notes: tuple[str, ...] = (), reconcile: tuple[dict, list] | None = None) -> Path:
    """Write the Markdown report. `whatifs`: (title, changed ParkRunResult, description) triples;
    `pictures`: (caption, path relative to the report) pairs; `reconcile`: (twin.reconcile's dict, its
    pictures as such pairs)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = ("snapshot (daily averages)" if result.duration_s == 0 else
            f"{result.duration_s / 3600:g} h run (enterprises on their shifts, daily volumes integrated)")
    lines = [f"# {result.park_name}: water report", "", f"Mode: {mode}. Volumes in m³/d.", ""]
    lines += list(notes) + ([""] if notes else [])
    lines += indicators_section(result)
    lines += boundary_section(result)
    lines += balance_section(result)
    if getattr(result, "quality", None) is not None:
        lines += quality_section(result.quality)
    for title, changed, description in whatifs:
        lines += whatif_section(title, result, changed, description)
    if study is not None:
        lines += study_section(study)
    if drill is not None:
        lines += drill_section(drill)
    if reconcile is not None:
        from parktwin.twin.report_reconcile import reconcile_section
        lines += reconcile_section(*reconcile)
    if pictures:
        lines += pictures_section(pictures)
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path
