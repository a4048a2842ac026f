"""`--record` (issue 12, less I/O): a run records only the quantities asked for.

The CLI on NET1 with `--record pressure,flow` writes those datasets equal to the same run recording
everything, and no head, demand or leak; rendering, resuming or asking for what was not recorded fails
with one clear line; HDF5 chunks tile the writer's chunks.
"""
from __future__ import annotations

import h5py
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from test_cli import NET1, NET1_3, SCENARIO_TABLE, cli, one_error_line, write_csv

pytestmark = pytest.mark.skipif(not (NET1.is_file() and NET1_3.is_file()), reason="shared networks not found")

NOT_RECORDED = ("node/head", "node/demand", "node/leak")


def _main(*args) -> None:
    from parktwin.api.cli import main
    main([str(a) for a in args])


def _fails(capsys, *args) -> str:
    with pytest.raises(SystemExit) as done:
        _main(*args)
    err = capsys.readouterr().err.strip()
    assert done.value.code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error:") and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """NET1-3 (12 h, pump controls) over the CLI test's what-if table, everything and pressure,flow."""
    folder = tmp_path_factory.mktemp("record")
    table = write_csv(folder / "table.csv", SCENARIO_TABLE)
    everything, chosen = folder / "all.h5", folder / "pf.h5"
    common = ("--scenarios", table, "--duration", "14400", "--backend", "numpy", "--chunk-size", "4")
    _main("run", NET1_3, *common, "--out", everything)
    _main("run", NET1_3, *common, "--out", chosen, "--record", "pressure,flow_m3s")
    return folder, table, everything, chosen


def test_recorded_datasets_equal_the_full_run_and_the_rest_are_absent(runs):
    from parktwin.scenarios.store import read_results
    _, _, everything, chosen = runs
    with h5py.File(chosen, "r") as f, h5py.File(everything, "r") as g:
        assert f.attrs["recorded"] == "pressure_m,flow_m3s"
        assert g.attrs["recorded"] == "head_m,pressure_m,demand_m3s,leak_m3s,flow_m3s"
        assert f.attrs["complete"]
        for name in NOT_RECORDED:
            assert name not in f and name in g
        for name in ("node/pressure", "link/flow", "link/status", "solver/converged", "solver/iterations",
                     "scenario/failure", "scenario/done", "node/xyz"):
            assert_array_equal(f[name][()], g[name][()], err_msg=name)
    a, meta = read_results(chosen)
    b, _ = read_results(everything)
    assert meta["recorded"] == ("pressure_m", "flow_m3s")
    assert_allclose(a.pressure_m, b.pressure_m)
    assert_allclose(a.flow_m3s, b.flow_m3s)
    for name in ("head_m", "demand_m3s", "leak_m3s"):    # not recorded: no columns, as in memory
        assert getattr(a, name).shape == b.pressure_m.shape[:2] + (0,)


def test_in_memory_run_records_only_the_choice():
    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.inputs import BatchInputs
    from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions
    net = load_network(NET1)
    full = HydraulicSolver(net, SolverOptions(backend="numpy")).run(BatchInputs.base(2), 0)
    lean = HydraulicSolver(net, SolverOptions(backend="numpy", record=("flow", "head_m"))).run(BatchInputs.base(2), 0)
    assert lean.pressure_m.shape[-1] == 0 and lean.demand_m3s.shape[-1] == 0 and lean.leak_m3s.shape[-1] == 0
    assert_array_equal(lean.head_m, full.head_m)
    assert_array_equal(lean.flow_m3s, full.flow_m3s)


def test_render_of_an_unrecorded_quantity_names_file_quantity_and_record(runs, capsys):
    folder, _, _, chosen = runs
    err = _fails(capsys, "render", chosen, "--quantity", "head", "--out", folder / "head.png")
    assert str(chosen) in err and "head was not recorded" in err and "recorded: pressure, flow" in err
    err = _fails(capsys, "render", chosen, "--quantity", "demand", "--out", folder / "d.png")
    assert "demand was not recorded" in err
    from parktwin.viz.sources import from_result_file
    data = from_result_file(chosen, "velocity")       # from the flows, which were recorded
    assert data.values_si.shape == (len(data.net.link_ids),)
    data = from_result_file(chosen, "pressure", time_s=3600)
    assert np.isfinite(data.values_si).all()


def test_resume_with_another_selection_is_refused(runs, capsys):
    _, table, _, chosen = runs
    common = ("run", NET1_3, "--scenarios", table, "--duration", "14400", "--backend", "numpy", "--out", chosen,
              "--resume")
    err = _fails(capsys, *common, "--record", "pressure,flow,head")
    assert str(chosen) in err and "refusing to resume" in err and "records pressure,flow" in err
    assert "not head,pressure,flow" in err
    err = _fails(capsys, *common)                      # default: everything, which the file does not hold
    assert "refusing to resume" in err
    _main(*common, "--record", "flow,pressure")        # the same selection, in another order: fine
    assert "complete" in capsys.readouterr().out


