"""The `parktwin` command line end to end (DESIGN: "Command line", "HDF5 result layout").

Every test runs the real command as a subprocess (`python -m api.cli ...` from the repository root) and
checks what a user sees: the exit status, stdout/stderr and the result file. Results read back from the
file are compared with the same scenarios solved in this process through the library.
"""
from __future__ import annotations

import os
import subprocess
import sys
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
    return subprocess.run([sys.executable, "-m", "parktwin.api.cli", *map(str, args)], cwd=REPO, env=_env(),
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
    path.write_text(text)
    return path


def read_file_results(path: Path):
    from parktwin.scenarios.store import read_results
    return read_results(path)


def solve_in_process(network: Path, table_path: Path, duration_s: int):
    """DESIGN's reference: the library's solver on the batch the table builds, in memory (float64)."""
    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions
    from parktwin.scenarios.batch import build_batch
    from parktwin.scenarios.perturbation_files import read_perturbations
    net = load_network(network)
    batch = build_batch(read_perturbations(table_path), net)
    return batch, HydraulicSolver(net, SolverOptions()).run(batch.inputs, duration_s)


def assert_same_results(got, expected, rtol: float) -> None:
    """`got` (read back from a file) equals `expected` (float64, in memory) to `rtol`: a float32 file holds
    the float32 rounding of every float64 value, pressure included."""
    assert tuple(got.node_ids) == tuple(expected.node_ids)
    assert tuple(got.link_ids) == tuple(expected.link_ids)
    assert_array_equal(got.time_s, expected.time_s)
    for name in FLOAT_FIELDS:
        assert_allclose(getattr(got, name), getattr(expected, name), rtol=rtol, atol=0.0, err_msg=name)
    for name in EXACT_FIELDS:
        assert_array_equal(getattr(got, name), getattr(expected, name), err_msg=name)
    assert_array_equal(np.asarray(got.failure, dtype=str), np.asarray(expected.failure, dtype=str))


# ---------------------------------------------------------------------- solve
DESIGN_DATASETS = ("node/ids", "link/ids", "scenario/ids", "time_s", "node/head", "node/pressure",
                   "node/demand", "node/leak", "link/flow", "link/status", "solver/converged",
                   "solver/iterations", "node/xyz", "link/nodes", "network/inp")
DESIGN_ATTRS = ("parktwin_version", "network_sha256", "backend", "device", "created_utc")


def test_solve_snapshot_writes_a_complete_file_with_designs_layout(tmp_path):
    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.inputs import BatchInputs
    from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions
    from parktwin.scenarios.store import is_complete

    out = tmp_path / "r.h5"
    proc = ok(cli("solve", NET1, "--out", out))
    net = load_network(NET1)
    # The summary: the network, what was run, the counts and where the results are.
    assert f"NET1: {net.n_junctions} junctions, {net.n_nodes} nodes, {net.n_links} links" in proc.stdout
    assert "snapshot at t=0" in proc.stdout
    assert "scenarios: 1  converged: 1  failed: 0" in proc.stdout
    assert f"results: {out} (complete)" in proc.stdout
    assert is_complete(out)

    b, t, n, l = 1, 1, net.n_nodes, net.n_links
    with h5py.File(out, "r") as f:
        missing = [name for name in DESIGN_DATASETS if name not in f]
        assert not missing, f"datasets missing from the file: {missing}"
        assert isinstance(f["scenario/perturbations"], h5py.Group)
        assert list(f["node/ids"].asstr()[()]) == list(net.node_ids)
        assert list(f["link/ids"].asstr()[()]) == list(net.link_ids)
        assert list(f["scenario/ids"].asstr()[()]) == ["base"]
        assert_array_equal(f["time_s"][()], [0])
        for name in ("node/head", "node/pressure", "node/demand", "node/leak"):
            assert f[name].shape == (b, t, n), name
        assert f["link/flow"].shape == (b, t, l)
        assert f["link/status"].shape == (b, t, l) and f["link/status"].dtype == np.int8
        assert f["solver/converged"].shape == (b, t) and f["solver/converged"].dtype == np.bool_
        assert f["solver/iterations"].shape == (b, t)
        assert f["node/xyz"].shape == (n, 3)
        assert_array_equal(f["node/xyz"][:, 2], net.elevation_m)
        assert_array_equal(f["link/nodes"][()], np.column_stack([net.link_start, net.link_end]))
        assert f["network/inp"][()].tobytes() == NET1.read_bytes()
        assert f["node/head"].dtype == np.float32   # the command line's default precision
        for name in DESIGN_ATTRS:
            assert name in f.attrs, f"root attribute {name} missing"
        assert any(key.startswith("solver_") for key in f.attrs), "the solver options are not in the file"
        assert f.attrs["network_sha256"] == net.source_sha256
        assert f["solver/converged"][()].all()
        assert set(np.unique(f["link/status"][()])) <= {0, 1, 2}

    # The numbers are the library's base case.
    expected = HydraulicSolver(net, SolverOptions()).run(BatchInputs.base(1), 0)
    got, meta = read_file_results(out)
    assert meta["complete"]
    assert_same_results(got, expected, rtol=1e-6)


def test_float32_reservoir_pressure_is_zero(tmp_path):
    """A float32 file holds float32(the float64 answer): a reservoir's pressure is exactly 0."""
    from parktwin.hydraulics.compile import load_network
    out = tmp_path / "r.h5"
    ok(cli("solve", NET1, "--out", out))
    net = load_network(NET1)
    got, _ = read_file_results(out)
    reservoir = list(net.node_ids).index("9")
    assert got.pressure_m[0, 0, reservoir] == 0.0


def test_solve_extended_reports_every_report_step(tmp_path):
    from parktwin.scenarios.store import is_complete
    out = tmp_path / "r.h5"
    proc = ok(cli("solve", NET1_3, "--out", out, "--duration", 21600))
    assert "extended period, 21600 s" in proc.stdout
    assert is_complete(out)
    with h5py.File(out, "r") as f:
        assert_array_equal(f["time_s"][()], np.arange(0, 21601, 3600))
        n, l = len(f["node/ids"]), len(f["link/ids"])
        assert f["node/head"].shape == (1, 7, n)
        assert f["link/flow"].shape == (1, 7, l)
        assert f["solver/converged"][()].all()
        assert int(f.attrs["duration_s"]) == 21600


# ---------------------------------------------------------------------- run
@pytest.mark.parametrize("network, duration, precision, rtol", [
    (NET1, 0, "single", 1e-6),
    (NET1, 0, "double", 1e-12),
    (NET1_3, 10800, "single", 1e-6),
    (NET1_3, 10800, "double", 1e-12),
], ids=["snapshot-single", "snapshot-double", "extended-single", "extended-double"])
def test_run_table_equals_the_library(tmp_path, network, duration, precision, rtol):
    from parktwin.scenarios.perturbation_files import read_perturbations
    from parktwin.scenarios.perturbations import PerturbationTable
    from parktwin.scenarios.store import is_complete

    table = write_csv(tmp_path / "table.csv", SCENARIO_TABLE)
    out = tmp_path / "r.h5"
    args = ["run", network, "--scenarios", table, "--out", out]
    if duration:
        args += ["--duration", duration]
    if precision == "double":
        args += ["--precision", "double"]
    proc = ok(cli(*args))
    batch, expected = solve_in_process(network, table, duration)
    n = batch.size
    assert n == 8
    assert f"scenarios: {n}  converged: {n}  failed: 0" in proc.stdout
    assert is_complete(out)

    got, meta = read_file_results(out)
    assert meta["scenario_ids"] == batch.ids
    assert meta["attrs"]["float_dtype"] == ("float64" if precision == "double" else "float32")
    if duration:
        assert_array_equal(got.time_s, np.arange(0, duration + 1, 3600))
    assert_same_results(got, expected, rtol=rtol)
    # The scenarios really differ from each other (the table was applied, not ignored).
    assert len({got.flow_m3s[i].tobytes() for i in range(n)}) == n
    assert got.leak_m3s[batch.ids.index("leak_12")].max() > 0
    assert got.leak_m3s[batch.ids.index("demand_all")].max() == 0
    closed = batch.ids.index("closed_112p"), got.link_ids.index("112p")
    assert got.status[closed[0], 0, closed[1]] == 0

    # The rows the run applied are in the file.
    with h5py.File(out, "r") as f:
        stored = PerturbationTable.read_h5(f["scenario/perturbations"])
    assert stored.to_rows() == read_perturbations(table).to_rows()


# ---------------------------------------------------------------------- errors
def _broken_inp(tmp_path: Path) -> tuple[Path, int]:
    """NET1 with pipe 10p ending at node 99, which does not exist; returns the file and that line."""
    lines = NET1.read_text().splitlines(keepends=True)
    number = next(i for i, line in enumerate(lines, 1) if line.split()[:1] == ["10p"])
    fields = lines[number - 1].split("\t")
    assert fields[2].strip() == "11"
    fields[2] = "99              "
    lines[number - 1] = "\t".join(fields)
    path = tmp_path / "broken.inp"
    path.write_text("".join(lines))
    return path, number


def _table(tmp_path: Path, *rows: str) -> Path:
    return write_csv(tmp_path / "bad.csv", "scenario,element,attribute,value\n" + "".join(r + "\n" for r in rows))


def test_missing_network_file(tmp_path):
    missing = tmp_path / "nowhere.inp"
    one_error_line(cli("solve", missing, "--out", tmp_path / "r.h5"), str(missing), "no such file")
    assert not (tmp_path / "r.h5").exists()


def test_broken_inp_names_the_line(tmp_path):
    broken, line_number = _broken_inp(tmp_path)
    line = one_error_line(cli("solve", broken, "--out", tmp_path / "r.h5"), str(broken), "99")
    assert f"line {line_number}" in line
    assert not (tmp_path / "r.h5").exists()


@pytest.mark.parametrize("rows, needles", [
    (("a,12,leak_area_m2,0.001", "b,nope,leak_area_m2,0.001"), ("row 3", "'nope'")),
    (("a,12,leak_area_m2,0.001", "b,12,colour,0.5"), ("row 3", "unknown attribute", "'colour'")),
    (("a,12,leak_area_m2,-0.001",), ("row 2", "leak_area_m2", "-0.001")),
    (("a,2,tank_level_m,99",), ("row 2", "tank_level_m", "range")),
    (("a,112p,status,ajar",), ("row 2", "status")),
    # Ids that look like rich markup are printed as they are, and never crash the error report.
    (("a,[/x],leak_area_m2,0.001",), ("row 2", "'[/x]'")),
    (("a,[red],leak_area_m2,0.001",), ("row 2", "'[red]'")),
], ids=["unknown-element", "unknown-attribute", "negative-leak-area", "tank-level-out-of-range",
        "bad-status-word", "markup-closing-tag", "markup-style-tag"])
def test_bad_table_rows_are_rejected_before_solving(tmp_path, rows, needles):
    table = _table(tmp_path, *rows)
    out = tmp_path / "r.h5"
    one_error_line(cli("run", NET1, "--scenarios", table, "--out", out), str(table), *needles)
    assert not out.exists(), "a rejected table must not start a run"


def test_missing_scenario_table(tmp_path):
    table = tmp_path / "none.csv"
    one_error_line(cli("run", NET1, "--scenarios", table, "--out", tmp_path / "r.h5"), str(table),
                   "no such file")


def test_output_directory_missing(tmp_path):
    out = tmp_path / "not-here" / "r.h5"
    one_error_line(cli("solve", NET1, "--out", out), str(out), "does not exist")


def test_cupy_without_a_gpu_says_why(tmp_path):
    from parktwin.kernels.registry import AVAILABLE, available_backends
    why = available_backends()["cupy"]
    if why == AVAILABLE:
        pytest.skip("cupy and a CUDA device are available here")
    one_error_line(cli("solve", NET1, "--out", tmp_path / "r.h5", "--backend", "cupy"), "cupy", why)
    assert not (tmp_path / "r.h5").exists()


@pytest.mark.parametrize("args, needles", [
    (("run", NET1, "--scenarios", "t.csv", "--out", "r.h5", "--chunk-size", "0"), ("--chunk-size",)),
    (("solve", NET1, "--out", "r.h5", "--backend", "gpu9000"), ("--backend", "gpu9000")),
    (("solve", NET1, "--out", "r.h5", "--duration", "-60"), ("--duration",)),
    (("solve", NET1), ("--out",)),
    (("frobnicate",), ("frobnicate",)),
], ids=["chunk-size-0", "unknown-backend", "negative-duration", "missing-out", "unknown-command"])
def test_usage_errors_are_one_line(args, needles):
    one_error_line(cli(*args), *needles)


def test_resume_refuses_a_file_of_another_network(tmp_path):
    out = tmp_path / "r.h5"
    ok(cli("solve", NET1, "--out", out))
    table = _table(tmp_path, "base_like,12,leak_area_m2,0")
    proc = cli("run", NET1_3, "--scenarios", table, "--out", out, "--resume")
    one_error_line(proc, str(out), "refusing to resume")


# ---------------------------------------------------------------------- resume
N_RESUME = 40
CHUNK = 8
RESUME_DURATION = 7200


@pytest.fixture(scope="module")
def resume_case(tmp_path_factory):
    """A 40-scenario table on NET1-3 and the file a full, uninterrupted command-line run makes of it."""
    folder = tmp_path_factory.mktemp("resume")
    rows = ["scenario,element,attribute,value"]
    junctions = ["11", "12", "13", "21", "22", "23", "31", "32"]
    for i, factor in enumerate(np.linspace(0.6, 1.4, N_RESUME)):
        rows.append(f"s{i:02d},*,demand_multiplier,{factor:.6g}")
        if i % 3 == 0:
            rows.append(f"s{i:02d},{junctions[i % len(junctions)]},leak_area_m2,{1e-4 * (1 + i % 5):.6g}")
    table = write_csv(folder / "table.csv", "\n".join(rows) + "\n")
    reference = folder / "reference.h5"
    ok(cli("run", NET1_3, "--scenarios", table, "--out", reference, "--chunk-size", CHUNK,
           "--duration", RESUME_DURATION))
    return table, reference


def _assert_same_file_results(path: Path, reference: Path) -> None:
    got, meta = read_file_results(path)
    want, want_meta = read_file_results(reference)
    assert meta["complete"] and want_meta["complete"]
    assert meta["scenario_ids"] == want_meta["scenario_ids"]
    assert_array_equal(meta["done"], True)
    for name in FLOAT_FIELDS + EXACT_FIELDS:
        assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    assert_array_equal(np.asarray(got.failure, dtype=str), np.asarray(want.failure, dtype=str))


class _StopAfterTwoChunks(Exception):
    pass


def test_resume_finishes_an_interrupted_file(tmp_path, resume_case):
    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.solver import SolverOptions
    from parktwin.scenarios.batch import build_batch
    from parktwin.scenarios.perturbation_files import read_perturbations
    from parktwin.scenarios.runner import run_batch
    from parktwin.scenarios.store import is_complete

    table, reference = resume_case
    ref, _ = read_file_results(reference)
    assert ref.head_m.shape[:2] == (N_RESUME, RESUME_DURATION // 3600 + 1)
    assert np.isfinite(ref.head_m).all()

    # An interrupted run, in process: the progress callback stops it after two chunks.
    net = load_network(NET1_3)
    batch = build_batch(read_perturbations(table), net)
    partial = tmp_path / "partial.h5"
    calls = []

    def stop_after_two_chunks(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == 2:
            raise _StopAfterTwoChunks

    with pytest.raises(_StopAfterTwoChunks):
        run_batch(net, batch, SolverOptions(chunk_size=CHUNK), RESUME_DURATION, partial,
                  progress=stop_after_two_chunks, float_dtype=np.float32)
    assert calls == [CHUNK, 2 * CHUNK]
    assert not is_complete(partial)
    with h5py.File(partial, "r") as f:
        assert int(f["scenario/done"][()].sum()) == 2 * CHUNK

    proc = ok(cli("run", NET1_3, "--scenarios", table, "--out", partial, "--resume",
                  "--chunk-size", CHUNK, "--duration", RESUME_DURATION))
    assert f"scenarios: {N_RESUME}  converged: {N_RESUME}  failed: 0" in proc.stdout
    assert "(complete)" in proc.stdout
    assert is_complete(partial)
    _assert_same_file_results(partial, reference)
    with h5py.File(partial, "r") as f:
        assert "resumed_backend" in f.attrs

    # Resuming a finished file solves nothing and changes nothing.
    ok(cli("run", NET1_3, "--scenarios", table, "--out", partial, "--resume",
           "--chunk-size", CHUNK, "--duration", RESUME_DURATION))
    _assert_same_file_results(partial, reference)


INTERRUPT_AFTER_TWO_CHUNKS = """
import sys
import parktwin.scenarios.runner as runner

real_run_batch = runner.run_batch

def run_batch(*args, progress=None, **kwargs):
    chunks = []
    def interrupting(done, total):
        if progress is not None:
            progress(done, total)
        chunks.append(done)
        if len(chunks) == 2:
            raise KeyboardInterrupt   # what Ctrl-C raises in the middle of a run
    return real_run_batch(*args, progress=interrupting, **kwargs)

runner.run_batch = run_batch
from parktwin.api.cli import main
main(sys.argv[1:])
"""


def test_ctrl_c_leaves_a_resumable_file(tmp_path, resume_case):
    from parktwin.scenarios.store import is_complete
    table, reference = resume_case
    out = tmp_path / "r.h5"
    args = ["run", NET1_3, "--scenarios", table, "--out", out, "--chunk-size", CHUNK,
            "--duration", RESUME_DURATION]
    proc = subprocess.run([sys.executable, "-c", INTERRUPT_AFTER_TWO_CHUNKS, *map(str, args)], cwd=REPO,
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "interrupted" in lines[0] and "--resume" in lines[0], proc.stderr
    assert not is_complete(out)
    with h5py.File(out, "r") as f:
        assert int(f["scenario/done"][()].sum()) == 2 * CHUNK
        assert not f.attrs["complete"]

    ok(cli(*args, "--resume"))
    assert is_complete(out)
    _assert_same_file_results(out, reference)


# ---------------------------------------------------------------------- backends
def _backend_states(stdout: str) -> dict[str, str]:
    states = {}
    for line in stdout.splitlines():
        if line.strip():
            name, _, state = line.strip().partition(" ")
            states[name] = state.strip()
    return states


def test_backends_lists_numpy_and_numba():
    states = _backend_states(ok(cli("backends")).stdout)
    assert states.get("numpy") == "available", states
    assert states.get("numba") == "available", states
    assert "cupy" in states, states


def test_parktwin_console_script():
    script = Path(sys.executable).parent / "parktwin"
    if not script.is_file():
        pytest.skip(f"no console script at {script} (project not installed in this interpreter's env)")
    proc = subprocess.run([str(script), "backends"], cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert _backend_states(proc.stdout).get("numpy") == "available"
    proc = subprocess.run([str(script), "serve", "--help"], cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "--data-dir" in proc.stdout, proc.stderr
