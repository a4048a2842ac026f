"""The `parktwin` command line end to end (DESIGN: "Command line", "HDF5 result layout").

Every test runs the real command as a subprocess (`python -m api.cli ...` from the repository root) and
checks what a user sees: the exit status, stdout/stderr and the result file. Results read back from the
file are compared with the same scenarios solved in this process through the library.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"
NETWORK_ONE = SHARED / "networks" / "epanet-tests" / "network_one"
NET1 = NETWORK_ONE / "NET1.inp"
NET1_3 = NETWORK_ONE / "NET1-3.inp"    # NET1 with its pump controls on and a 12 h duration

pytestmark = pytest.mark.skipif(not (NET1.is_file() and NET1_3.is_file()),
                                reason=f"shared networks not found under {SHARED} (../shared is missing)")

FLOAT_FIELDS = ("head_m", "pressure_m", "demand_m3s", "leak_m3s", "flow_m3s")
EXACT_FIELDS = ("status", "converged", "iterations")

# A small what-if table on NET1's ids: leaks (one with its own Cd), demand multipliers ('*' and a
# per-junction override), a closed pipe, a tank level (NET1's tank 2 spans 30.48-45.72 m), a pump speed.
SCENARIO_TABLE = """\
scenario,element,attribute,value
leak_12,12,leak_area_m2,0.0005
leak_two,21,leak_area_m2,0.001
leak_two,21,leak_cd,0.6
leak_two,32,leak_area_m2,0.0002
demand_all,*,demand_multiplier,1.25
demand_mixed,*,demand_multiplier,0.8
demand_mixed,13,demand_multiplier,1.5
closed_112p,112p,status,closed
tank_low,2,tank_level_m,33.0
pump_slow,9,pump_speed,0.9
combo,22,leak_area_m2,0.0008
combo,111p,status,closed
combo,9,pump_speed,1.1
"""


# ---------------------------------------------------------------------- helpers
def _env() -> dict[str, str]:
    env = dict(os.environ)
    # A narrow terminal width makes any wrapping of messages show; colours would put escapes in the text.
    env["COLUMNS"] = "60"
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "PARKTWIN_TRACEBACK"):
        env.pop(name, None)
    env["NO_COLOR"] = "1"
    return env


def cli(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `parktwin ARGS` as a user would, from the repository root."""
    return subprocess.run([sys.executable, "-m", "api.cli", *map(str, args)], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=timeout)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc


def one_error_line(proc: subprocess.CompletedProcess, *needles: str, code: int = 2) -> str:
    """Exit status `code` and exactly one non-empty line on stderr (no traceback, no wrapping) that
    contains every needle; returns that line."""
    detail = f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == code, detail
    assert "Traceback" not in proc.stderr, detail
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].strip(), f"expected one line on stderr\n{detail}"
    line = lines[0]
    assert line.startswith("error:"), detail
    for needle in needles:
        assert needle in line, f"{needle!r} not in the message\n{detail}"
    return line


def write_csv(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def read_file_results(path: Path):
    from scenarios.store import read_results
    return read_results(path)


def solve_in_process(network: Path, table_path: Path, duration_s: int):
    """DESIGN's reference: the library's solver on the batch the table builds, in memory (float64)."""
    from hydraulics.compile import load_network
    from hydraulics.solver import HydraulicSolver, SolverOptions
    from scenarios.perturbations import build_batch, read_perturbations
    net = load_network(network)
    batch = build_batch(read_perturbations(table_path), net)
    return batch, HydraulicSolver(net, SolverOptions()).run(batch.inputs, duration_s)


def assert_same_results(got, expected, rtol: float) -> None:
    assert tuple(got.node_ids) == tuple(expected.node_ids)
    assert tuple(got.link_ids) == tuple(expected.link_ids)
    assert_array_equal(got.time_s, expected.time_s)
    for name in FLOAT_FIELDS:
        assert_allclose(getattr(got, name), getattr(expected, name), rtol=rtol, atol=0, err_msg=name)
    for name in EXACT_FIELDS:
        assert_array_equal(getattr(got, name), getattr(expected, name), err_msg=name)
    assert_array_equal(np.asarray(got.failure, dtype=str), np.asarray(expected.failure, dtype=str))


# ---------------------------------------------------------------------- solve
def test_solve_snapshot_writes_a_complete_file_with_designs_layout(tmp_path):
    from hydraulics.compile import load_network
    from hydraulics.runner_compat import solve_network_if_available  # noqa: F401  (see below)


def test_solve_extended_reports_every_report_step(tmp_path):
    out = tmp_path / "r.h5"
    proc = ok(cli("solve", NET1_3, "--out", out, "--duration", 21600))
    assert "extended period, 21600 s" in proc.stdout
    from scenarios.store import is_complete
    assert is_complete(out)
    with h5py.File(out, "r") as f:
        assert_array_equal(f["time_s"][()], np.arange(0, 21601, 3600))
        n, l = len(f["node/ids"]), len(f["link/ids"])
        assert f["node/head"].shape == (1, 7, n)
        assert f["link/flow"].shape == (1, 7, l)
        assert f["solver/converged"][()].all()
        assert int(f.attrs["duration_s"]) == 21600
