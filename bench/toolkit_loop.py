"""Baseline: the fastest way a user drives EPANET 2.3 today, for single-leak scenarios.

One project opened once, EN_openH once; per scenario: a leak as an emitter at one
junction plus a global demand multiplier (times the file's), EN_initH(0) (warm start from the previous
scenario's flows, nothing saved), EN_runH at t = 0, all heads and flows read back with
the bulk getters EN_getnodevalues / EN_getlinkvalues, then the emitter is reset.
Extended period (run_toolkit_eps_loop): the same per scenario, then EN_runH / EN_nextH over the
duration, heads and flows read at every report time.

The leak is an orifice q = Cd A sqrt(2 g p), Cd = 0.75, g = 9.81: an EPANET emitter of
exponent 0.5 and coefficient Cd A sqrt(2 g) in (m³/s)/m^0.5 (the oracle reads and writes
CMS / metres), with EMITTER BACKFLOW off so that a leak at negative pressure is dry.

    python -m bench.toolkit_loop --network /work/shared/networks/benchmarks/l-town.inp \
        --scenarios 2000 --seed 0 [--duration 86400] [--init-flag 10]
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script or a module

from parktwin.hydraulics import oracle  # noqa: E402

LEAK_CD = 0.75
GRAVITY = 9.81
AREA_RANGE_M2 = (2e-5, 5e-4)
MULT_RANGE = (0.7, 1.3)
DEFAULT_NETWORK = "/work/shared/networks/benchmarks/l-town.inp"
EN_WARN_UNBALANCED = 1  # EN_runH warning: system hydraulically unbalanced (trials exhausted)


def make_leak_scenarios(n: int, seed: int, junction_ids, mult_range=MULT_RANGE):
    """n single-leak scenarios, the same for EPANET and for ParkTwin's own solver.

    Scheme (numpy >= 1.17): ``rng = np.random.default_rng(seed)``, then, in this order,
      junction = rng.integers(0, len(junction_ids), size=n)      # position in junction_ids
      area_m2  = rng.uniform(2e-5, 5e-4, size=n)                  # leak orifice area, m²
      mult     = rng.uniform(0.7, 1.3, size=n)                    # global demand multiplier
    (``mult_range`` other than (0.7, 1.3) replaces those bounds, same draws).
    ``junction_ids`` should be the network's junctions in EPANET (file) order, so that
    ``junction_ids[junction[i]]`` names the leaking junction of scenario i.

    Returns (junction int64 [n], area_m2 float64 [n], mult float64 [n]).
    """
    rng = np.random.default_rng(seed)
    junction = rng.integers(0, len(junction_ids), size=n).astype(np.int64)
    area = rng.uniform(*AREA_RANGE_M2, size=n)
    mult = rng.uniform(*mult_range, size=n)
    return junction, area, mult


def leak_emitter_coefficient(area_m2, cd: float = LEAK_CD):
    """EPANET emitter coefficient ((m³/s)/m^0.5, exponent 0.5) of an orifice of area_m2."""
    return cd * np.asarray(area_m2, dtype=np.float64) * math.sqrt(2.0 * GRAVITY)


def junction_ids_of(project: oracle.EpanetProject) -> list[str]:
    return [nid for nid, t in zip(project.node_ids, project.node_types) if t == oracle.EN_JUNCTION]


def _leak_inputs(project: oracle.EpanetProject, junction, area_m2, mult):
    """Node indices, emitter coefficients and EN_DEMANDMULT values as plain lists; the file's emitters (a
    leak adds to one the file may already have: same exponent, so additive) and demand multiplier. Sets
    exponent 0.5, no backflow. A scenario's multiplier scales the file's (Pacific City's is 1.165), as
    `parktwin run`'s demand_multiplier scales every base demand as the file loads it."""
    node_of_junction = np.flatnonzero(project.node_types == oracle.EN_JUNCTION)
    nodes = node_of_junction[np.asarray(junction)].tolist()
    coeff = leak_emitter_coefficient(area_m2).tolist()
    file_mult = project.get_option(oracle.EN_DEMANDMULT)
    mult = (file_mult * np.asarray(mult, dtype=np.float64)).tolist()
    base_emitter = project.get_node_values(oracle.EN_EMITTER)
    project.set_emitter_exponent(0.5)
    project.set_emitter_backflow(False)
    return nodes, coeff, mult, base_emitter, file_mult


def run_toolkit_loop(project: oracle.EpanetProject, junction, area_m2, mult,
                     keep_results: bool = False, init_flag: int = oracle.EN_NOSAVE) -> dict:
    """Run the scenarios through EPANET; returns seconds and, if asked, heads/flows [n, ...].

    ``junction`` holds positions among the project's junctions (make_leak_scenarios).
    With init_flag 0 each solve warm-starts from the previous scenario's flows, as a user's loop would,
    so answers depend on the order only within EPANET's ACCURACY; 10 (EN_INITFLOW) starts every
    scenario from EPANET's initial flows (some networks, e.g. Pacific City, do not converge warm).
    ``converged`` [n] is false where EPANET left the scenario unconverged (warning 1), ``unbalanced``
    counts those.
    """
    n = len(junction)
    nodes, coeff, mult, base_emitter, file_mult = _leak_inputs(project, junction, area_m2, mult)

    if keep_results:
        heads = np.empty((n, project.n_nodes))
        flows = np.empty((n, project.n_links))
    else:
        heads = np.empty((1, project.n_nodes))
        flows = np.empty((1, project.n_links))
    warnings = np.zeros(n, dtype=np.int8)
    iterations = np.zeros(n, dtype=np.int32)

    project.open_hydraulics()
    t0 = time.perf_counter()
    for i in range(n):
        node = nodes[i]
        row = i if keep_results else 0
        project.set_emitter(node, base_emitter[node] + coeff[i])
        project.set_demand_multiplier(mult[i])
        project.init_hydraulics(init_flag)
        project.run_h()
        warnings[i] = project.last_warning
        iterations[i] = project.statistic(oracle.EN_ITERATIONS)
        project.get_node_values(oracle.EN_HEAD, heads[row])
        project.get_link_values(oracle.EN_FLOW, flows[row])
        project.set_emitter(node, base_emitter[node])
    elapsed = time.perf_counter() - t0
    project.close_hydraulics()
    project.set_demand_multiplier(file_mult)

    converged = warnings != EN_WARN_UNBALANCED
    out = {"seconds": elapsed, "n": n, "warnings": warnings, "iterations": iterations,
           "converged": converged, "unbalanced": int(np.count_nonzero(~converged))}
    if keep_results:
        out.update(head_m=heads, flow_m3s=flows)
    return out


def run_toolkit_eps_loop(project: oracle.EpanetProject, junction, area_m2, mult, duration_s: int,
                         keep_results: bool = False, init_flag: int = oracle.EN_NOSAVE) -> dict:
    """Extended period: the same scenarios, each run over ``duration_s`` on the file's clock.

    EN_openH once; per scenario the leak as an emitter and the demand multiplier, EN_initH(init_flag)
    (0: warm start from the previous scenario's last flows; tanks, controls and the clock are reset),
    then EN_runH / EN_nextH until the step is 0, reading every head and flow with the bulk getters at
    each report time (t >= report start, (t - report start) % report step == 0). Returns seconds,
    report times, hydraulic steps per scenario, ``converged`` [n] (false where a step ended with EPANET's
    warning 1, unbalanced), ``unbalanced`` (how many) and, if asked, heads/flows [n, T, ...].
    """
    n = len(junction)
    nodes, coeff, mult, base_emitter, file_mult = _leak_inputs(project, junction, area_m2, mult)
    project.set_time_param(oracle.EN_DURATION, int(duration_s))
    start, step = project.report_start_s, project.report_step_s
    times = np.arange(start, duration_s + 1, step, dtype=np.int64)
    rows = n if keep_results else 1
    heads = np.empty((rows, len(times), project.n_nodes))
    flows = np.empty((rows, len(times), project.n_links))
    warnings = np.zeros(n, dtype=np.int8)
    unbalanced = np.zeros(n, dtype=bool)
    steps = np.zeros(n, dtype=np.int32)

    project.open_hydraulics()
    t0 = time.perf_counter()
    for i in range(n):
        node = nodes[i]
        h, f = heads[i if keep_results else 0], flows[i if keep_results else 0]
        project.set_emitter(node, base_emitter[node] + coeff[i])
        project.set_demand_multiplier(mult[i])
        project.init_hydraulics(init_flag)
        k = 0
        while True:
            t = project.run_h()
            steps[i] += 1
            if project.last_warning:
                warnings[i] = project.last_warning
                unbalanced[i] |= project.last_warning == EN_WARN_UNBALANCED
            if t >= start and (t - start) % step == 0:
                project.get_node_values(oracle.EN_HEAD, h[k])
                project.get_link_values(oracle.EN_FLOW, f[k])
                k += 1
            if project.next_h() <= 0:
                break
        project.set_emitter(node, base_emitter[node])
    elapsed = time.perf_counter() - t0
    project.close_hydraulics()
    project.set_demand_multiplier(file_mult)

    out = {"seconds": elapsed, "n": n, "warnings": warnings, "steps": steps, "time_s": times,
           "converged": ~unbalanced, "unbalanced": int(np.count_nonzero(unbalanced))}
    if keep_results:
        out.update(head_m=heads, flow_m3s=flows)
    return out


def machine_description() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), model)
    except OSError:
        pass  # not Linux: platform.processor() is the best there is
    return f"{model}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--network", default=DEFAULT_NETWORK)
    ap.add_argument("--scenarios", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--accuracy", type=float, default=1e-5, help="EPANET ACCURACY (default 1e-5)")
    ap.add_argument("--duration", type=int, default=0, help="seconds; 0 = snapshot at t = 0")
    ap.add_argument("--init-flag", type=int, choices=(0, 10), default=0, help="EN_initH flag (0 warm start)")
    args = ap.parse_args(argv)

    t_open = time.perf_counter()
    with oracle.EpanetProject(args.network, accuracy=args.accuracy) as project:
        t_open = time.perf_counter() - t_open
        junction, area, mult = make_leak_scenarios(args.scenarios, args.seed, junction_ids_of(project))
        if args.duration:
            res = run_toolkit_eps_loop(project, junction, area, mult, args.duration, init_flag=args.init_flag)
        else:
            res = run_toolkit_loop(project, junction, area, mult, init_flag=args.init_flag)
        n_nodes, n_links = project.n_nodes, project.n_links
    rate = res["n"] / res["seconds"]
    print(f"network        : {args.network} ({n_nodes} nodes, {n_links} links)")
    print(f"EPANET         : {oracle.epanet_version()} (ctypes, thread-safe API), ACCURACY {args.accuracy:g}")
    print(f"machine        : {machine_description()}")
    print(f"scenarios      : {res['n']} (seed {args.seed}), open {t_open * 1e3:.1f} ms")
    print(f"throughput     : {rate:,.0f} scenarios/s")
    if args.duration:
        print(f"per scenario   : {res['seconds'] / res['n'] * 1e3:.1f} ms, {args.duration} s, "
              f"{res['steps'].mean():.1f} hydraulic steps, {len(res['time_s'])} report times")
    else:
        print(f"per scenario   : {res['seconds'] / res['n'] * 1e6:.1f} us, "
              f"{res['iterations'].mean():.1f} iterations on average (max {res['iterations'].max()})")
    if res["unbalanced"]:
        print(f"UNCONVERGED    : {res['unbalanced']} scenarios (EPANET warning 1); try --init-flag 10")
    n_warn = int(np.count_nonzero(res["warnings"]))
    if n_warn:
        print(f"EPANET warnings: {n_warn} scenarios (codes {sorted(set(res['warnings'][res['warnings'] > 0].tolist()))})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
