"""L-Town leak benchmark: `parktwin run` as a whole process against EPANET 2.3's toolkit loop.

Both solve the same scenarios (bench.toolkit_loop.make_leak_scenarios) in the same run. EPANET is driven
the fastest way a user can: one in-memory project, warm-started EN_initH(0), leak as an emitter, bulk
getters. ParkTwin is timed as a user meets it: `parktwin run` from process start to a complete HDF5 file.

    python -m bench.run_leak_benchmark --scenarios 50000 [--backend numba] [--toolkit-scenarios 20000]
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.toolkit_loop import junction_ids_of, machine_description, make_leak_scenarios, run_toolkit_loop

DEFAULT_NETWORK = Path(__file__).resolve().parents[2] / "shared" / "networks" / "benchmarks" / "l-town.inp"


def write_table(path: Path, junction_ids, junction, area, mult) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["scenario", "element", "attribute", "value"])
        for i in range(len(junction)):
            w.writerow([f"s{i}", junction_ids[junction[i]], "leak_area_m2", repr(float(area[i]))])
            w.writerow([f"s{i}", "*", "demand_multiplier", repr(float(mult[i]))])


def run_parktwin(network: Path, table: Path, out: Path, backend: str, chunk: int, accuracy: float) -> tuple[float, float]:
    """Wall seconds and peak resident memory (GiB) of one `parktwin run` process."""
    cmd = [sys.executable, "-m", "parktwin.api.cli", "run", str(network), "--scenarios", str(table), "--out", str(out),
           "--backend", backend, "--chunk-size", str(chunk), "--accuracy", str(accuracy)]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"parktwin run failed:\n{done.stderr}")
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, peak_kib / 1024 ** 2


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--network", type=Path, default=DEFAULT_NETWORK)
    ap.add_argument("--scenarios", type=int, default=50000)
    ap.add_argument("--toolkit-scenarios", type=int, default=None,
                    help="scenarios for the EPANET loop (default: all); its rate is per scenario")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--backend", default="numba")
    ap.add_argument("--chunk-size", type=int, default=512)
    ap.add_argument("--accuracy", type=float, default=1e-5)
    ap.add_argument("--repeats", type=int, default=2, help="interleaved runs of each side")
    args = ap.parse_args(argv)

    from parktwin.hydraulics.oracle import EPANET_VERSION, EpanetProject
    with EpanetProject(args.network, accuracy=args.accuracy) as ep:
        junction_ids = junction_ids_of(ep)
    junction, area, mult = make_leak_scenarios(args.scenarios, args.seed, junction_ids)
    n_tk = args.toolkit_scenarios or args.scenarios

    def toolkit_rate() -> tuple[float, dict]:
        with EpanetProject(args.network, accuracy=args.accuracy) as ep:
            out = run_toolkit_loop(ep, junction[:n_tk], area[:n_tk], mult[:n_tk])
        return n_tk / out["seconds"], out

    # Interleaved, so that neither side gets a quieter or a warmer machine: ParkTwin, EPANET, ParkTwin,
    # EPANET; each side's rate is the mean of its runs.
    pt_runs, tk_runs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "leaks.csv"
        write_table(table, junction_ids, junction, area, mult)
        for _ in range(args.repeats):
            seconds, peak_gib = run_parktwin(args.network, table, Path(tmp) / "leaks.h5", args.backend,
                                             args.chunk_size, args.accuracy)
            size_gib = (Path(tmp) / "leaks.h5").stat().st_size / 1024 ** 3
            pt_runs.append(seconds)
            tk_runs.append(toolkit_rate())
    seconds = float(np.mean(pt_runs))
    tk_rate = float(np.mean([r for r, _ in tk_runs]))
    toolkit = tk_runs[-1][1]
    toolkit["seconds"] = n_tk / tk_rate
    pt_rate = args.scenarios / seconds
    print(f"date            {dt.date.today().isoformat()}")
    print(f"machine         {machine_description()}")
    print(f"network         {args.network.name}, ACCURACY {args.accuracy:g}")
    print(f"EPANET toolkit  {EPANET_VERSION}: {n_tk} scenarios, {tk_rate:,.0f} scenarios/s (mean of"
          f" {', '.join(f'{r:,.0f}' for r, _ in tk_runs)})"
          f" (mean {toolkit['iterations'].mean():.1f} iterations)")
    print(f"parktwin run    backend {args.backend}, chunk {args.chunk_size}, {os.cpu_count()} cores: {args.scenarios} scenarios"
          f" in {seconds:.2f} s (mean of {', '.join(f'{x:.2f}' for x in pt_runs)}; whole process, HDF5"
          f" {size_gib:.2f} GiB) = {pt_rate:,.0f} scenarios/s;"
          f" peak memory {peak_gib:.2f} GiB")
    print(f"ratio           {pt_rate / tk_rate:.2f}x the toolkit loop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
