"""The batch runner: one solver, scenarios in chunks, every chunk streamed to the HDF5 store.

    summary = run_batch(net, batch, SolverOptions(backend="numba", chunk_size=2048), 0, "out.h5")
    summary = run_batch(net, batch, options, 0, "out.h5", resume=True)   # after an interruption

Memory is bounded by one chunk whatever the batch size: a chunk is solved, written and dropped before the
next one starts. One HydraulicSolver serves the whole run so its symbolic plan (ordering, factor pattern) is
built once. A scenario that fails is recorded in the file and the summary, never raised; an exception
from `progress` (or Ctrl-C) stops the run and leaves a file marked incomplete that `resume=True` finishes.
"""
from __future__ import annotations

import dataclasses
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

from parktwin.hydraulics.inputs import BatchInputs
from parktwin.hydraulics.network import NetworkArrays
from parktwin.hydraulics.quality import check_quality_inputs, quality_model, solve_with_quality
from parktwin.hydraulics.results import ResultSet, recorded_quantities, records_quality
from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions
from parktwin.scenarios.batch import ScenarioBatch
from parktwin.scenarios.executor import ExecutorOptions, solve_chunks
from parktwin.scenarios.store import ResultStore, recorded_names

Progress = Callable[[int, int], None]   # (scenarios done, scenarios in the batch)


@dataclass(frozen=True)
class RunSummary:
    n_scenarios: int            # in the batch (and the file)
    n_converged: int            # converged at every report time
    n_failed: int               # with a failure reason; not converged but unfailed (UNBALANCED CONTINUE) is neither
    failures: dict              # {scenario id: reason}
    seconds: float              # wall time of this call
    scenarios_per_second: float  # scenarios solved by this call / seconds
    out_path: Path
    n_solved: int = 0           # solved by this call (fewer than n_scenarios when resuming)
    complete: bool = False      # the file holds every scenario


def report_times_s(net: NetworkArrays, duration_s: int) -> np.ndarray:
    """The time axis the solver will report: [0] for a snapshot, else the network's report times."""
    if not duration_s or duration_s <= 0:
        return np.zeros(1, np.int64)
    from parktwin.hydraulics.extended import report_times
    return report_times(net, int(duration_s))


def device_name(backend_name: str) -> str:
    from parktwin.kernels.registry import cuda_simulated
    if backend_name == "cupy" and cuda_simulated():
        return f"numba CUDA simulator on {device_name('numpy')}"
    if backend_name == "cupy":
        import cupy  # only reached when the cupy backend was chosen, so cupy is importable
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        name = props["name"]
        return name.decode() if isinstance(name, bytes) else str(name)
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"cpu: {model or platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def run_attrs(solver: HydraulicSolver, options: SolverOptions, duration_s: int, seed) -> dict:
    """Root attributes describing how the file was made (backend, device, the solver options)."""
    attrs = {"backend": solver.backend.name, "device": device_name(solver.backend.name),
             "duration_s": int(duration_s or 0), "seed": seed}
    if records_quality(options.record):
        attrs.update(quality_attrs(solver.net, duration_s))
    for field in dataclasses.fields(options):
        value = getattr(options, field.name)
        attrs[f"solver_{field.name}"] = ",".join(value) if isinstance(value, tuple) else value
    return attrs


def quality_attrs(net: NetworkArrays, duration_s: int) -> dict:
    """quality_kind (chemical, age, trace) and quality_units when the run records water quality."""
    model = quality_model(net) if duration_s and duration_s > 0 else None
    return {} if model is None else {"quality_kind": model.kind_name, "quality_units": model.units}


def _failed_results(net: NetworkArrays, time_s: np.ndarray, reason: str, record=None) -> ResultSet:
    res = ResultSet.allocate(net.node_ids, net.link_ids, time_s, 1, quantities=recorded_quantities(record))
    res.failure[0] = reason
    return res


def _concat(parts: list[ResultSet]) -> ResultSet:
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    stack = {}
    for f in dataclasses.fields(ResultSet):
        if f.name in ("node_ids", "link_ids", "time_s"):
            continue
        values = [getattr(p, f.name) for p in parts]
        if all(v is None for v in values):
            stack[f.name] = None
            continue
        # A scenario that failed outright has no quality arrays: NaN, like its other results.
        like = next(v for v in values if v is not None)
        stack[f.name] = np.concatenate([np.full((p.batch_size,) + like.shape[1:], np.nan, like.dtype) if v is None
                                        else v for p, v in zip(parts, values)], axis=0)
    return ResultSet(node_ids=first.node_ids, link_ids=first.link_ids, time_s=first.time_s, **stack)


