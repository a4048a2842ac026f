"""Monte-Carlo studies: a specification, expanded into perturbation rows, solved in chunks into a file.

The rows of every scenario are stored in the file (`scenario/perturbations`), so any scenario can be
replayed alone with `parktwin run`. `--store full` keeps every head and flow (DESIGN's layout);
`--store summary` keeps running statistics over the scenarios (scenarios.statistics).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hydraulics.network import NetworkArrays
from hydraulics.solver import SolverOptions
from scenarios.executor import ExecutorOptions
from scenarios.runner import Progress, RunSummary, run_batch
from scenarios.samplers import sample_batch
from scenarios.spec import ScenarioSpec

STORES = ("full", "summary")


def run_monte_carlo(net: NetworkArrays, spec: ScenarioSpec, out_path, *, store: str = "full",
                    options: SolverOptions = SolverOptions(), duration_s: int = 0,
                    executor: ExecutorOptions = ExecutorOptions(), resume: bool = False,
                    progress: Progress | None = None, float_dtype=np.float32,
                    summary_options=None) -> RunSummary:
    """Expand `spec` on `net` (validated first: nothing runs on a bad specification) and solve it."""
    if store not in STORES:
        raise ValueError(f"store: unknown store {store!r} (valid: {', '.join(STORES)})")
    spec.validate(net)
    batch = sample_batch(spec, net)
    if store == "full":
        return run_batch(net, batch, options, duration_s, Path(out_path), resume=resume, progress=progress,
                         float_dtype=float_dtype, executor=executor)
    from scenarios.summary_run import run_summary
    return run_summary(net, batch, options, duration_s, Path(out_path), resume=resume, progress=progress,
                       executor=executor, summary_options=summary_options)
