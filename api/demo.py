"""`parktwin demo`: the bundled example park (twin/example_park), end to end.

1. the coupled 24 h run (`twin.coupled.run_park`): allocation, the enterprises on their shifts in the
   three networks, the balance, the indicators, written to indicators.json and balance.json;
2. two what-ifs run again: the park's reclaimed-water plant out of service (capacity 0), and its RO at
   a lower recovery (the report shows their effect on the indicators and on TDS);
3. a Monte-Carlo study of the park's operations (`twin.park_montecarlo`, a 24 h run per scenario): a
   leak on the supply and on the reclaimed network in every scenario, each enterprise's needs uncertain,
   the reclaimed-water plant out with some probability; park-study.h5 and park-study.json;
4. a leak drill (`twin.leak_location`): a leak put on the supply network, the readings of a logger at
   every 10th junction, the alarm and the most likely junctions;
   then a day of the park's 49 meters with a hidden leak there, signed into a ledger (meters.ledger),
   verified and reconciled with the twin (`twin.reconcile`: the unexplained volume, plots);
5. pictures of the park (base-case pressure, the study's risk map);
6. a Markdown report (`twin.report.write_report`) with all of it, report.md.

Everything goes under OUT_DIR/park/. The whole demo takes seconds on two cores.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

STUDY_SCENARIOS = 2000
STUDY_SEED = 2024
LEAK_MEDIAN_M2 = 3e-4        # ~2 cm orifice; sigma 1 spans roughly 1 to 3.3 cm (68 %)
LEAK_SIGMA = 1.0
DEMAND_RANGE = (0.9, 1.1)
OUTAGE_PROBABILITY = 0.05
DRILL_JUNCTION, DRILL_AREA_M2, DRILL_NOISE_M, DRILL_LOGGER_EVERY = "S0707", 2e-4, 0.005, 10
METER_DAY_LEAK_M2 = 5e-4       # the hidden leak of the demo's day of meter readings, at DRILL_JUNCTION
RO_LOW_RECOVERY = 0.6          # the report's RO what-if, down from the example's 0.75 (docs/example-park.md)


def example_park_dir() -> Path:
    from parktwin import twin
    path = Path(twin.__file__).parent / "example_park"
    if not (path / "park.toml").is_file():
        raise FileNotFoundError(f"the bundled example park is missing: {path}")
    return path


def reclaimed_plant_outage(park):
    """The park with its reclaimed-water plant out of service."""
    from parktwin.twin.whatif import PlantOutage, apply
    return apply(park, [PlantOutage("reclaimed")])


def run_demo(out_dir: Path, console) -> None:
    from parktwin.twin.coupled import run_park, write_outputs
    from parktwin.twin.park import load_park
    from parktwin.twin.park_montecarlo import ParkStudy, run_park_study
    from parktwin.twin.periodic import Periodicity
    from parktwin.twin.report import study_headline, write_report

    out = Path(out_dir) / "park"
    out.mkdir(parents=True, exist_ok=True)
    park = load_park(example_park_dir())
    console.print(f"[bold]ParkTwin demo[/] - {park.name}: {len(park.enterprises)} enterprises, "
                  f"reclaimed plant {park.reclaimed_plant.capacity_m3d:,.0f} m³/d")

    # Until the tanks repeat, as `parktwin park run`: a daily balance that is one.
    base = run_park(park, periodicity=Periodicity())
    ind_path, bal_path = write_outputs(base, out)
    _print_indicators(console, "24 h run", base)
    for name, s in base.service.items():
        console.print(f"  {name:9s} network: converged {s.converged}, min pressure {s.min_pressure_m:.1f} m, "
                      f"{len(s.low_pressure_junctions)} junction(s) < {base.min_pressure_m:g} m, "
                      f"unserved {s.unserved_m3d:,.0f} m³/d, tank storage {s.storage_change_m3d:+,.0f} m³")
    console.print(f"  -> {ind_path}, {bal_path}")

    outage = run_park(reclaimed_plant_outage(park), periodicity=Periodicity())
    _print_indicators(console, "reclaimed plant outage", outage)
    from parktwin.twin.whatif import PlantRecovery, apply
    ro_low = run_park(apply(park, [PlantRecovery("RO", RO_LOW_RECOVERY)]), periodicity=Periodicity())

    study = ParkStudy(scenarios=STUDY_SCENARIOS, seed=STUDY_SEED, leaks_per_network={"supply": 1, "reclaimed": 1},
                      leak_median_area_m2=LEAK_MEDIAN_M2, leak_sigma=LEAK_SIGMA, demand_factor_range=DEMAND_RANGE,
                      reclaimed_outage_probability=OUTAGE_PROBABILITY)
    study_path = out / "park-study.h5"
    if study_path.exists():
        study_path.unlink()
    result = run_park_study(park, study, study_path)
    import json
    study_path.with_suffix(".json").write_text(json.dumps(result.summary, indent=2))
    description = (f"one leak on the supply and one on the reclaimed network at uniformly drawn junctions, "
                   f"log-normal area (median {LEAK_MEDIAN_M2:g} m², sigma {LEAK_SIGMA:g}); each enterprise's "
                   f"needs times U({DEMAND_RANGE[0]:g}, {DEMAND_RANGE[1]:g}); the reclaimed-water plant out "
                   f"with probability {OUTAGE_PROBABILITY:g}; each scenario a 24 h run, service judged on the day's "
                   f"lowest pressure; "
                   f"seed {STUDY_SEED}")
    headline = study_headline(study_path, description)
    prob = result.summary["probability"]
    console.print(f"park study: {result.summary['scenarios']:,} scenarios: P(reclaimed supply short) "
                  f"{100 * prob['reclaimed_supply_short']:.1f} %, P(an enterprise below "
                  f"{study.min_pressure_m:g} m) {100 * prob['any_enterprise_below_service']:.1f} %, P(reuse "
                  f"target met) {100 * prob['reuse_target_met']:.1f} % -> {study_path}")

    drill = leak_drill(park)
    console.print(f"leak drill: a {drill['true_leak_m3s'] * 1e3:.1f} L/s leak at {DRILL_JUNCTION}: "
                  f"{'ALARM' if drill['location'].alarm else 'no alarm'}; most likely "
                  + ", ".join(f"{c.junction} ({100 * c.probability:.0f} %)" for c in drill["location"].candidates[:3]))

    meters = meter_day(park, out, console)

    pictures = render_pictures(park, base, study_path, out, console)
    report = write_report(out / "report.md", base, whatifs=[(
        "reclaimed-water plant outage", outage,
        "The park's reclaimed-water plant out of service (capacity 0 m³/d): its users fall back on city "
        "reclaimed water where offered, else on fresh water."), (
        f"RO recovery {RO_LOW_RECOVERY:g}", ro_low,
        f"The reclaimed plant's RO at recovery {RO_LOW_RECOVERY:g}: a less concentrated feed side gives a slightly "
        "cleaner permeate and a weaker brine, but less of it; the city's reclaimed water or fresh water makes "
        "up the difference at its own TDS.")], study=headline, drill=drill, pictures=pictures,
        reconcile=meters)
    console.print(f"report -> {report}")


def leak_drill(park) -> dict:
    """A leak on the supply network as the loggers would see it, and what `locate_leak` makes of it."""
    import scipy.sparse as sp

    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.inputs import BatchInputs
    from parktwin.hydraulics.solver import HydraulicSolver
    from parktwin.twin.leak_location import Reading, locate_leak
    net = load_network(park.network_path("supply"))
    j = net.node_index(DRILL_JUNCTION)
    leak = sp.csr_matrix(([DRILL_AREA_M2], ([0], [j])), shape=(1, net.n_junctions))
    truth = HydraulicSolver(net).run(BatchInputs(1, leak_area_m2=leak), 0)
    rng = np.random.default_rng(STUDY_SEED)
    readings = [Reading(net.node_ids[i], "pressure_m", float(truth.pressure_m[0, 0, i]) + rng.normal(0, DRILL_NOISE_M),
                        DRILL_NOISE_M) for i in range(0, net.n_junctions, DRILL_LOGGER_EVERY)]
    return {"junction": DRILL_JUNCTION, "area_m2": DRILL_AREA_M2, "true_leak_m3s": float(truth.leak_m3s[0, 0, j]),
            "loggers": len(readings), "noise_m": DRILL_NOISE_M, "location": locate_leak(net, readings)}


def meter_day(park, out: Path, console) -> tuple[dict, list]:
    """A day of the park's 49 meters with a hidden supply leak (twin.meter_synthesis), into a signed ledger,
    verified and reconciled with the twin (`parktwin meters`, `parktwin park reconcile`)."""
    from parktwin.twin.ledger import ingest
    from parktwin.twin.ledger_keys import load_or_create_private_key
    from parktwin.twin.meter_readings import parse_time_us
    from parktwin.twin.meter_synthesis import SynthesisOptions, leak, synthesize_day
    from parktwin.twin.reconcile import reconcile
    from parktwin.viz.meter_plots import reconcile_pictures
    day = synthesize_day(park, (leak("supply", DRILL_JUNCTION, METER_DAY_LEAK_M2),), SynthesisOptions(seed=STUDY_SEED))
    ledger = out / "meters.ledger"
    for stale in (ledger, ledger.with_name(ledger.name + ".key"), ledger.with_name(ledger.name + ".pub")):
        stale.unlink(missing_ok=True)
    key, _ = load_or_create_private_key(ledger.with_name(ledger.name + ".key"))
    ingest(ledger, day.csv, "meter-day.csv", key, {m.id: m.quantity for m in park.meters})
    start = parse_time_us(SynthesisOptions().start)
    rec = reconcile(park, ledger, start, start + 86400 * 1_000_000, key.public_key())
    pictures = [(caption, path.name) for caption, path in reconcile_pictures(rec, out)]
    supply = rec["networks"]["supply"]
    console.print(f"meters: {rec['ledger']['readings']:,} readings signed into {ledger}, verified; unexplained "
                  f"supply volume {supply['unexplained_m3']:,.0f} m³ for a hidden leak of {day.leak_m3['supply']:,.0f} m³")
    return rec, pictures


def render_pictures(park, base, study_path: Path, out: Path, console) -> list[tuple[str, str]]:
    """The base-case pressure of the park and the study's risk map, as PNGs next to the report (none,
    with a note, where this machine cannot render off screen)."""
    from parktwin.twin.park_montecarlo import risk_map
    from parktwin.viz import offscreen_problem, render_park
    problem = offscreen_problem()
    if problem:
        console.print(f"[yellow]pictures skipped[/]: {problem}", highlight=False)
        return []
    pictures = []
    path = render_park(park, result=base, quantity="pressure", out=out / "pressure.png",
                       title=f"{park.name}: base case, pressure at 08:00 (the shifts start)", time_s=8 * 3600)
    pictures.append(("Base case: pressure in the three networks at 08:00, when the 8 h shifts start", path.name))
    from parktwin.hydraulics.compile import load_network
    risk = {}
    for net_name in ("supply", "reclaimed"):
        net = load_network(park.network_path(net_name))
        per_node = np.full(net.n_nodes, np.nan)      # junctions come first; tanks and reservoirs have no risk
        per_node[:net.n_junctions] = risk_map(study_path, net_name)[1]
        risk[net_name] = per_node
    path = render_park(park, quantity="low_pressure_probability", network_values=risk, out=out / "risk.png",
                       title=f"{park.name}: probability of pressure below the service threshold")
    pictures.append(("Monte-Carlo risk map: probability of pressure below the service threshold (supply and "
                     "reclaimed networks)", path.name))
    console.print(f"pictures -> {', '.join(str(out / p) for _, p in pictures)}")
    return pictures


def _print_indicators(console, label: str, result) -> None:
    from rich.markup import escape

    from parktwin.twin.report import indicator_rows
    parts = []
    for key, value, unit, target, sense, status in indicator_rows(result.indicators):
        t = "" if target == "-" else f" (target {sense} {target}: {status.strip('*')})"
        parts.append(f"{key} {value}{'' if unit == '%' else ' ' + unit}{t}")
    # escaped: rich would take "[supply]" in network_leakage_rate[supply] for markup and drop it
    console.print(f"[bold]{escape(label)}[/]: " + escape("; ".join(parts)), highlight=False)
