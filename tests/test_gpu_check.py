"""bench/gpu_check.sh end to end under numba's CUDA simulator on NET1 (marker `cudasim`): the same steps as
on a GPU (GPU tests, `parktwin run` and `parktwin mc --store summary` with --backend cupy, EPANET's
toolkit loop, a results row naming the device), without touching bench/RESULTS.md."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from oracle_compare import NETWORKS

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.cudasim,
              pytest.mark.skipif(not NETWORKS.exists(), reason="../shared/networks is not beside the repository")]


def test_gpu_check_runs_end_to_end_under_the_simulator(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\nearlier content\n")
    before = (REPO / "bench" / "RESULTS.md").read_bytes()
    env = dict(os.environ, PYTHON=sys.executable)
    done = subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh"), "--simulate", "--results", str(results),
                           "--networks", str(NETWORKS)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "1 passed" in done.stdout, done.stdout[-4000:]       # the GPU test ran on NET1 under the simulator
    text = results.read_text()
    assert text.startswith("# Benchmark results\n\nearlier content\n")
    rows = [line for line in text.splitlines() if line.startswith("| 2")]
    assert len(rows) == 1, text
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert "numba CUDA simulator" in cells[1] and cells[2] == "NET1.inp" and cells[-1] == "n/a (simulator)"
    assert "6 in " in cells[3] and "6 in " in cells[4] and "x**" in cells[6], rows[0]
    assert (REPO / "bench" / "RESULTS.md").read_bytes() == before
