"""Leak alarms over time on L-Town, the BattLeDIM way: months of hourly readings made by the oracle (EPANET
2.3 through its toolkit), with demand uncertainty, meter noise, abrupt and incipient leaks; scored by
detection rate, false alarms per month, time to detection and the pipe distance of the first candidate
(a hit is within 300 m).

The truth, per hour t: EPANET's snapshot at clock time t (EN_PATTERNSTART), every demand pattern's value
times (1 + ε) with ε ~ N(0, `category_noise`) per pattern and hour (the shape of the day is not what the
model says), a global demand level following an AR(1) around 1 (σ `level_sigma`, lag-1 correlation 0.9),
the tank T1 on a daily cycle (between 20 % and 80 % of its range), and the leaks as emitters (orifice, Cd 0.75). The meters: 33
pressure loggers and the three inflow meters of BattLeDIM's sensor layout (the shared l-town.inp carries no
[TAGS], so the list is written here from memory of the competition's configuration, not checked against it) and T1's level;
pressure noise `pressure_noise_m`, flow noise `flow_noise` of the reading, level noise 5 mm.

    python -m bench.leak_alarm_study [--leak-free-months 1] [--leaks 12] [--seed 0] [--out study.json]
"""
from __future__ import annotations

import argparse
import json
import math
import time
from ctypes import byref, c_double, c_int
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from parktwin.hydraulics import oracle
from parktwin.hydraulics.inputs import GRAVITY_MS2 as GRAVITY
from parktwin.hydraulics.inputs import LEAK_DISCHARGE_COEFF as LEAK_CD

LTOWN = Path(__file__).resolve().parents[2] / "shared" / "networks" / "benchmarks" / "l-town.inp"
PRESSURE_SENSORS = ("n1", "n4", "n31", "n54", "n105", "n114", "n163", "n188", "n215", "n229", "n288", "n296",
                    "n332", "n342", "n410", "n415", "n429", "n458", "n469", "n495", "n506", "n516", "n519",
                    "n549", "n613", "n636", "n644", "n679", "n722", "n726", "n740", "n752", "n769")
FLOW_SENSORS = ("PUMP_1", "p227", "p235")
LEVEL_SENSORS = ("T1",)
EN_PATTERNSTART, EN_TANKLEVEL = 4, 8
HIT_DISTANCE_M = 300.0


@dataclass(frozen=True)
class Truth:
    days: int = 30
    level_sigma: float = 0.05
    category_noise: float = 0.03
    pressure_noise_m: float = 0.05
    flow_noise: float = 0.01
    level_noise_m: float = 0.005


@dataclass(frozen=True)
class Leak:
    junction: str
    start_step: int
    ramp_steps: int          # 0: abrupt; else the area grows linearly to area_m2 over so many hours
    area_m2: float

    def area_at(self, step: int) -> float:
        if step < self.start_step:
            return 0.0
        if self.ramp_steps <= 0:
            return self.area_m2
        return self.area_m2 * min(1.0, (step - self.start_step + 1) / self.ramp_steps)


def meter_ids() -> tuple[tuple[str, ...], tuple[str, ...]]:
    ids = PRESSURE_SENSORS + FLOW_SENSORS + LEVEL_SENSORS
    quantities = ("pressure_m",) * len(PRESSURE_SENSORS) + ("flow_m3s",) * len(FLOW_SENSORS) + ("level_m",)
    return ids, quantities


