"""A Monte-Carlo job's size, estimated before it is accepted: peak memory of its worker and its result file.

    memory = perturbation rows x TABLE_ROW_BYTES          (the job's perturbation table, built whole)
           + 2 x chunk x times x (4 nodes + 2 links) x 8 B  (two solved chunks in flight)
    disk   = scenarios x times x (4 nodes x f + links x (f + 1) + 5) B   (store=full, f = 4: float32)
           = times x (nodes + links) x 8 B x SUMMARY_STATISTICS          (store=summary)

Perturbation rows per scenario are counted on the specification's first few scenarios, expanded by the
sampler itself, so the estimate follows whatever the sampler does. TABLE_ROW_BYTES is measured: 2000
scenarios of per-junction demand noise, roughness and one leak on the example supply network (1.21 M
rows) took 1.21 GB of peak memory on the development VM; 20,000 scenarios of one leak and a uniform demand
(40,000 rows) 41 MB. The batch built from the table is sparse (0.15 MB for those 20,000): not counted.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TABLE_ROW_BYTES = 1100
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
    from parktwin.scenarios.samplers import expand
    b, n, links = int(spec.scenarios), int(net.n_nodes), int(net.n_links)
    t = len(report_times_s(net, duration_s))
    k = min(b, SAMPLE_SCENARIOS)
    rows = int(np.ceil(len(expand(spec, net, 0, k)) * b / max(k, 1)))
    chunk = min(b, max(int(chunk_size), 1))
    memory = (rows * TABLE_ROW_BYTES
              + 2 * chunk * t * (RESULT_NODE_ARRAYS * n + RESULT_LINK_ARRAYS * links) * 8)
    if store == "full":
        f = FULL_STORE_FLOAT_BYTES
        disk = b * t * (RESULT_NODE_ARRAYS * n * f + links * (f + 1) + 5)
    else:
        disk = t * (n + links) * 8 * SUMMARY_STATISTICS
    return JobSize(b, t, n, links, rows, int(memory), int(disk))
