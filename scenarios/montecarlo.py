"""Monte-Carlo studies: a specification, expanded into perturbation rows, solved in chunks into a file.

The rows of every scenario are stored in the file (`scenario/perturbations`), so any scenario can be
replayed alone with `parktwin run`. `--store full` keeps every head and flow (DESIGN's layout);
`--store summary` keeps running statistics over the scenarios (scenarios.statistics).

Sampling goes chunk by chunk, never the whole job at once (scenarios.samplers.SampledBatch): the table is
written to the file a step of at most a solver chunk (and about SAMPLE_ROWS rows) at a time before the
first chunk is solved, and each chunk's inputs are sampled when it is solved. A scenario's values depend
on the specification, the network and its index only, so the file is the same whatever the chunk size,
the workers or an interruption and resume.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from parktwin.hydraulics.network import NetworkArrays
from parktwin.hydraulics.solver import SolverOptions
from parktwin.scenarios.executor import ExecutorOptions
from parktwin.scenarios.runner import Progress, RunSummary, report_times_s, run_batch
from parktwin.scenarios.samplers import SampledBatch
from parktwin.scenarios.spec import ScenarioSpec
from parktwin.scenarios.statistics import SummaryOptions
from parktwin.scenarios.summary_run import run_summary

STORES = ("full", "summary")
HISTOGRAM_BUDGET_BYTES = 256 * 2 ** 20
# Bin widths that divide the default 300 m histogram range exactly.
_BIN_WIDTHS_M = (0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0)


def summary_options_for(net: NetworkArrays, n_times: int, service_pressure_m: float | None = None):
    """Summary options whose pressure histograms fit HISTOGRAM_BUDGET_BYTES: a histogram per node and report
    time, so a long extended-period study gets wider bins (quantiles stay within one bin) instead of
    gigabytes of state."""
    base = SummaryOptions() if service_pressure_m is None else SummaryOptions(service_pressure_m=service_pressure_m)
    span = base.pressure_hist_high_m - base.pressure_hist_low_m
    for width in _BIN_WIDTHS_M:
        if max(n_times, 1) * net.n_nodes * 4 * (span / width + 2) <= HISTOGRAM_BUDGET_BYTES:
            break
    return replace(base, pressure_bin_m=width)


def run_monte_carlo(net: NetworkArrays, spec: ScenarioSpec, out_path, *, store: str = "full",
                    options: SolverOptions = SolverOptions(), duration_s: int = 0,
                    executor: ExecutorOptions = ExecutorOptions(), resume: bool = False,
                    progress: Progress | None = None, float_dtype=np.float32,
                    summary_options=None) -> RunSummary:
    """Sample `spec` on `net` (validated first: nothing runs on a bad specification) and solve it, a chunk
    of options.chunk_size scenarios at a time."""
    if store not in STORES:
        raise ValueError(f"store: unknown store {store!r} (valid: {', '.join(STORES)})")
    batch = SampledBatch.of(spec, net, max(int(options.chunk_size), 1))
    if store == "full":
        return run_batch(net, batch, options, duration_s, Path(out_path), resume=resume, progress=progress,
                         float_dtype=float_dtype, executor=executor)
    if summary_options is None:
        summary_options = summary_options_for(net, len(report_times_s(net, duration_s)))
    return run_summary(net, batch, options, duration_s, Path(out_path), resume=resume, progress=progress,
                       executor=executor, summary_options=summary_options)