def test_unknown_name_is_one_line_listing_the_valid(tmp_path):
    proc = cli("solve", NET1, "--out", tmp_path / "x.h5", "--record", "pressure,velocity")
    line = one_error_line(proc, "--record", "'velocity'", "head", "pressure", "demand", "leak", "flow_m3s")
    assert "valid" in line
    assert not (tmp_path / "x.h5").exists()


def test_solve_and_mc_full_accept_record_summary_refuses_it(tmp_path, capsys):
    _main("solve", NET1, "--out", tmp_path / "s.h5", "--record", "leak")
    with h5py.File(tmp_path / "s.h5", "r") as f:
        assert f.attrs["recorded"] == "leak_m3s" and "node/leak" in f and "node/pressure" not in f
    _main("mc", NET1, "--scenarios", "6", "--seed", "1", "--backend", "numpy", "--out", tmp_path / "m.h5",
          "--record", "demand,pressure")
    with h5py.File(tmp_path / "m.h5", "r") as f:
        assert f.attrs["recorded"] == "pressure_m,demand_m3s" and "link/flow" not in f and f.attrs["complete"]
    err = _fails(capsys, "mc", NET1, "--scenarios", "6", "--seed", "1", "--store", "summary", "--out",
                 tmp_path / "sum.h5", "--record", "pressure")
    assert "--store full" in err


def test_quality_is_selectable():
    from quality_variants import library_network
    net_path = library_network("Net1.inp")
    if not net_path.is_file():
        pytest.skip("WNTR's Net1.inp not installed")
    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.inputs import BatchInputs
    from parktwin.hydraulics.quality import solve_with_quality
    from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions
    net = load_network(net_path)
    with_q = solve_with_quality(HydraulicSolver(net, SolverOptions(record=("pressure", "quality"))),
                                BatchInputs.base(1), 7200)
    without = solve_with_quality(HydraulicSolver(net, SolverOptions(record=("pressure",))), BatchInputs.base(1), 7200)
    assert with_q.node_quality is not None and without.node_quality is None
    assert_array_equal(with_q.pressure_m, without.pressure_m)


def test_quality_files_record_it_unless_left_out(tmp_path):
    from quality_variants import library_network
    net_path = library_network("Net1.inp")
    if not net_path.is_file():
        pytest.skip("WNTR's Net1.inp not installed")
    _main("solve", net_path, "--duration", "7200", "--out", tmp_path / "q.h5", "--record", "pressure,quality")
    _main("solve", net_path, "--duration", "7200", "--out", tmp_path / "p.h5", "--record", "pressure")
    with h5py.File(tmp_path / "q.h5", "r") as q, h5py.File(tmp_path / "p.h5", "r") as p:
        assert q.attrs["recorded"] == "pressure_m,quality" and "node/quality" in q
        assert p.attrs["recorded"] == "pressure_m" and "node/quality" not in p and "quality_kind" not in p.attrs


def test_hdf5_chunks_tile_the_writers_chunks(tmp_path):
    """Writes are [rows of one solver chunk, all T, all N]: every dataset's chunk spans all times and
    elements, and its rows divide the solver chunk, also where the 4 MB cap makes chunks smaller."""
    from parktwin.hydraulics.compile import load_network
    from parktwin.scenarios.store import ResultStore, _rows_per_chunk
    net = load_network(NET1)
    t = np.arange(97) * 900
    attrs = {"backend": "numpy", "device": "cpu: test"}
    ids = [f"s{i}" for i in range(300)]
    with ResultStore.create(tmp_path / "c.h5", net, ids, t, None, attrs, scenarios_per_chunk=128) as store:
        f = store.file
        for name in ("node/pressure", "link/flow", "link/status", "solver/converged"):
            chunks, shape = f[name].chunks, f[name].shape
            assert chunks[1:] == shape[1:], name
            assert 128 % chunks[0] == 0, name
    # L-Town-sized 24 h rows: 97 x 909 float32 = 353 kB a scenario; the 4 MB cap allows 11 rows, and 8
    # divides the 512-scenario writes where 11 would split chunks between two writes.
    assert _rows_per_chunk(50000, 97 * 909 * 4, 256) == 8
    assert _rows_per_chunk(50000, 909 * 4, 256) == 256
    assert _rows_per_chunk(50000, 97 * 909 * 4, None) == 11
