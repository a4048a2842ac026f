"""Leak benchmark: `parktwin run` as a whole process against EPANET 2.3's toolkit loop, snapshot or 24 h.

Both solve the same scenarios (bench.toolkit_loop.make_leak_scenarios) in the same run, interleaved.
EPANET is driven the fastest way a user can: one in-memory project, EN_openH once, per scenario the leak
as an emitter and the demand multiplier, EN_initH(0) (warm start; --init-flag 10 where a network does
not converge warm), then EN_runH at t = 0 (snapshot) or EN_runH/EN_nextH over --duration reading every
head and flow at the report times (extended period), bulk getters. ParkTwin is timed as a user meets it:
`parktwin run` from process start to a complete HDF5 file. Before timing, both sides' heads on the first
--check-scenarios scenarios must agree within --tolerance-m (bench.leak_check).

    python -m bench.run_leak_benchmark --scenarios 50000                                   # L-Town snapshot
    python -m bench.run_leak_benchmark --network .../pacific-city.inp --scenarios 2000 --init-flag 10 \
        --demand-range 0.7 1.0
    python -m bench.run_leak_benchmark --duration 86400 --scenarios 1000                   # L-Town, 24 h
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

NETWORKS = Path(__file__).resolve().parents[2] / "shared" / "networks" / "benchmarks"
DEFAULT_NETWORK = NETWORKS / "l-town.inp"


def write_table(path: Path, junction_ids, junction, area, mult) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["scenario", "element", "attribute", "value"])
        for i in range(len(junction)):
            w.writerow([f"s{i}", junction_ids[junction[i]], "leak_area_m2", repr(float(area[i]))])
            w.writerow([f"s{i}", "*", "demand_multiplier", repr(float(mult[i]))])


def parktwin_runner(network: Path, backend: str, chunk: int, accuracy: float, duration_s: int):
    def run(table: Path, out: Path, extra=()) -> float:
        """Wall seconds of one `parktwin run` process (a complete HDF5 file at `out`)."""
        cmd = [sys.executable, "-m", "parktwin.api.cli", "run", str(network), "--scenarios", str(table),
               "--out", str(out), "--backend", backend, "--chunk-size", str(chunk), "--accuracy", str(accuracy),
               "--duration", str(duration_s), *extra]
        started = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"parktwin run failed:\n{done.stdout}\n{done.stderr}")
        return seconds
    return run


def _r(rate: float) -> str:
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:.3g}"


def converged_count(path: Path) -> int:
    import h5py
    with h5py.File(path, "r") as f:
        return int(f["solver/converged"][:].reshape(f["scenario/ids"].shape[0], -1).all(axis=1).sum())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--network", type=Path, default=DEFAULT_NETWORK)
    ap.add_argument("--scenarios", type=int, default=50000)
    ap.add_argument("--toolkit-scenarios", type=int, default=None,
                    help="scenarios for the EPANET loop (default: all; the first ones); its rate is per scenario")
    ap.add_argument("--duration", type=int, default=0, help="seconds; 0 = snapshot at t = 0, 86400 = 24 h")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--demand-range", type=float, nargs=2, default=(0.7, 1.3), metavar=("LO", "HI"),
                    help="uniform range of the scenarios' demand multiplier (times the file's)")
    ap.add_argument("--backend", default="numba")
    ap.add_argument("--chunk-size", type=int, default=512)
    ap.add_argument("--accuracy", type=float, default=1e-5)
    ap.add_argument("--init-flag", type=int, choices=(0, 10), default=0,
                    help="EPANET's EN_initH flag: 0 warm start (default), 10 fresh initial flows")
    ap.add_argument("--repeats", type=int, default=2, help="interleaved runs of each side")
    ap.add_argument("--check-scenarios", type=int, default=5, help="scenarios compared before timing (0: none)")
    ap.add_argument("--tolerance-m", type=float, default=1e-3, help="largest head difference the check accepts")
    ap.add_argument("--record", default=None,
                    help="passed to the timed `parktwin run`s (e.g. head,flow: what the EPANET loop reads); default all")
    args = ap.parse_args(argv)
    if min(args.scenarios, args.repeats) < 1 or args.duration < 0:
        ap.error("--scenarios and --repeats must be >= 1, --duration >= 0")

    from bench.leak_check import check_agreement
    from bench.toolkit_loop import run_toolkit_eps_loop
    from parktwin.hydraulics.oracle import EpanetProject, epanet_version
    with EpanetProject(args.network, accuracy=args.accuracy) as ep:
        junction_ids = junction_ids_of(ep)
        n_links = ep.n_links
    junction, area, mult = make_leak_scenarios(args.scenarios, args.seed, junction_ids, tuple(args.demand_range))
    n_tk = min(args.toolkit_scenarios or args.scenarios, args.scenarios)
    run_parktwin = parktwin_runner(args.network, args.backend, args.chunk_size, args.accuracy, args.duration)

    def toolkit_rate() -> tuple[float, dict]:
        with EpanetProject(args.network, accuracy=args.accuracy) as ep:
            if args.duration:
                out = run_toolkit_eps_loop(ep, junction[:n_tk], area[:n_tk], mult[:n_tk], args.duration,
                                           init_flag=args.init_flag)
            else:
                out = run_toolkit_loop(ep, junction[:n_tk], area[:n_tk], mult[:n_tk], init_flag=args.init_flag)
        return n_tk / out["seconds"], out

    pt_runs, tk_runs = [], []
    with tempfile.TemporaryDirectory(prefix="leak-bench-") as tmp:
        tmp = Path(tmp)
        check = None
        if args.check_scenarios:
            # Untimed, and the first `parktwin run` of the session: it also loads (or compiles) the kernels.
            k = min(args.check_scenarios, args.scenarios)
            check = check_agreement(args.network, junction[:k], area[:k], mult[:k], args.duration, args.accuracy,
                                    args.init_flag, run_parktwin, tmp)
            print(f"check           {check['compared']} of {k} scenarios x {check['times']} report times"
                  f" (left out, unconverged: EPANET {check['epanet_unconverged']},"
                  f" ParkTwin {check['parktwin_unconverged']}): max |dh| {check['head_m']:.2e} m,"
                  f" max |dq| {check['flow_m3s']:.2e} m3/s", flush=True)
            if check["parktwin_only"]:
                print(f"check MISMATCH  ParkTwin leaves {check['parktwin_only']} of them unconverged where EPANET"
                      f" converges (timed all the same)")
            if not check["head_m"] <= args.tolerance_m:      # NaN (nothing compared) fails too
                print(f"check FAILED (tolerance {args.tolerance_m:g} m): not timing")
                return 1
        table, out = tmp / "leaks.csv", tmp / "leaks.h5"
        write_table(table, junction_ids, junction, area, mult)
        # Interleaved, so that neither side gets a quieter or a warmer machine: ParkTwin, EPANET, ParkTwin,
        # EPANET; each side's rate is the mean of its runs.
        for _ in range(args.repeats):
            pt_runs.append(run_parktwin(table, out, () if args.record is None else ("--record", args.record)))
            size_gib = out.stat().st_size / 1024 ** 3
            pt_converged = converged_count(out)
            out.unlink()
            tk_runs.append(toolkit_rate())
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2
    seconds = float(np.mean(pt_runs))
    tk_rate = float(np.mean([r for r, _ in tk_runs]))
    toolkit = tk_runs[-1][1]
    pt_rate = args.scenarios / seconds
    ratio = pt_rate / tk_rate
    n_junctions = len(junction_ids)
    lo, hi = args.demand_range
    kind = "snapshot" if not args.duration else f"{args.duration / 3600:g} h EPS, {len(toolkit['time_s'])} report times"
    work = (f"mean {toolkit['iterations'].mean():.1f} iterations" if not args.duration
            else f"mean {toolkit['steps'].mean():.1f} hydraulic steps")
    print(f"date            {dt.date.today().isoformat()}")
    print(f"machine         {machine_description()}")
    print(f"network         {args.network.name} ({n_junctions} junctions, {n_links} links), {kind},"
          f" ACCURACY {args.accuracy:g}, seed {args.seed}, demand multiplier {lo:g}-{hi:g} (times the file's)")
    print(f"EPANET toolkit  {epanet_version()}, EN_initH({args.init_flag}): {n_tk} scenarios, {_r(tk_rate)} scenarios/s"
          f" (mean of {', '.join(f'{_r(r)}' for r, _ in tk_runs)}; {work};"
          f" unconverged {toolkit['unbalanced']} of {n_tk})")
    print(f"parktwin run    backend {args.backend}, chunk {args.chunk_size}, {os.cpu_count()} cores: {args.scenarios}"
          f" scenarios in {seconds:.2f} s (mean of {', '.join(f'{x:.2f}' for x in pt_runs)}; whole process,"
          f" HDF5 {size_gib:.2f} GiB, recording {args.record or 'everything'}) = {_r(pt_rate)} scenarios/s; unconverged {args.scenarios - pt_converged}"
          f" of {args.scenarios}; peak memory {peak_gib:.2f} GiB")
    print(f"ratio           {ratio:.2f}x the toolkit loop")
    checked = "" if check is None else f"; heads within {check['head_m']:.1e} m of EPANET on {check['compared']}"
    print("row             "
          f"| {dt.date.today().isoformat()} | {machine_description()} | {args.network.stem} ({n_junctions} junctions,"
          f" {n_links} links), {kind}, demand x {lo:g}-{hi:g} | {args.scenarios:,} (EPANET {n_tk:,}) | {args.backend}"
          f" | {_r(tk_rate)} scenarios/s ({', '.join(f'{_r(r)}' for r, _ in tk_runs)}; EN_initH({args.init_flag});"
          f" unconverged {toolkit['unbalanced']})"
          f" | {_r(pt_rate)} scenarios/s ({', '.join(f'{x:.2f}' for x in pt_runs)} s; unconverged"
          f" {args.scenarios - pt_converged}{checked})"
          f" | **{ratio:.2f}x** | {peak_gib:.2f} GiB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
