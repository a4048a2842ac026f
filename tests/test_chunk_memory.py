"""A chunk's results stay under the runner's memory bound, whatever the run's length (scenarios.runner)."""
from __future__ import annotations

import dataclasses

import numpy as np

from oracle_compare import NETWORKS

LTOWN = NETWORKS / "benchmarks" / "l-town.inp"


def _bytes_per_chunk(net, options, time_s, rows):
    from parktwin.hydraulics.results import ResultSet, recorded_quantities
    res = ResultSet.allocate(net.node_ids, net.link_ids, time_s, rows, dtype=options.result_dtype, prefill=False,
                             quantities=recorded_quantities(options.record))
    return sum(getattr(res, f.name).nbytes for f in dataclasses.fields(ResultSet)
               if isinstance(getattr(res, f.name), np.ndarray) and f.name != "time_s")


def test_long_runs_get_smaller_chunks_within_the_bound():
    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.solver import SolverOptions
    from parktwin.scenarios.runner import CHUNK_RESULT_BYTES, chunk_rows, report_times_s
    net = load_network(LTOWN)
    snapshot, day = report_times_s(net, 0), report_times_s(net, 86400)
    single = SolverOptions(chunk_size=512, result_dtype="float32")
    # a snapshot chunk is far below the bound: --chunk-size stands
    assert chunk_rows(net, single, snapshot) == 512
    # a day at 5-minute reports is not: fewer scenarios, and the bound holds with one more it would not
    rows = chunk_rows(net, single, day)
    assert 1 <= rows < 512
    assert _bytes_per_chunk(net, single, day, rows) <= CHUNK_RESULT_BYTES
    assert _bytes_per_chunk(net, single, day, rows + 1) > CHUNK_RESULT_BYTES
    # double precision halves it; recording less allows more
    assert chunk_rows(net, dataclasses.replace(single, result_dtype="float64"), day) < rows
    assert chunk_rows(net, SolverOptions(chunk_size=512, result_dtype="float32", record=("pressure",)), day) > rows