def oracle_readings(leaks: list[Leak], truth: Truth, seed: int, network: Path = LTOWN) -> np.ndarray:
    """[T, K] hourly readings of the meters of `meter_ids()` made by EPANET."""
    rng = np.random.default_rng(seed)
    n_steps = truth.days * 24
    with oracle.EpanetProject(network) as ep:
        lib, ph = ep._lib, ep._ph
        node = {nid: i for i, nid in enumerate(ep.node_ids)}
        link = {lid: i for i, lid in enumerate(ep.link_ids)}
        n_patterns = c_int()
        lib.EN_getcount(ph, 3, byref(n_patterns))                  # EN_PATCOUNT
        pattern_len, pattern_step = [], ep.time_param(3)           # EN_PATTERNSTEP
        for p in range(1, n_patterns.value + 1):
            n = c_int()
            lib.EN_getpatternlen(ph, p, byref(n))
            pattern_len.append(n.value)
        tank = node["T1"]
        low, high = ep.get_node_values(20)[tank], ep.get_node_values(21)[tank]    # EN_MINLEVEL, EN_MAXLEVEL
        ep.set_emitter_exponent(0.5)
        ep.set_emitter_backflow(False)
        base_emitter = ep.get_node_values(oracle.EN_EMITTER)
        x, out = 0.0, np.empty((n_steps, len(PRESSURE_SENSORS) + len(FLOW_SENSORS) + 1))
        pressure_at = [node[s] for s in PRESSURE_SENSORS]
        flow_at = [link[s] for s in FLOW_SENSORS]
        ep.open_hydraulics()
        for t in range(n_steps):
            x = 0.9 * x + rng.normal(0.0, truth.level_sigma * math.sqrt(1 - 0.81))
            ep.set_time_param(EN_PATTERNSTART, t * 3600)
            saved = []
            for p in range(1, n_patterns.value + 1):
                period = (t * 3600 // pattern_step) % pattern_len[p - 1] + 1
                v = c_double()
                lib.EN_getpatternvalue(ph, p, period, byref(v))
                saved.append((p, period, v.value))
                lib.EN_setpatternvalue(ph, p, period, c_double(v.value * (1.0 + rng.normal(0.0, truth.category_noise))))
            ep.set_demand_multiplier(1.0 + x)
            level = low + (high - low) * (0.5 + 0.3 * math.sin(2 * math.pi * t / 24))
            ep.set_node_value(tank, EN_TANKLEVEL, level)
            for leak in leaks:
                area = leak.area_at(t)
                ep.set_emitter(node[leak.junction], base_emitter[node[leak.junction]] +
                               LEAK_CD * area * math.sqrt(2 * GRAVITY))
            ep.init_hydraulics(oracle.EN_NOSAVE)
            ep.run_h()
            pressure = ep.get_node_values(oracle.EN_PRESSURE)
            flow = ep.get_link_values(oracle.EN_FLOW)
            out[t, :len(pressure_at)] = pressure[pressure_at] + rng.normal(0, truth.pressure_noise_m, len(pressure_at))
            out[t, len(pressure_at):-1] = flow[flow_at] * (1 + rng.normal(0, truth.flow_noise, len(flow_at)))
            out[t, -1] = level + rng.normal(0, truth.level_noise_m)
            for p, period, v in saved:
                lib.EN_setpatternvalue(ph, p, period, c_double(v))
        ep.close_hydraulics()
    return out


def pipe_distances_m(net, source: str) -> np.ndarray:
    """Shortest path length along links (pumps and valves 0 m) from `source` to every node."""
    n = net.n_nodes
    graph = csr_matrix((np.maximum(net.length_m, 1e-9), (net.link_start, net.link_end)), shape=(n, n))
    return dijkstra(graph, directed=False, indices=net.node_index(source))


def random_leaks(net, n: int, truth: Truth, seed: int, train_steps: int, abrupt_cm2=(1.0, 4.0),
                 incipient_cm2=(2.0, 6.0)) -> list[Leak]:
    """n single leaks, half abrupt (`abrupt_cm2`), half incipient (growing to `incipient_cm2` over 3-10 days)."""
    rng = np.random.default_rng(seed + 1)
    junctions = [j for j in net.junction_ids]
    leaks = []
    for i in range(n):
        start = int(rng.integers(train_steps + 48, truth.days * 24 - 7 * 24))
        if i % 2 == 0:
            leaks.append(Leak(junctions[int(rng.integers(len(junctions)))], start, 0,
                              float(rng.uniform(*abrupt_cm2)) * 1e-4))
        else:
            leaks.append(Leak(junctions[int(rng.integers(len(junctions)))], start, int(rng.integers(72, 240)),
                              float(rng.uniform(*incipient_cm2)) * 1e-4))
    return leaks


def evaluate(leaks: list[Leak], months_leak_free: int, truth: Truth, seed: int, options=None) -> dict:
    from parktwin.hydraulics.compile import load_network
    from dataclasses import replace

    from parktwin.twin.leak_alarm import AlarmOptions, MeterSeries, detect_leaks, localise_alarm
    options = replace(options or AlarmOptions(), localise=False)     # only the first alarm of a leak is localised
    net = load_network(LTOWN)
    ids, quantities = meter_ids()
    times = np.arange(truth.days * 24) * 3600.0
    rows, false_alarms, months = [], 0, 0
    cases = [(None, seed + 100 + m) for m in range(months_leak_free)] + [(leak, seed + i) for i, leak in enumerate(leaks)]
    for leak, case_seed in cases:
        started = time.perf_counter()
        values = oracle_readings([] if leak is None else [leak], truth, case_seed)
        series = MeterSeries(times, ids, quantities, values)
        result = detect_leaks(net, series, options)
        seconds = time.perf_counter() - started
        months += 1
        before = [a for a in result.alarms if leak is None or a.step < leak.start_step]
        false_alarms += len(before)
        if leak is None:
            rows.append({"case": "leak-free", "false_alarms": len(before), "seconds": seconds})
            continue
        after = [a for a in result.alarms if a.step >= leak.start_step]
        row = {"case": "abrupt" if leak.ramp_steps == 0 else "incipient", "junction": leak.junction,
               "area_cm2": leak.area_m2 * 1e4, "ramp_h": leak.ramp_steps, "start_step": leak.start_step,
               "false_alarms": len(before), "detected": bool(after), "seconds": seconds}
        if after:
            first = after[0]
            distance = pipe_distances_m(net, leak.junction)
            best = localise_alarm(net, series, result, first.step, options)[0].junction
            row.update(detection_h=first.step - leak.start_step, first_candidate=best,
                       distance_m=float(distance[net.node_index(best)]),
                       leak_at_detection_ls=LEAK_CD * leak.area_at(first.step) * math.sqrt(2 * GRAVITY * 50) * 1e3)
            row["hit"] = row["distance_m"] <= HIT_DISTANCE_M
        rows.append(row)
    leaky = [r for r in rows if r["case"] != "leak-free"]
    detected = [r for r in leaky if r["detected"]]
    # Time under watch: every case after its training, up to its leak (leak-free cases: all of it).
    watched_h = sum((truth.days * 24 - options.train_steps) if c[0] is None else max(c[0].start_step - options.train_steps, 0)
                    for c in cases)
    return {"cases": rows, "leaks": len(leaky), "detected": len(detected),
            "detection_rate": len(detected) / max(len(leaky), 1),
            "false_alarms": false_alarms, "watched_days": watched_h / 24,
            "false_alarms_per_month": false_alarms / (watched_h / 24 / 30) if watched_h else None,
            "median_detection_h": float(np.median([r["detection_h"] for r in detected])) if detected else None,
            "hits_within_300m": sum(1 for r in detected if r["hit"]),
            "median_distance_m": float(np.median([r["distance_m"] for r in detected])) if detected else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leak-free-months", type=int, default=1)
    ap.add_argument("--leaks", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--abrupt-cm2", type=float, nargs=2, default=(1.0, 4.0), help="abrupt leak area range")
    ap.add_argument("--incipient-cm2", type=float, nargs=2, default=(2.0, 6.0), help="incipient leak final area range")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    from parktwin.hydraulics.compile import load_network
    from parktwin.twin.leak_alarm import AlarmOptions
    truth, options = Truth(), AlarmOptions()
    leaks = random_leaks(load_network(LTOWN), args.leaks, truth, args.seed, options.train_steps,
                         tuple(args.abrupt_cm2), tuple(args.incipient_cm2))
    started = time.perf_counter()
    summary = evaluate(leaks, args.leak_free_months, truth, args.seed, options)
    summary["seconds"] = time.perf_counter() - started
    for row in summary["cases"]:
        print(json.dumps(row))
    print(json.dumps({k: v for k, v in summary.items() if k != "cases"}, indent=1))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
