"""The benchmark half of bench/gpu_check.sh: L-Town leak scenarios on the cupy backend, against one core of
EPANET's toolkit loop on the same machine, with the peak device memory; appends a row to RESULTS.md.

    python -m bench.gpu_check --results bench/RESULTS.md [--network l-town.inp] [--run-scenarios N]
        [--mc-scenarios M] [--toolkit-scenarios K] [--chunk-size C]

Measured, never estimated: under numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1) the row says so and gives
no device memory. `parktwin run` is timed as a whole process (start-up, table, solve, HDF5), `parktwin mc
--store summary` likewise (sampling, solve, running statistics).
"""
from __future__ import annotations

import argparse
import datetime as dt
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

# parktwin first: bench.toolkit_loop puts the repository root on sys.path, whose parktwin/ (the facade
# alone) must not shadow the installed package or gpu_check.sh's linked tree.
import parktwin.hydraulics  # noqa: E402,F401,I001
from bench.run_leak_benchmark import DEFAULT_NETWORK, write_table
from bench.toolkit_loop import junction_ids_of, make_leak_scenarios, run_toolkit_loop

NOT_YET = "Not run on a GPU yet"
HEADER = """
## GPU device check (`bench/gpu_check.sh`)

L-Town leak scenarios (`bench/toolkit_loop.py: make_leak_scenarios`, seed 1, for `parktwin run`; `parktwin
mc --leaks 1 --leak-median-m2 1e-4 --leak-sigma 0.8 --demand-min 0.7 --demand-max 1.3` for the summary run:
log-normal leak areas, median 1e-4 m²) on the cupy backend, ACCURACY 1e-5 for `run`, the network's for `mc`,
snapshot; EPANET's toolkit loop (one core, the same machine) on the first scenarios of the same table.
Whole processes. Peak device memory: the most `nvidia-smi` read during the two runs, less what was in use
before.

| date | device | network | `parktwin run` | `parktwin mc --store summary` | EPANET toolkit, one core | ratio run / mc | peak device memory |
| --- | --- | --- | --- | --- | --- | --- | --- |
"""


class DeviceMemoryPeak:
    """Samples the device's used memory with nvidia-smi while it runs (None where there is none)."""

    def __init__(self, period_s: float = 0.1):
        self.period_s = period_s
        self.smi = shutil.which("nvidia-smi")
        self.baseline_mib = self.peak_mib = None
        self._stop = threading.Event()
        self._thread = None

    def _read_mib(self) -> float:
        out = subprocess.run([self.smi, "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
                             capture_output=True, text=True, check=True).stdout
        return float(out.split()[0])

    def __enter__(self):
        if self.smi:
            self.baseline_mib = self.peak_mib = self._read_mib()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(self.period_s):
            self.peak_mib = max(self.peak_mib, self._read_mib())

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def describe(self) -> str:
        if self.peak_mib is None:
            return "n/a (no nvidia-smi)"
        return f"{(self.peak_mib - self.baseline_mib) / 1024:.2f} GiB"


def timed_cli(args: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "parktwin.api.cli", *args], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"parktwin {' '.join(args[:2])} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--network", type=Path, default=DEFAULT_NETWORK)
    ap.add_argument("--results", type=Path, required=True, help="markdown file the row is appended to")
    ap.add_argument("--run-scenarios", type=int, default=200_000)
    ap.add_argument("--mc-scenarios", type=int, default=1_000_000)
    ap.add_argument("--toolkit-scenarios", type=int, default=20_000)
    ap.add_argument("--chunk-size", type=int, default=65_536)
    ap.add_argument("--accuracy", type=float, default=1e-5)
    args = ap.parse_args(argv)

    from parktwin.hydraulics.oracle import EpanetProject, epanet_version
    from parktwin.kernels.registry import available_backends, cuda_simulated
    from parktwin.scenarios.runner import device_name
    state = available_backends()["cupy"]
    if state != "available":
        raise SystemExit(f"the cupy backend is not available here: {state}")
    device = device_name("cupy")

    with EpanetProject(args.network, accuracy=args.accuracy) as ep:
        junction_ids = junction_ids_of(ep)
    junction, area, mult = make_leak_scenarios(args.run_scenarios, 1, junction_ids)
    n_tk = min(args.toolkit_scenarios, args.run_scenarios)
    with EpanetProject(args.network, accuracy=args.accuracy) as ep:
        toolkit = run_toolkit_loop(ep, junction[:n_tk], area[:n_tk], mult[:n_tk])
    tk_rate = n_tk / toolkit["seconds"]

    common = ["--backend", "cupy", "--chunk-size", str(args.chunk_size)]
    with tempfile.TemporaryDirectory() as tmp, DeviceMemoryPeak() as memory:
        table = Path(tmp) / "leaks.csv"
        write_table(table, junction_ids, junction, area, mult)
        run_s = timed_cli(["run", str(args.network), "--scenarios", str(table), "--out", str(Path(tmp) / "run.h5"),
                           "--accuracy", str(args.accuracy), *common])
        mc_s = timed_cli(["mc", str(args.network), "--scenarios", str(args.mc_scenarios), "--seed", "1",
                          "--leaks", "1", "--leak-median-m2", "1e-4", "--leak-sigma", "0.8",
                          "--demand-min", "0.7", "--demand-max", "1.3", "--store", "summary",
                          "--out", str(Path(tmp) / "mc.h5"), *common])
    run_rate, mc_rate = args.run_scenarios / run_s, args.mc_scenarios / mc_s
    memory_text = "n/a (simulator)" if cuda_simulated() else memory.describe()
    row = (f"| {dt.date.today().isoformat()} | {device} | {args.network.name} "
           f"| {args.run_scenarios:,} in {run_s:.2f} s = {run_rate:,.0f}/s (chunk {args.chunk_size:,}) "
           f"| {args.mc_scenarios:,} in {mc_s:.2f} s = {mc_rate:,.0f}/s "
           f"| {epanet_version()}: {tk_rate:,.0f}/s ({n_tk:,} scenarios, {np.mean(toolkit['iterations']):.1f} iterations) "
           f"| **{run_rate / tk_rate:.2f}x** / **{mc_rate / tk_rate:.2f}x** | {memory_text} |\n")
    text = args.results.read_text() if args.results.exists() else "# Benchmark results\n"
    args.results.write_text(add_row(text, row, on_gpu=not cuda_simulated()))
    print(row, end="")
    return 0


def add_row(text: str, row: str, on_gpu: bool) -> str:
    """`text` with `row` at the end of the GPU section's table (the section added if missing); a row from a
    GPU removes the note that none has run yet."""
    title = HEADER.strip().splitlines()[0]
    if title not in text:
        text = text.rstrip("\n") + "\n" + HEADER
    lines = text.splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.strip() == title)
    if on_gpu:
        lines = [line for i, line in enumerate(lines) if i <= at or not line.startswith(NOT_YET)]
    while not lines[at].startswith("|"):
        at += 1
    while at < len(lines) and lines[at].startswith("|"):
        at += 1
    return "".join(lines[:at] + [row] + lines[at:])


if __name__ == "__main__":
    sys.exit(main())
