"""`--store summary`: solve a batch in chunks into running statistics instead of every result."""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from parktwin.hydraulics.network import NetworkArrays
from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions
from parktwin.scenarios.batch import ScenarioBatch
from parktwin.scenarios.executor import ExecutorOptions
from parktwin.scenarios.runner import (Progress, RunSummary, check_batch_quality, device_name, report_times_s, run_attrs,
                                       run_chunks)
from parktwin.scenarios.statistics import SummaryOptions
from parktwin.scenarios.summary_store import SummaryStore, read_accumulator, read_summary


class _Adding:
    """The runner writes chunks with write(); the summary store adds them to its statistics."""

    def __init__(self, store: SummaryStore):
        self.store = store

    def pending_rows(self) -> np.ndarray:
        return self.store.pending_rows()

    def write(self, rows, results) -> None:
        # Demand-driven results deliver the full demand, so nothing is unserved; a pressure-driven study
        # would need the required demand here (not yet passed through).
        self.store.add(rows, results)

    def close(self, complete: bool) -> bool:
        return self.store.close(complete=complete)


def run_summary(net: NetworkArrays, batch: ScenarioBatch, options: SolverOptions, duration_s: int, out_path,
                resume: bool = False, progress: Progress | None = None,
                executor: ExecutorOptions = ExecutorOptions(),
                summary_options: SummaryOptions | None = None) -> RunSummary:
    started = time.perf_counter()
    out_path = Path(out_path)
    check_batch_quality(net, batch, duration_s)
    summary_options = summary_options or SummaryOptions()
    if options.record is not None:
        raise ValueError("--record chooses what a full result file holds; a summary's statistics need every "
                         "quantity (use --store full with --record, or drop --record)")
    options = replace(options, result_dtype="float64")
    solver = HydraulicSolver(net, options)
    time_s = report_times_s(net, duration_s)
    if resume and out_path.exists():
        store = SummaryStore.open_for_resume(out_path, net.source_sha256, batch.ids, time_s)
        store.set_attrs({"resumed_backend": solver.backend.name, "resumed_device": device_name(solver.backend.name)})
    else:
        store = SummaryStore.create(out_path, net, batch.ids, time_s, batch.perturbations,
                                    run_attrs(solver, options, duration_s, batch.seed), summary_options)
    n_solved, complete = run_chunks(net, batch, options, duration_s, _Adding(store), executor, solver, progress)
    seconds = time.perf_counter() - started
    acc = read_accumulator(out_path).to_arrays()
    _, meta = read_summary(out_path)
    failures = {sid: str(reason) for sid, reason in zip(meta["scenario_ids"], meta["failure"]) if reason}
    return RunSummary(n_scenarios=batch.size, n_converged=int(acc["n_converged"]), n_failed=int(acc["n_failed"]),
                      failures=failures, seconds=seconds,
                      scenarios_per_second=n_solved / seconds if seconds > 0 else 0.0,
                      out_path=out_path, n_solved=n_solved, complete=complete)
