"""A Monte-Carlo job's size, estimated before it is accepted: peak memory of its worker and its result file.

The job is sampled a chunk at a time (scenarios.samplers.SampledBatch): its perturbation table is written
to the file a sampling step at a time, each solver chunk's inputs are sampled when it is solved, so memory
follows the chunk, not the job; only the scenario ids are held for the whole job.

    memory = rows a step x TABLE_ROW_BYTES                  (one step of the table, being written)
           + rows a chunk x INPUT_ROW_BYTES                 (one chunk's inputs, being sampled)
           + scenarios x ID_BYTES                           (the scenario ids)
           + 2 x chunk x times x (4 nodes + 2 links) x 8 B  (two solved chunks in flight)
    disk   = scenarios x times x (4 nodes x f + links x (f + 1) + 5) B   (store=full, f = 4: float32)
           = times x (nodes + links) x 8 B x SUMMARY_STATISTICS          (store=summary)

Perturbation rows per scenario are counted on the specification's first few scenarios, expanded by the
sampler itself, so the estimate follows whatever the sampler does; a step is `samplers.sampling_step`
scenarios (at most a chunk and about SAMPLE_ROWS rows). The byte counts are measured (tracemalloc, on the
development VM): 2000 scenarios of per-junction demand noise, roughness and one leak on the example
supply network (1.21 M rows) took 1.21 GB while their table was built, about 1 KB a row (0.73 KB on
L-Town); sampling 2048 L-Town scenarios' inputs directly (3.4 M rows) peaked at 79 B a row; a tuple of
scenario ids costs about 110 B an id at its peak.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TABLE_ROW_BYTES = 1100
INPUT_ROW_BYTES = 100
ID_BYTES = 120
RESULT_NODE_ARRAYS, RESULT_LINK_ARRAYS = 4, 2
SUMMARY_STATISTICS = 8
SAMPLE_SCENARIOS = 32
FULL_STORE_FLOAT_BYTES = 4  # run_monte_carlo writes float32


@dataclass(frozen=True)
class JobSize:
    scenarios: int
    times: int
    nodes: int
    links: int
    perturbation_rows: int
    memory_bytes: int
    disk_bytes: int

    def describe(self) -> str:
        return (f"{self.scenarios} scenarios x {self.times} report times x ({self.nodes} nodes, {self.links} links), "
                f"{self.perturbation_rows} perturbation rows: about {human(self.memory_bytes)} of memory and "
                f"{human(self.disk_bytes)} on disk")


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def estimate_job(net, spec, store: str, duration_s: int, chunk_size: int) -> JobSize:
    from parktwin.scenarios.runner import report_times_s
    from parktwin.scenarios.samplers import expand, sampling_step
    b, n, links = int(spec.scenarios), int(net.n_nodes), int(net.n_links)
    t = len(report_times_s(net, duration_s))
    k = min(b, SAMPLE_SCENARIOS)
    per_scenario = len(expand(spec, net, 0, k)) / max(k, 1)
    rows = int(np.ceil(per_scenario * b))
    chunk = min(b, max(int(chunk_size), 1))
    step = min(b, sampling_step(spec, net, chunk))
    memory = (int(np.ceil(per_scenario * step)) * TABLE_ROW_BYTES
              + int(np.ceil(per_scenario * chunk)) * INPUT_ROW_BYTES
              + b * ID_BYTES
              + 2 * chunk * t * (RESULT_NODE_ARRAYS * n + RESULT_LINK_ARRAYS * links) * 8)
    if store == "full":
        f = FULL_STORE_FLOAT_BYTES
        disk = b * t * (RESULT_NODE_ARRAYS * n * f + links * (f + 1) + 5)
    else:
        disk = t * (n + links) * 8 * SUMMARY_STATISTICS
    return JobSize(b, t, n, links, rows, int(memory), int(disk))