def _solve_rows(solver: HydraulicSolver, inputs: BatchInputs, rows: np.ndarray, duration_s: int,
                time_s: np.ndarray) -> ResultSet:
    """Solve `rows` together; if the batch raises, bisect so one bad scenario costs only itself."""
    try:
        return solve_with_quality(solver, inputs.subset(rows), duration_s)
    # Any error is recorded as that scenario's failure reason: DESIGN says one bad scenario never fails
    # a batch. KeyboardInterrupt and SystemExit are not Exceptions and still stop the run.
    except Exception as error:  # noqa: BLE001
        if len(rows) == 1:
            return _failed_results(solver.net, time_s, f"solver error: {type(error).__name__}: {error}",
                                   solver.options.record)
    half = len(rows) // 2
    return _concat([_solve_rows(solver, inputs, rows[:half], duration_s, time_s),
                    _solve_rows(solver, inputs, rows[half:], duration_s, time_s)])


def check_batch_quality(net: NetworkArrays, batch, duration_s: int) -> None:
    """hydraulics.quality.check_quality_inputs for the whole batch, asked of its first scenario: every
    scenario of a batch has the same kinds of input, and a sampled batch (scenarios.samplers.SampledBatch)
    is not sampled whole for it."""
    check_quality_inputs(net, batch.inputs.subset(np.arange(min(batch.size, 1))), duration_s)


def run_batch(net: NetworkArrays, batch: ScenarioBatch, options: SolverOptions, duration_s: int,
              out_path, resume: bool = False, progress: Progress | None = None,
              float_dtype=np.float64, executor: ExecutorOptions = ExecutorOptions()) -> RunSummary:
    """Solve every scenario of `batch` into `out_path` (HDF5, DESIGN's layout), chunk by chunk. `batch` is a
    ScenarioBatch, or a SampledBatch (scenarios.samplers), whose chunks are sampled as they are solved.

    resume=True re-opens an existing `out_path` (same network, scenario ids, times and recorded quantities,
    else StoreMismatch) and solves only the scenarios not yet done; without a file it starts afresh.
    `options.record` chooses what the file records (None: everything).
    """
    started = time.perf_counter()
    out_path = Path(out_path)
    check_batch_quality(net, batch, duration_s)
    # The solver writes its results straight in the file's precision.
    options = replace(options, result_dtype=np.dtype(float_dtype).name)
    solver = HydraulicSolver(net, options)
    time_s = report_times_s(net, duration_s)
    chunk = even_chunk(batch.size, chunk_rows(net, options, time_s))
    if resume and out_path.exists():
        quality = records_quality(options.record) and bool(quality_attrs(net, duration_s))
        store = ResultStore.open_for_resume(out_path, net.source_sha256, batch.ids, time_s,
                                            recorded_names(recorded_quantities(options.record), quality))
        store.set_attrs({"resumed_backend": solver.backend.name,
                         "resumed_device": device_name(solver.backend.name)})
    else:
        attrs = run_attrs(solver, options, duration_s, batch.seed)
        # HDF5 chunks that divide the solver chunk keep every write aligned (no read-modify-write).
        store = ResultStore.create(out_path, net, batch.ids, time_s, batch.perturbations, attrs,
                                   float_dtype=float_dtype,
                                   scenarios_per_chunk=_divisor_at_most(chunk, 256),
                                   quantities=recorded_quantities(options.record))
    n_solved, complete = run_chunks(net, batch, options, duration_s, store, executor, solver, progress)
    seconds = time.perf_counter() - started
    return _summary(out_path, seconds, n_solved, complete)


def run_chunks(net: NetworkArrays, batch: ScenarioBatch, options: SolverOptions, duration_s: int, store,
               executor: ExecutorOptions, solver: HydraulicSolver | None = None,
               progress: Progress | None = None) -> tuple[int, bool]:
    """Solve the store's pending scenarios chunk by chunk into `store` (anything with pending_rows(),
    write(rows, results) and close(complete)); returns (scenarios solved, whether the store is complete)."""
    time_s = report_times_s(net, duration_s)
    chunk = even_chunk(batch.size, chunk_rows(net, options, time_s))
    finished = False
    n_solved = 0
    # One chunk is written in the background while the next is solved (the solver's compiled kernel
    # releases the GIL); at most two chunks are ever in memory, and every write finishes before close.
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parktwin-writer")
    in_flight = None
    try:
        pending = store.pending_rows()
        n_done = batch.size - len(pending)
        chunks = [pending[start: start + chunk] for start in range(0, len(pending), chunk)]
        solve = partial(_solve_rows, duration_s=duration_s, time_s=time_s)
        # A written chunk's result arrays go back to the in-process solver for the chunk after next.
        reuse = solver if not executor.distributed else None
        for rows, results in solve_chunks(net, batch.inputs, chunks, options, solve, executor, solver=solver):
            if in_flight is not None:
                n_done += _finish(in_flight, progress, n_done, batch.size, reuse)
            in_flight = (writer.submit(store.write, rows, results), len(rows), results)
            del results
            n_solved += len(rows)
        if in_flight is not None:
            n_done += _finish(in_flight, progress, n_done, batch.size, reuse)
            in_flight = None
        finished = True
    finally:
        writer.shutdown(wait=True)   # a write still running completes: the file stays consistent
        complete = store.close(complete=finished)
    return n_solved, complete


