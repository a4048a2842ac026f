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



def test_even_chunks_split_a_run_into_nearly_equal_parts_within_the_limit():
    from parktwin.scenarios.runner import even_chunk
    np.testing.assert_array_equal([even_chunk(1000, 464), even_chunk(50000, 512), even_chunk(100, 512),
                                   even_chunk(1000, 10), even_chunk(7, 3), even_chunk(0, 512)],
                                  [336, 512, 112, 10, 3, 1])
    for n, limit in [(1000, 464), (50000, 512), (999, 500), (17, 16), (5, 1)]:
        rows = even_chunk(n, limit)
        sizes = np.diff(np.append(np.arange(0, n, rows), n))
        assert rows <= limit and len(sizes) == -(-n // limit), (n, limit, sizes)
        # the last chunk is short only by the rounding to 16 rows of the others
        assert sizes.min() > 0 and sizes[:-1].min() == rows and rows - sizes[-1] < 16 * len(sizes), \
            (n, limit, sizes)
