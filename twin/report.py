"""The park report: a Markdown file with the indicators against their targets, the water balance per
enterprise and plant, the effect of a what-if (e.g. a plant outage) on the indicators and the headline of
a Monte-Carlo leak study (the junctions most often below the service pressure).

Pure formatting: every number comes from a `twin.coupled.ParkRunResult` or a summary file read with
`scenarios.summary_store.read_summary`; nothing is solved here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BALANCE_COLUMNS = ("intake", "reclaimed_in", "reused", "consumption", "discharge", "losses")
PARK_INDICATORS = ("reuse_rate", "substitution_rate", "water_per_10k_yuan", "leakage_rate", "discharge_to_city")


@dataclass(frozen=True)
class LeakStudy:
    """Headline of a Monte-Carlo leak study (from a summary file)."""
    network: str
    path: str
    n_scenarios: int
    n_converged: int
    service_pressure_m: float
    description: str                                  # how the scenarios were drawn
    worst: tuple = ()                                 # (junction, P(p < service), min p, median p) best first
    notes: tuple[str, ...] = field(default_factory=tuple)


def leak_study_from_summary(path, network: str, description: str, top: int = 10,
                            junction_ids=None) -> LeakStudy:
    """Read a summary file and keep the `top` junctions by probability of pressure below the service
    pressure (ties broken by the lowest minimum pressure); `junction_ids` restricts to junctions."""
    from scenarios.summary_store import read_summary

    stats, meta = read_summary(path)
    prob = np.asarray(stats["pressure_below_service_prob"], dtype=float).max(axis=0)   # worst report time
    pmin = np.asarray(stats["pressure_min"], dtype=float).min(axis=0)
    levels = [float(q) for q in np.asarray(stats["quantile_levels"]).ravel()]
    quant = np.asarray(stats["pressure_quantiles"], dtype=float)
    median = None
    if 0.5 in levels:                                 # pressure_quantiles is [Q, T, N]
        median = quant[levels.index(0.5)].min(axis=0)
    ids = meta["node_ids"]
    keep = np.isfinite(prob)
    if junction_ids is not None:
        wanted = set(junction_ids)
        keep &= np.array([i in wanted for i in ids])
    idx = np.flatnonzero(keep)
    order = idx[np.lexsort((np.nan_to_num(pmin[idx], nan=np.inf), -prob[idx]))][:top]
    worst = tuple((ids[i], float(prob[i]), float(pmin[i]), None if median is None else float(median[i]))
                  for i in order)
    n_conv = int(np.asarray(stats.get("n_converged", 0)).max()) if "n_converged" in stats else 0
    n_scen = int(np.asarray(stats.get("n_scenarios", len(meta["scenario_ids"]))).max())
    return LeakStudy(network=network, path=str(path), n_scenarios=n_scen, n_converged=n_conv,
                     service_pressure_m=float(meta["options"].service_pressure_m), description=description,
                     worst=worst)


# ---------------------------------------------------------------------------------------------- format
def _num(x, unit: str = "") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if unit == "fraction":
        return f"{100.0 * x:.1f} %"
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


def _is_max(key: str) -> bool:
    return key.split("[")[0] in ("water_per_10k_yuan", "leakage_rate", "discharge_to_city",
                                 "intake_per_unit_product", "balance_closure")


def indicators_section(result) -> list[str]:
    lines = ["## Indicators against their targets", ""]
    lines += _table(("indicator", "value", "unit", "target", "sense", "status"), indicator_rows(result.indicators))
    ents = [k for k in result.indicators if k.startswith("intake_per_unit_product[")]
    if ents:
        lines += ["Fresh intake per unit of product, against the sector quota:", ""]
        rows = []
        for k in ents:
            d = result.indicators[k]
            rows.append((k[len("intake_per_unit_product["):-1], _num(d["value"]), d.get("unit", ""),
                         _num(d.get("target")), _status(d.get("met"))))
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
    rows.append(("**park**", *(f"**{_num(park.get(c, 0.0))}**" for c in BALANCE_COLUMNS)))
    lines += _table(("enterprise / plant", "intake (fresh; plants: inflow)", "reclaimed in", "reused", "consumption", "discharge",
                     "losses"), rows)
    if park:
        lines += [f"Network leaks: fresh {_num(park.get('network_losses_fresh'))} m³/d, reclaimed "
                  f"{_num(park.get('network_losses_reclaimed'))} m³/d; discharge to the city "
                  f"{_num(park.get('discharge_to_city'))} m³/d; reclaimed water from the park plant "
                  f"{_num(park.get('reclaimed_from_plant'))} m³/d, from the city "
                  f"{_num(park.get('reclaimed_from_city'))} m³/d.", ""]
    nets = b.get("networks", {})
    if nets:
        rows = [(n, "yes" if d["converged"] else "**no**", _num(d["min_pressure_m"]),
                 len(d["low_pressure_junctions"]), _num(d["unserved_m3d"]), _num(d["leaks_m3d"]))
                for n, d in nets.items()]
        lines += ["Networks (snapshot):", ""]
        lines += _table(("network", "converged", "min pressure (m)",
                         f"junctions < {result.min_pressure_m:g} m", "unserved (m³/d)", "leaks (m³/d)"), rows)
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
    return lines


def leak_section(study: LeakStudy) -> list[str]:
    lines = [f"## Monte-Carlo leak study: {study.network} network", "",
             f"{study.n_scenarios:,} scenarios ({study.n_converged:,} converged); {study.description}. "
             f"Statistics file: `{Path(study.path).name}`.", ""]
    if not study.worst:
        lines += ["No junction results.", ""]
    elif study.worst[0][1] == 0.0:
        lines += [f"No junction fell below {study.service_pressure_m:g} m in any scenario.", ""]
    else:
        j, p, _, _ = study.worst[0]
        lines += [f"Headline: junction **{j}** is below {study.service_pressure_m:g} m in {100 * p:.2f} % of the "
                  "scenarios (the leak-prone junctions with the highest probability of low pressure):", ""]
    rows = [(j, f"{100 * p:.2f} %", _num(pmin), _num(med)) for j, p, pmin, med in study.worst]
    lines += _table(("junction", f"P(pressure < {study.service_pressure_m:g} m)", "min pressure (m)",
                     "median pressure (m)"), rows)
    lines += list(study.notes) + ([""] if study.notes else [])
    return lines


def write_report(path, result, *, whatifs=(), leak_study: LeakStudy | None = None,
                 notes: tuple[str, ...] = ()) -> Path:
    """Write the Markdown report. `whatifs`: (title, changed ParkRunResult, description) triples."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "snapshot (daily averages)" if result.duration_s == 0 else f"{result.duration_s / 3600:g} h run"
    lines = [f"# {result.park_name}: water report", "", f"Mode: {mode}. Volumes in m³/d.", ""]
    lines += list(notes) + ([""] if notes else [])
    lines += indicators_section(result)
    lines += balance_section(result)
    for title, changed, description in whatifs:
        lines += whatif_section(title, result, changed, description)
    if leak_study is not None:
        lines += leak_section(leak_study)
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path