def _finish(in_flight, progress, n_done: int, total: int, reuse: HydraulicSolver | None = None) -> int:
    """Wait for a background write (re-raising its error), hand its results back to `reuse` (the solver
    that made them), then report progress; returns its rows."""
    future, n_rows, results = in_flight
    future.result()
    if reuse is not None:
        reuse.give_back(results)
    if progress is not None:
        progress(n_done + n_rows, total)
    return n_rows


# The most one chunk's results may take in memory. A run holds two (one being written, one being filled),
# so this bounds a run's memory whatever its length: a day of L-Town at 5-minute reports is 4.9 MB per
# scenario in float32, and 512 scenarios would be 2.5 GB a chunk.
CHUNK_RESULT_BYTES = 1 << 30


def chunk_rows(net: NetworkArrays, options: SolverOptions, time_s: np.ndarray) -> int:
    """Scenarios per chunk: options.chunk_size, fewer where one chunk's results would pass
    CHUNK_RESULT_BYTES."""
    from parktwin.hydraulics.quality import quality_model
    from parktwin.hydraulics.results import records_quality, recorded_quantities
    one = ResultSet.allocate(net.node_ids, net.link_ids, time_s, 1, dtype=options.result_dtype, prefill=False,
                             quantities=recorded_quantities(options.record))
    per_scenario = sum(getattr(one, f.name).nbytes for f in dataclasses.fields(ResultSet)
                       if isinstance(getattr(one, f.name), np.ndarray) and f.name not in ("time_s",))
    if len(time_s) > 1 and records_quality(options.record) and quality_model(net) is not None:
        per_scenario += len(time_s) * (net.n_nodes + net.n_links) * np.dtype(options.result_dtype).itemsize
    return max(1, min(int(options.chunk_size), CHUNK_RESULT_BYTES // max(per_scenario, 1)))


def even_chunk(n_scenarios: int, limit: int, multiple: int = 16) -> int:
    """Rows per chunk for n_scenarios in chunks of at most `limit`: as many chunks as `limit` needs, of
    nearly equal size (a multiple of `multiple` where that stays within the limit). 1,000 scenarios at a
    limit of 464 are 336 + 336 + 328, not 464 + 464 + 72: the threads of a small last chunk idle."""
    n_chunks = max(1, -(-n_scenarios // max(limit, 1)))
    rows = -(-n_scenarios // n_chunks)
    rounded = -(-rows // multiple) * multiple
    return max(1, rounded if rounded <= limit else min(rows, limit))


def _divisor_at_most(n: int, limit: int) -> int | None:
    """The largest divisor of n not above limit, so HDF5 chunks tile an n-row write; None (the store's
    own choice) when only tiny divisors exist, since 1-scenario HDF5 chunks would make writing crawl."""
    for d in range(min(n, limit), 0, -1):
        if n % d == 0:
            return d if d >= min(n, 16) else None
    return None


def _summary(out_path: Path, seconds: float, n_solved: int, complete: bool) -> RunSummary:
    """Counts over the whole file, so a resumed run reports every scenario, not just this call's."""
    with h5py.File(out_path, "r") as f:
        done = f["scenario/done"][()]
        # Failure reasons as bytes: decoding every row's string cost 0.4 s on 50,000 scenarios, and only
        # the failed rows' ids and reasons are wanted.
        failure = f["scenario/failure"][()]
        failed = np.flatnonzero(done & (failure != b""))
        ids = f["scenario/ids"].asstr()[failed] if len(failed) else []
        reasons = f["scenario/failure"].asstr()[failed] if len(failed) else []
        converged = done.copy()
        n_rows = len(done)
        step = 65536   # the converged flags are [B, T]: read in slices so a huge T*B stays bounded
        for lo in range(0, n_rows, step):
            converged[lo: lo + step] &= f["solver/converged"][lo: lo + step].all(axis=1)
    failures = {str(i): str(r) for i, r in zip(ids, reasons)}
    return RunSummary(
        n_scenarios=int(n_rows), n_converged=int(converged.sum()), n_failed=len(failures),
        failures=failures, seconds=seconds,
        scenarios_per_second=n_solved / seconds if seconds > 0 else float("inf"),
        out_path=out_path, n_solved=n_solved, complete=complete)


def solve_network(net: NetworkArrays, options: SolverOptions = SolverOptions(), duration_s: int = 0) -> ResultSet:
    """The base case alone (no perturbations), in memory."""
    return HydraulicSolver(net, options).run(BatchInputs.base(1), duration_s)
