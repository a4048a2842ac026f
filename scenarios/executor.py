"""Where chunks of scenarios are solved: in this process, or on a Ray cluster.

Every chunk is solved independently by one HydraulicSolver per process (its symbolic plan reused for all
chunks that process sees), and a scenario's answer does not depend on which other scenarios share its
chunk (tests/test_equivalence.py), so results are the same, bit for bit, whatever the chunk size, the number
of workers or the order in which chunks complete. Chunks come back in completion order; the stores accept
any order and count every scenario once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from parktwin.hydraulics.inputs import BatchInputs
from parktwin.hydraulics.network import NetworkArrays
from parktwin.hydraulics.results import ResultSet
from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions

SolveChunk = Callable[[HydraulicSolver, BatchInputs, np.ndarray], ResultSet]


@dataclass(frozen=True)
class ExecutorOptions:
    workers: int = 0                 # 0: solve in this process; K > 0: start a local Ray cluster of K workers
    ray_address: str | None = None   # join an existing Ray cluster instead
    max_retries: int = 3             # a chunk whose worker dies is solved again, up to this many times
    gpu_per_worker: float = 0.0      # ask Ray for a GPU per chunk (backend cupy)

    @property
    def distributed(self) -> bool:
        return self.workers > 0 or bool(self.ray_address)


def solve_chunks(net: NetworkArrays, inputs: BatchInputs, chunks: list[np.ndarray], options: SolverOptions,
                 solve: SolveChunk, executor: ExecutorOptions = ExecutorOptions(),
                 solver: HydraulicSolver | None = None) -> Iterator[tuple[np.ndarray, ResultSet]]:
    """Yield (rows, results) for every chunk of row indices, in completion order (in-process: in order,
    with `solver` if given)."""
    if not executor.distributed:
        solver = solver or HydraulicSolver(net, options)
        for rows in chunks:
            yield rows, solve(solver, inputs, rows)
        return
    yield from _solve_on_ray(net, inputs, chunks, options, solve, executor)


def _solve_on_ray(net, inputs, chunks, options, solve, executor: ExecutorOptions):
    import ray   # only distributed runs pay Ray's import
    started_here = False
    if not ray.is_initialized():
        if executor.ray_address:
            ray.init(address=executor.ray_address, log_to_driver=False)
        else:
            ray.init(num_cpus=executor.workers, include_dashboard=False, log_to_driver=False)
            started_here = True
    try:
        if executor.gpu_per_worker > 0 and ray.cluster_resources().get("GPU", 0) < executor.gpu_per_worker:
            # A task asking for a GPU the cluster does not have would wait forever.
            raise RuntimeError(f"backend {options.backend!r} needs a GPU per worker, and the Ray cluster has "
                               f"{ray.cluster_resources().get('GPU', 0):g}")
        net_ref = ray.put(net)
        remote = ray.remote(num_cpus=1, num_gpus=executor.gpu_per_worker,
                            max_retries=executor.max_retries)(_solve_remote)
        pending = {}
        for rows in chunks:
            ref = remote.remote(net_ref, inputs.subset(rows), rows, options, solve)
            pending[ref] = rows
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            ref = done[0]
            rows = pending.pop(ref)
            yield rows, ray.get(ref)
    finally:
        if started_here:
            ray.shutdown()


_WORKER_SOLVERS: dict = {}


def _solve_remote(net: NetworkArrays, inputs: BatchInputs, rows: np.ndarray, options: SolverOptions,
                  solve: SolveChunk) -> ResultSet:
    """Runs in a Ray worker: one solver per network and options, kept for the worker's later chunks."""
    key = (net.source_sha256, options)
    solver = _WORKER_SOLVERS.get(key)
    if solver is None:
        solver = _WORKER_SOLVERS[key] = HydraulicSolver(net, options)
    return solve(solver, inputs, np.arange(inputs.batch_size))
