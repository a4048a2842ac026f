"""`parktwin demo`: the bundled example park (twin/example_park), end to end.

1. the park snapshot (`twin.coupled.run_park`): allocation, the three networks, balance, indicators,
   written to indicators.json and balance.json;
2. a plant-outage what-if: the park's reclaimed-water plant out of service (capacity 0), run again;
3. a Monte-Carlo study of leaks on the supply network in its operating state (the enterprises' fresh
   intake at their junctions, as in the snapshot): one log-normal leak per scenario plus a global demand
   variation, exact streaming statistics (`store="summary"`) in supply-leaks.h5;
4. a Markdown report (`twin.report.write_report`) with all of it, report.md.

Everything goes under OUT_DIR/park/. The whole demo takes a few seconds on two cores.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

MC_SCENARIOS = 2000
MC_SEED = 2024
LEAK_MEDIAN_M2 = 1e-3        # ~3.6 cm orifice; sigma 1 spans roughly 1 to 7 cm (68 %)
LEAK_SIGMA = 1.0
DEMAND_RANGE = (0.8, 1.2)

# EPANET flow units -> m³/s (the demand column of [JUNCTIONS] is in these units)
_FLOW_UNITS_M3S = {"LPS": 1e-3, "LPM": 1e-3 / 60.0, "MLD": 1e3 / 86400.0, "CMH": 1.0 / 3600.0,
                   "CMD": 1.0 / 86400.0, "CMS": 1.0, "CFS": 0.028316846592, "GPM": 6.30901964e-5,
                   "MGD": 0.0438126364, "IMGD": 0.0526167824, "AFD": 0.0142764101}


def example_park_dir() -> Path:
    import twin
    path = Path(twin.__file__).parent / "example_park"
    if not (path / "park.toml").is_file():
        raise FileNotFoundError(f"the bundled example park is missing: {path}")
    return path


def reclaimed_plant_outage(park):
    """The park with its reclaimed-water plant out of service (twin.whatif when present)."""
    try:
        from twin.whatif import PlantOutage, apply
        return apply(park, [PlantOutage("reclaimed")])
    except Exception:      # twin.whatif is being written elsewhere; the outage is one field
        plant = dataclasses.replace(park.reclaimed_plant, capacity_m3d=0.0)
        return dataclasses.replace(park, reclaimed_plant=plant)


def operating_network(park, network: str, out_path: Path) -> tuple[Path, str]:
    """A copy of the park's `network` .inp whose junction demands are the snapshot's enterprise flows
    (every other junction's demand 0, as `run_park` does). Falls back to the file as drawn (with a
    note) where the copy cannot be made by a plain edit of [JUNCTIONS] (unknown units, [DEMANDS])."""
    from hydraulics.compile import load_network
    from twin import balance as bal
    from twin.coupled import _demand_inputs, enterprise_flows_m3s

    src = Path(park.network_path(network))
    net = load_network(src)
    flows = enterprise_flows_m3s(park, bal.allocate(park))[network]
    base = _demand_inputs(net, flows, keep_background=False).base_demand_m3s[0]
    text = src.read_text()
    units = re.search(r"^\s*UNITS\s+(\S+)", text, re.MULTILINE | re.IGNORECASE)
    demands = re.search(r"^\[DEMANDS\][^\[]*", text, re.MULTILINE)
    has_demand_rows = demands and any(ln.strip() and not ln.strip().startswith(";")
                                      for ln in demands.group(0).splitlines()[1:])
    factor = _FLOW_UNITS_M3S.get(units.group(1).upper()) if units else None
    if factor is None or has_demand_rows:
        return src, f"{src.name} as drawn (its own design demands)"
    lines, section, index = text.splitlines(keepends=True), None, {j: i for i, j in enumerate(net.junction_ids)}
    for k, line in enumerate(lines):
        s = line.strip()
        if s.startswith("["):
            section = s.upper()
            continue
        if section != "[JUNCTIONS]" or not s or s.startswith(";"):
            continue
        body, _, comment = line.partition(";")
        parts = body.split()
        if len(parts) < 3 or parts[0] not in index:
            continue
        q = base[index[parts[0]]]
        parts[2] = repr(float(q / factor)) if np.isfinite(q) else "0"
        lines[k] = " " + "    ".join(parts) + ("    ;" + comment if comment else "\n")
        if not lines[k].endswith("\n"):
            lines[k] += "\n"
    out_path.write_text("".join(lines))
    return out_path, (f"{src.name} in the snapshot's operating state (enterprise fresh intake "
                      f"{sum(flows.values()) * 86400:,.0f} m³/d at their junctions, other demands 0)")


def run_demo(out_dir: Path, console) -> None:
    from hydraulics.compile import load_network
    from scenarios.montecarlo import run_monte_carlo
    from scenarios.spec import spec_from_options
    from twin.coupled import run_park, write_outputs
    from twin.park import load_park
    from twin.report import leak_study_from_summary, write_report

    out = Path(out_dir) / "park"
    out.mkdir(parents=True, exist_ok=True)
    park = load_park(example_park_dir())
    console.print(f"[bold]ParkTwin demo[/] - {park.name}: {len(park.enterprises)} enterprises, "
                  f"reclaimed plant {park.reclaimed_plant.capacity_m3d:,.0f} m³/d")

    base = run_park(park)
    ind_path, bal_path = write_outputs(base, out)
    _print_indicators(console, "snapshot", base)
    for name, s in base.service.items():
        console.print(f"  {name:9s} network: converged {s.converged}, min pressure {s.min_pressure_m:.1f} m, "
                      f"{len(s.low_pressure_junctions)} junction(s) < {base.min_pressure_m:g} m, "
                      f"unserved {s.unserved_m3d:,.0f} m³/d")
    console.print(f"  -> {ind_path}, {bal_path}")

    outage = run_park(reclaimed_plant_outage(park))
    _print_indicators(console, "reclaimed plant outage", outage)

    inp, inp_note = operating_network(park, "supply", out / "supply-operating.inp")
    net = load_network(inp)
    spec = spec_from_options(scenarios=MC_SCENARIOS, seed=MC_SEED, leaks=1, leak_median_m2=LEAK_MEDIAN_M2,
                             leak_sigma=LEAK_SIGMA, demand="uniform", demand_min=DEMAND_RANGE[0],
                             demand_max=DEMAND_RANGE[1])
    mc_path = out / "supply-leaks.h5"
    if mc_path.exists():
        mc_path.unlink()
    summary = run_monte_carlo(net, spec, mc_path, store="summary")
    description = (f"one leak per scenario at a uniformly drawn junction, log-normal area (median "
                   f"{LEAK_MEDIAN_M2:g} m², sigma {LEAK_SIGMA:g}), all demands times U({DEMAND_RANGE[0]:g}, "
                   f"{DEMAND_RANGE[1]:g}); network: {inp_note}; seed {MC_SEED}")
    study = leak_study_from_summary(mc_path, "supply", description, junction_ids=net.junction_ids)
    console.print(f"leak study: {summary.n_converged}/{summary.n_scenarios} converged, "
                  f"{summary.scenarios_per_second:,.0f} scenarios/s -> {mc_path}")
    for j, p, pmin, _ in study.worst[:3]:
        console.print(f"  {j}: P(pressure < {study.service_pressure_m:g} m) = {100 * p:.2f} %, "
                      f"min {pmin:.1f} m")

    report = write_report(out / "report.md", base, whatifs=[(
        "reclaimed-water plant outage", outage,
        "The park's reclaimed-water plant out of service (capacity 0 m³/d): its users fall back on city "
        "reclaimed water where offered, else on fresh water.")], leak_study=study)
    console.print(f"report -> {report}")


def _print_indicators(console, label: str, result) -> None:
    from twin.report import indicator_rows
    parts = []
    for key, value, unit, target, sense, status in indicator_rows(result.indicators):
        t = "" if target == "-" else f" (target {sense} {target}: {status.strip('*')})"
        parts.append(f"{key} {value}{'' if unit == '%' else ' ' + unit}{t}")
    console.print(f"[bold]{label}[/]: " + "; ".join(parts), highlight=False)
