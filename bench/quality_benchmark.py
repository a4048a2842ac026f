"""24 h water-quality runs of L-Town scenarios: ParkTwin's batched engine against EPANET 2.3's hydraulics+
quality loop, on the same scenarios in the same process.

L-Town ships with QUALITY NONE; the benchmark runs a copy with QUALITY AGE (water age, the quality every
L-Town user can ask for without inventing sources), 24 h, 5 min hydraulic, quality and report steps.
Scenario i multiplies every demand by mult[i] = rng.uniform(0.8, 1.2) (numpy default_rng(seed)).

ParkTwin: `solve_with_quality` (the path of `parktwin run`) in chunks of --chunk scenarios, numba backend,
every head, flow and node/link quality recorded at the 289 report times, each chunk dropped after.
EPANET: one project in the file's units; per scenario EN_setoption(DEMANDMULT), EN_initH(0) (warm start
from the previous scenario), EN_initQ, then EN_runH/EN_runQ/EN_nextH/EN_nextQ, reading node EN_QUALITY,
link EN_LINKQUAL, heads and flows with the bulk getters at every report time.

    .venv/bin/python -m bench.quality_benchmark --scenarios 1000 --epanet-scenarios 1000
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import tempfile
import time
from ctypes import byref, c_long
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_NETWORK = "/work/shared/networks/benchmarks/l-town.inp"
DAY_S = 86400


def age_copy(network: Path, folder: Path) -> Path:
    text = network.read_text()
    text, n = re.subn(r"^(\s*Quality\s+)NONE\b.*$", r"\1AGE", text, count=1, flags=re.M | re.I)
    if n != 1:
        raise SystemExit(f"{network}: no 'Quality NONE' option to turn into AGE")
    path = folder / (network.stem + "-age.inp")
    path.write_text(text)
    return path


def multipliers(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.8, 1.2, size=n)


def run_parktwin(path: Path, mult: np.ndarray, chunk: int) -> float:
    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.inputs import BatchInputs
    from parktwin.hydraulics.quality import solve_with_quality
    from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions
    net = load_network(path)
    solver = HydraulicSolver(net, SolverOptions(backend="numba"))
    solve_with_quality(solver, BatchInputs(batch_size=2, demand_multiplier=mult[:2, None]), 3600)  # compile
    started = time.perf_counter()
    for lo in range(0, len(mult), chunk):
        part = mult[lo: lo + chunk]
        res = solve_with_quality(solver, BatchInputs(batch_size=len(part), demand_multiplier=part[:, None]), DAY_S)
        assert np.isfinite(res.node_quality).all()
        del res
    return time.perf_counter() - started


def run_epanet(path: Path, mult: np.ndarray) -> float:
    from parktwin.hydraulics.oracle import EN_DEMANDMULT, EN_FLOW, EN_HEAD, EpanetProject
    from parktwin.hydraulics.oracle_quality import EN_LINKQUAL, EN_QUALITY
    with EpanetProject(path, si_units=False) as ep:
        lib, ph = ep._lib, ep._ph
        nodes, links = np.empty(ep.n_nodes), np.empty(ep.n_links)
        start, step = ep.report_start_s, ep.report_step_s
        t, dt, tq = c_long(), c_long(), c_long()
        ep.open_hydraulics()
        lib.EN_openQ(ph)
        started = time.perf_counter()
        for m in mult:
            ep.set_option(EN_DEMANDMULT, float(m))
            ep.init_hydraulics(0)
            lib.EN_initQ(ph, 0)
            while True:
                lib.EN_runH(ph, byref(t))
                lib.EN_runQ(ph, byref(tq))
                if t.value >= start and (t.value - start) % step == 0:
                    for prop in (EN_HEAD, EN_QUALITY):
                        ep.get_node_values(prop, nodes)
                    for prop in (EN_FLOW, EN_LINKQUAL):
                        ep.get_link_values(prop, links)
                lib.EN_nextH(ph, byref(dt))
                lib.EN_nextQ(ph, byref(tq))
                if dt.value <= 0 or t.value + dt.value > DAY_S:
                    break
        seconds = time.perf_counter() - started
        lib.EN_closeQ(ph)
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--network", default=DEFAULT_NETWORK)
    ap.add_argument("--scenarios", type=int, default=1000)
    ap.add_argument("--epanet-scenarios", type=int, default=None, help="default: --scenarios")
    ap.add_argument("--chunk", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = age_copy(Path(args.network), Path(tmp))
        mult = multipliers(args.scenarios, args.seed)
        ours = run_parktwin(path, mult, args.chunk)
        n_ep = args.epanet_scenarios or args.scenarios
        theirs = run_epanet(path, mult[:n_ep])
    ours_rate, their_rate = args.scenarios / ours, n_ep / theirs
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs")
    print(f"ParkTwin numba: {args.scenarios} scenarios in {ours:.1f} s = {ours_rate:.2f} scenarios/s")
    print(f"EPANET 2.3 H+Q loop: {n_ep} scenarios in {theirs:.1f} s = {their_rate:.2f} scenarios/s")
    print(f"ratio: {ours_rate / their_rate:.2f}x")


if __name__ == "__main__":
    main()
