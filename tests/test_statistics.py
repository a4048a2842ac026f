"""Running statistics over scenarios (scenarios.statistics) and the summary store (scenarios.summary_store).

The contract: the statistics equal numpy's on the full arrays (to the documented resolution), and the
accumulator's state is bit-identical whatever the chunking, the order, the number of workers merged, and
duplicates; a run interrupted and resumed leaves the same file content as an uninterrupted one.
"""
from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import h5py
import numpy as np
import pytest

from parktwin.hydraulics.results import ResultSet
from parktwin.scenarios.statistics import SummaryAccumulator, SummaryOptions
from parktwin.scenarios.store import ResultStore, StoreMismatch, is_complete
from parktwin.scenarios.summary_store import SummaryStore, read_accumulator, read_summary

REPO = Path(__file__).resolve().parents[1]
NET1 = Path("/work/shared/networks/epanet-tests/network_one/NET1.inp")
ATTRS = {"backend": "numpy", "device": "cpu: test", "seed": 3}
FIELDS = ("head_m", "pressure_m", "demand_m3s", "leak_m3s", "flow_m3s", "status", "converged",
          "iterations", "failure")
needs_net1 = pytest.mark.skipif(not NET1.is_file(), reason=f"{NET1} not present (shared networks missing)")


# ------------------------------------------------------------------------------------------ helpers
def take(res: ResultSet, rows) -> ResultSet:
    rows = np.asarray(rows, dtype=np.int64)
    return ResultSet(res.node_ids, res.link_ids, res.time_s, **{f: getattr(res, f)[rows] for f in FIELDS})


def synthetic(seed: int = 1, b: int = 500, t: int = 3, n: int = 6, l: int = 5, nj: int = 4):
    """Random results with failures, unconverged times (holding NaN, as real ones may), a converged time
    with a NaN (invalid), -0.0 values, pressures beyond the histogram, and a required demand."""
    rng = np.random.default_rng(seed)
    res = ResultSet.allocate([f"n{i}" for i in range(n)], [f"l{i}" for i in range(l)], np.arange(t) * 3600, b)
    res.pressure_m[:] = rng.normal(40.0, 25.0, (b, t, n))
    res.pressure_m[rng.random((b, t, n)) < 0.01] = -80.0          # underflow
    res.pressure_m[rng.random((b, t, n)) < 0.01] = 300.0          # overflow
    res.pressure_m[rng.random((b, t, n)) < 0.02] = -0.0
    res.head_m[:] = res.pressure_m + 10.0
    res.leak_m3s[:] = np.where(rng.random((b, t, n)) < 0.3, rng.uniform(0, 0.02, (b, t, n)), 0.0)
    res.demand_m3s[:] = rng.uniform(0.0, 0.05, (b, t, n))
    res.flow_m3s[:] = rng.normal(0.0, 0.3, (b, t, l))
    res.flow_m3s[rng.random((b, t, l)) < 0.02] = -0.0
    res.converged[:] = rng.random((b, t)) > 0.05
    res.pressure_m[~res.converged] = np.nan
    res.failure[:] = np.where(rng.random(b) < 0.04, "solver error: test", "")
    res.pressure_m[res.failure != ""] = 1e6                     # must never reach a statistic
    res.pressure_m[7, 1, 2] = np.nan                              # converged yet NaN: invalid time
    res.converged[7, 1], res.failure[7] = True, ""
    required = res.demand_m3s + np.where(rng.random((b, t, n)) < 0.5, rng.uniform(0, 0.01, (b, t, n)), 0.0)
    required[:, :, nj:] = np.nan                                  # tanks and reservoirs: never read
    return res, required, nj


def accumulate(res, required, nj, chunks, options=SummaryOptions()):
    b, t, n = res.pressure_m.shape
    acc = SummaryAccumulator(t, n, res.flow_m3s.shape[2], options, n_junctions=nj)
    for rows in chunks:
        acc.add(take(res, rows), rows, None if required is None else required[rows])
    return acc


def chunked(order, size):
    return [order[i: i + size] for i in range(0, len(order), size)]


def assert_same_state(a: dict, b: dict, skip=()):
    assert a.keys() == b.keys()
    for key in a:
        if key not in skip:
            assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
            assert a[key].tobytes() == b[key].tobytes(), key


def check_against_numpy(stats, res, required, nj, options, diameter=None):
    """Every statistic against numpy over the full arrays, within the documented resolution."""
    b, t, n = res.pressure_m.shape
    fp = np.asarray([str(f) != "" for f in res.failure])
    with np.errstate(invalid="ignore"):
        unserved = np.zeros_like(res.demand_m3s[..., :nj]) if required is None else \
            np.maximum(required[..., :nj] - res.demand_m3s[..., :nj], 0.0)
    finite = (np.isfinite(res.pressure_m).all(2) & np.isfinite(res.leak_m3s).all(2)
              & np.isfinite(res.flow_m3s).all(2) & np.isfinite(unserved).all(2))
    valid = res.converged & ~fp[:, None] & finite
    np.testing.assert_array_equal(stats["n_valid"], valid.sum(0))
    assert stats["n_failed"] == fp.sum() and stats["n_scenarios"] == b
    assert stats["n_converged"] == (res.converged & ~fp[:, None]).all(1).sum()
    np.testing.assert_array_equal(stats["n_unconverged"], (~res.converged & ~fp[:, None]).sum(0))
    np.testing.assert_array_equal(stats["n_invalid"], (res.converged & ~fp[:, None] & ~finite).sum(0))
    p_res, f_res = options.pressure_resolution_m, options.flow_resolution_m3s
    low, width, n_bins = options.histogram_units()
    lo_m, hi_m, bin_m = (np.array([low, low + width * n_bins, width]) / options.pressure_scale).tolist()
    for k in range(t):
        v = valid[:, k]
        p, leak, flow, u = res.pressure_m[v, k], res.leak_m3s[v, k], res.flow_m3s[v, k], unserved[v, k]
        np.testing.assert_array_equal(stats["pressure_min"][k], p.min(0))
        np.testing.assert_array_equal(stats["pressure_max"][k], p.max(0))
        np.testing.assert_allclose(stats["pressure_mean"][k], p.mean(0), rtol=1e-13, atol=p_res)
        np.testing.assert_allclose(stats["leak_mean"][k], leak.mean(0), rtol=1e-13, atol=f_res)
        np.testing.assert_array_equal(stats["leak_max"][k], leak.max(0))
        np.testing.assert_allclose(stats["unserved_mean"][k, :nj], u.mean(0), rtol=1e-13, atol=f_res)
        assert np.isnan(stats["unserved_mean"][k, nj:]).all()
        np.testing.assert_array_equal(stats["flow_min"][k], flow.min(0))
        np.testing.assert_array_equal(stats["flow_max"][k], flow.max(0))
        np.testing.assert_allclose(stats["flow_mean"][k], flow.mean(0), rtol=1e-13, atol=f_res)
        np.testing.assert_allclose(stats["flow_abs_mean"][k], np.abs(flow).mean(0), rtol=1e-13, atol=f_res)
        if diameter is not None:
            area = np.where(diameter > 0, np.pi * diameter**2 / 4, np.nan)
            np.testing.assert_allclose(stats["velocity_abs_mean"][k], np.abs(flow).mean(0) / area, rtol=1e-9,
                                       atol=f_res / np.nanmin(area))
        below = (p[:, :nj] < options.service_pressure_m).sum(0) / v.sum()
        np.testing.assert_array_equal(stats["pressure_below_service_prob"][k, :nj], below)   # exact
        assert np.isnan(stats["pressure_below_service_prob"][k, nj:]).all()
        ordered = np.sort(p, axis=0)
        for i, q in enumerate(options.quantiles):
            rank = max(1, math.ceil(Fraction(repr(q)) * v.sum()))
            true, est = ordered[rank - 1], stats["pressure_quantiles"][i, k]
            inside = (true >= lo_m) & (true < hi_m)
            assert np.all(np.abs(est - true)[inside] <= bin_m + p_res), (k, q)
            # Beyond the histogram the answer is still between the exact min and the histogram edge.
            assert np.all((est >= p.min(0)) & (est <= p.max(0)))
            assert np.all(est[(true < lo_m)] <= lo_m) and np.all(est[(true >= hi_m)] >= hi_m)
        below_low = (np.rint(p * options.pressure_scale) < low).sum(0)
        np.testing.assert_array_equal(stats["pressure_hist_underflow"][k], below_low)


# ------------------------------------------------------------------------------------------ options
@pytest.mark.parametrize("kwargs, field", [
    ({"quantiles": (0.0,)}, "quantiles"), ({"quantiles": (0.5, 1.0)}, "quantiles"),
    ({"quantiles": (float("nan"),)}, "quantiles"), ({"service_pressure_m": float("inf")}, "service_pressure_m"),
    ({"pressure_bin_m": 0.0}, "pressure_bin_m"), ({"pressure_bin_m": -0.05}, "pressure_bin_m"),
    ({"pressure_bin_m": 3.3333333e-2}, "pressure_bin_m"), ({"pressure_bin_m": 0.07}, "pressure_bin_m"),
    ({"pressure_resolution_m": 0.0}, "pressure_resolution_m"),
    ({"pressure_resolution_m": 3e-7}, "pressure_resolution_m"),
    ({"pressure_resolution_m": 2.0}, "pressure_resolution_m"), ({"flow_resolution_m3s": -1e-9}, "flow_resolution_m3s"),
    ({"pressure_hist_high_m": -60.0}, "pressure_hist_high_m"),
    ({"pressure_hist_low_m": -50.0000003}, "pressure_hist_low_m"),
    ({"pressure_bin_m": 1e-6}, "pressure_bin_m"),   # 300 million bins
])
def test_bad_options_are_rejected_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=rf"SummaryOptions\.{field}"):
        SummaryOptions(**kwargs)


def test_good_options_round_trip():
    o = SummaryOptions(quantiles=[0.1, 0.9], pressure_bin_m=0.5, pressure_resolution_m=1e-3)
    assert o.quantiles == (0.1, 0.9) and o.histogram_units() == (-50_000, 500, 600)
    assert SummaryOptions.from_json(o.to_json()) == o
    with pytest.raises(TypeError):
        SummaryAccumulator(1, 2, 3, options={"quantiles": (0.5,)})


# ------------------------------------------------------------------------------------------ synthetic
def test_synthetic_statistics_equal_numpy():
    res, required, nj = synthetic()
    options = SummaryOptions(quantiles=(0.01, 0.05, 0.5, 0.95, 0.999), service_pressure_m=20.0)
    acc = accumulate(res, required, nj, chunked(np.arange(500), 64), options)
    diameter = np.array([0.3, 0.2, 0.0, 0.1, 0.5])
    stats = acc.finalize(diameter)
    check_against_numpy(stats, res, required, nj, options, diameter)
    assert np.isnan(stats["velocity_abs_mean"][:, 2]).all()
    assert stats["n_invalid"][1] == 1 and stats["pressure_hist_overflow"].sum() > 0
    # No required demand: unserved is 0 (demand-driven analysis delivers what is required).
    check_against_numpy(accumulate(res, None, nj, [np.arange(500)]).finalize(), res, None, nj, SummaryOptions())


def test_state_is_bit_identical_whatever_the_chunking_order_and_workers():
    res, required, nj = synthetic(seed=2)
    rows = np.arange(500)
    ref = accumulate(res, required, nj, [rows]).to_arrays()
    rng = np.random.default_rng(5)
    perm = rng.permutation(500)
    cuts = np.sort(rng.choice(np.arange(1, 500), 40, replace=False))
    for chunks in (chunked(rows, 7), chunked(rows, 100), chunked(rows[::-1], 7), chunked(perm, 13),
                   np.split(perm, cuts), chunked(rows, 1)):
        assert_same_state(ref, accumulate(res, required, nj, chunks).to_arrays())
    # Workers: accumulators of disjoint parts merged in any grouping and order.
    parts = [accumulate(res, required, nj, chunked(part, 9)) for part in np.array_split(perm, 4)]
    left = SummaryAccumulator.from_arrays(parts[0].to_arrays()).merge(parts[1])
    right = SummaryAccumulator.from_arrays(parts[3].to_arrays()).merge(parts[2])
    assert_same_state(ref, right.merge(left).to_arrays())
    halves = [accumulate(res, required, nj, chunked(h, 50)) for h in (rows[:250], rows[250:])]
    assert_same_state(ref, halves[1].merge(halves[0]).to_arrays())
    # Saving and loading is exact too.
    assert_same_state(ref, SummaryAccumulator.from_arrays(ref).to_arrays())


def test_quantile_rank_is_inverted_cdf_with_decimal_levels():
    """0.05 of 300 values is the 15th (0.05 * 300 is 15.000000000000002 in floats, not 16)."""
    res = ResultSet.allocate(["a"], ["p"], [0], 300)
    res.pressure_m[:, 0, 0] = np.random.default_rng(8).permutation(300) * 0.5   # 0.5 m apart
    res.flow_m3s[:], res.leak_m3s[:], res.demand_m3s[:], res.converged[:] = 0.0, 0.0, 0.0, True
    stats = accumulate(res, None, 1, chunked(np.arange(300), 17)).finalize()
    for i, q in enumerate(SummaryOptions().quantiles):
        true = np.quantile(res.pressure_m[:, 0, 0], q, method="inverted_cdf")
        assert true <= stats["pressure_quantiles"][i, 0, 0] < true + 0.05, q


def test_negative_zero_does_not_make_min_max_order_dependent():
    res = ResultSet.allocate(["a"], ["p"], [0], 2)
    res.pressure_m[:] = [[[-0.0]], [[0.0]]]
    res.flow_m3s[:] = [[[0.0]], [[-0.0]]]
    res.leak_m3s[:], res.demand_m3s[:], res.converged[:] = 0.0, 0.0, True
    a = accumulate(res, None, 1, [[0], [1]]).to_arrays()
    b = accumulate(res, None, 1, [[1], [0]]).to_arrays()
    assert_same_state(a, b)
    assert not np.signbit(a["pressure_min"]).any() and not np.signbit(a["flow_max"]).any()


def test_duplicates_are_counted_once():
    res, required, nj = synthetic(seed=3, b=60)
    rows = np.arange(60)
    ref = accumulate(res, required, nj, chunked(rows, 10))
    again = accumulate(res, required, nj, chunked(rows, 10) + [rows[10:20], rows[55:], np.array([3, 3, 4])])
    assert again.duplicates_ignored == 10 + 5 + 3 and again.n_scenarios == 60
    assert_same_state(ref.to_arrays(), again.to_arrays(), skip=("duplicates_ignored",))
    inside = accumulate(res, required, nj, [np.array([0, 1, 1, 2])])     # a row twice in one chunk
    assert inside.duplicates_ignored == 1 and inside.n_scenarios == 3
    assert_same_state(accumulate(res, required, nj, [np.array([0, 1, 2])]).to_arrays(),
                      inside.to_arrays(), skip=("duplicates_ignored",))
    with pytest.raises(ValueError, match="share scenarios"):
        accumulate(res, required, nj, [rows[:30]]).merge(accumulate(res, required, nj, [rows[29:]]))
    with pytest.raises(ValueError, match="SummaryOptions"):
        ref.merge(accumulate(res, required, nj, [], SummaryOptions(service_pressure_m=5.0)))


def test_failed_scenarios_are_excluded_and_counted():
    res, required, nj = synthetic(seed=4, b=200)
    failed = np.asarray([f != "" for f in res.failure])
    good = np.flatnonzero(~failed)
    stats = accumulate(res, required, nj, chunked(np.arange(200), 30)).finalize()
    only_good = accumulate(res, required, nj, [good]).finalize()
    assert stats["n_failed"] == failed.sum() > 0 and only_good["n_failed"] == 0
    for name, value in stats.items():
        if not name.startswith("n_"):
            np.testing.assert_array_equal(value, only_good[name], err_msg=name)
    assert stats["pressure_max"].max() < 1e6
    # A time where nothing converged has no statistics (NaN), not zeros.
    res.converged[:, 2] = False
    stats = accumulate(res, required, nj, [np.arange(200)]).finalize()
    assert stats["n_valid"][2] == 0 and np.isnan(stats["pressure_mean"][2]).all()
    assert np.isnan(stats["pressure_quantiles"][:, 2]).all() and np.isnan(stats["flow_min"][2]).all()


def test_two_word_sums_do_not_overflow():
    """Flows of 4e9 m3/s are 4e18 units each: ten of them overflow one int64, not the two-word sum."""
    res = ResultSet.allocate(["a"], ["p", "q"], [0], 10)
    res.pressure_m[:], res.leak_m3s[:], res.demand_m3s[:], res.converged[:] = 1.0, 0.0, 0.0, True
    res.flow_m3s[:, 0, 0] = np.linspace(3.9e9, 4.0e9, 10)
    res.flow_m3s[:, 0, 1] = -np.linspace(3.9e9, 4.0e9, 10)
    stats = accumulate(res, None, 1, chunked(np.arange(10), 3)).finalize()
    np.testing.assert_allclose(stats["flow_mean"][0], [3.95e9, -3.95e9], rtol=1e-15)
    res.flow_m3s[4, 0, 0] = 5e9                       # beyond 2**62 units: not physical, time invalid
    stats = accumulate(res, None, 1, [np.arange(10)]).finalize()
    assert stats["n_invalid"][0] == 1 and stats["n_valid"][0] == 9


def test_state_size_does_not_depend_on_the_number_of_scenarios():
    sizes = {}
    for b in (100, 20_000):
        res, required, nj = synthetic(seed=6, b=b)
        acc = accumulate(res, required, nj, chunked(np.arange(b), 1000))
        arrays = acc.to_arrays()
        assert arrays["counted"].nbytes == (b + 7) // 8          # one bit per scenario
        sizes[b] = sum(v.nbytes for k, v in arrays.items() if k != "counted")
        assert acc.nbytes() - sizes[b] <= 2 * ((b + 7) // 8)     # the bitmap's spare capacity at most
    assert sizes[100] == sizes[20_000]


# ------------------------------------------------------------------------------------------ NET1
@pytest.fixture(scope="module")
def net1():
    from parktwin.hydraulics.compile import load_network
    return load_network(NET1)


def solve_net1(net, b: int, duration_s: int, seed: int = 11) -> ResultSet:
    from parktwin.hydraulics.inputs import BatchInputs
    from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions
    rng = np.random.default_rng(seed)
    inputs = BatchInputs(batch_size=b, demand_multiplier=rng.uniform(0.5, 1.5, (b, 1)))
    return HydraulicSolver(net, SolverOptions(backend="numpy")).run(inputs, duration_s)


@needs_net1
@pytest.mark.parametrize("duration_s", [0, 86400])
def test_net1_statistics_equal_numpy_and_do_not_depend_on_chunks(net1, duration_s):
    res = solve_net1(net1, 300, duration_s)
    assert res.converged.all()
    options = SummaryOptions(service_pressure_m=float(np.median(res.pressure_m[:, :, 4])))  # a real split
    t, n, l = res.pressure_m.shape[1], net1.n_nodes, net1.n_links
    rows = np.arange(300)
    accs = [accumulate(res, None, net1.n_junctions, chunks, options)
            for chunks in (chunked(rows, 7), chunked(rows, 100), chunked(rows[::-1], 7))]
    halves = [accumulate(res, None, net1.n_junctions, chunked(h, 7), options) for h in (rows[150:], rows[:150])]
    accs.append(halves[0].merge(halves[1]))
    for acc in accs[1:]:
        assert_same_state(accs[0].to_arrays(), acc.to_arrays())
    stats = accs[0].finalize(net1.diameter_m)
    assert stats["pressure_mean"].shape == (t, n) and stats["flow_mean"].shape == (t, l)
    assert 0 < np.nanmean(stats["pressure_below_service_prob"]) < 1
    diameter = np.where(np.asarray(net1.diameter_m) > 0, net1.diameter_m, np.nan)
    check_against_numpy(stats, res, None, net1.n_junctions, options, diameter)


# ------------------------------------------------------------------------------------------ store
def run_store(net, res, path, chunk, save_every=2, stop_after=None, resume=False, options=SummaryOptions()):
    """Count `res` into a summary file chunk by chunk (resuming if asked), like a runner would."""
    ids = [f"s{i:04d}" for i in range(res.batch_size)]
    if resume:
        store = SummaryStore.open_for_resume(path, net.source_sha256, ids, res.time_s, options, save_every)
    else:
        store = SummaryStore.create(path, net, ids, res.time_s, None, ATTRS, options, save_every)
    pending = store.pending_rows()
    for i, rows in enumerate(chunked(pending, chunk)):
        store.add(rows, take(res, rows))
        if stop_after is not None and i + 1 == stop_after:
            return store
    return store.close(complete=True)


def file_content(path) -> dict:
    """Everything a reader sees, the raw state included; not the timestamps of the runs."""
    stats, meta = read_summary(path)
    content = {f"stat/{k}": np.asarray(v) for k, v in stats.items()}
    content.update({f"state/{k}": v for k, v in read_accumulator(path).to_arrays().items()})
    for key in ("done", "failure", "time_s", "link_diameter_m", "node_xyz_m", "link_nodes"):
        content[f"meta/{key}"] = np.asarray(meta[key])
    content["meta/ids"] = np.asarray(meta["scenario_ids"] + meta["node_ids"] + meta["link_ids"], dtype=object)
    return content


def assert_same_content(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        if a[key].dtype == object:
            assert list(a[key]) == list(b[key]), key
        else:
            assert a[key].dtype == b[key].dtype and a[key].tobytes() == b[key].tobytes(), key


@needs_net1
def test_store_layout_and_reading(net1, tmp_path):
    res = solve_net1(net1, 40, 7200)
    res.failure[5] = "solver error: test"
    res.converged[5] = False
    path = tmp_path / "summary.h5"
    assert run_store(net1, res, path, chunk=6) is True
    assert is_complete(path)
    stats, meta = read_summary(path)
    acc = accumulate(res, None, net1.n_junctions, [np.arange(40)])
    for name, value in acc.finalize(meta["link_diameter_m"]).items():
        np.testing.assert_array_equal(stats[name], value, err_msg=name)
    assert meta["complete"] and meta["done"].all() and meta["options"] == SummaryOptions()
    assert meta["failure"][5] == "solver error: test" and stats["n_failed"] == 1
    with h5py.File(path, "r") as f:
        for name in ("node/ids", "link/ids", "scenario/ids", "time_s", "node/xyz", "link/nodes", "network/inp"):
            assert name in f, name
        assert "node/head" not in f and "link/flow" not in f          # a summary never claims full results
        assert f["summary/pressure_mean"].shape == (3, net1.n_nodes)
        assert f["summary/flow_max"].shape == (3, net1.n_links)
        assert f["summary/pressure_quantiles"].shape == (3, 3, net1.n_nodes)
        assert f["summary/pressure_mean"].attrs["unit"] == "m" and f["summary/flow_mean"].attrs["unit"] == "m3/s"
        assert f["summary"].attrs["service_pressure_m"] == 10.0
        assert f.attrs["backend"] == "numpy" and f.attrs["store"] == "summary"
    assert np.isnan(meta["link_diameter_m"][list(net1.link_ids).index("9")])     # the pump


@needs_net1
def test_store_resume_gives_the_uninterrupted_file(net1, tmp_path):
    res = solve_net1(net1, 50, 3600)
    full = tmp_path / "full.h5"
    run_store(net1, res, full, chunk=7, save_every=3)
    cut = tmp_path / "cut.h5"
    store = run_store(net1, res, cut, chunk=5, save_every=2, stop_after=5)
    assert store.close(complete=False) is False and not is_complete(cut)
    ids = [f"s{i:04d}" for i in range(50)]
    with h5py.File(cut, "r+") as f:     # as if killed after the state's save, before its done flags
        f["scenario/done"][20:25] = False
    store = SummaryStore.open_for_resume(cut, net1.source_sha256, ids, res.time_s)
    np.testing.assert_array_equal(store.pending_rows(), np.arange(25, 50))
    np.testing.assert_array_equal(store.file["scenario/done"][()], np.arange(50) < 25)
    assert store.close(complete=False) is False
    assert run_store(net1, res, cut, chunk=4, resume=True) is True and is_complete(cut)
    assert_same_content(file_content(full), file_content(cut))
    # Wrong options or a result file are refused.
    with pytest.raises(StoreMismatch, match="summarised with"):
        SummaryStore.open_for_resume(cut, net1.source_sha256, ids, res.time_s, SummaryOptions(quantiles=(0.5,)))
    ResultStore.create(tmp_path / "r.h5", net1, ids, res.time_s, None, ATTRS).close(complete=False)
    with pytest.raises(StoreMismatch, match="not a summary"):
        SummaryStore.open_for_resume(tmp_path / "r.h5", net1.source_sha256, ids)
    with pytest.raises(StoreMismatch, match="ids"):
        SummaryStore.open_for_resume(cut, net1.source_sha256, ids[::-1])


@needs_net1
def test_hard_kill_leaves_a_consistent_resumable_file(net1, tmp_path):
    """os._exit after 3 chunks with a save every 2: the file holds exactly the 2 saved chunks."""
    res = solve_net1(net1, 30, 3600)
    np.savez(tmp_path / "res.npz", **{f: getattr(res, f) for f in FIELDS if f != "failure"},
             failure=np.asarray(res.failure, dtype=str))
    path = tmp_path / "killed.h5"
    script = textwrap.dedent(f"""
        import os, sys
        import numpy as np
        sys.path[:0] = [{str(REPO)!r}, {str(REPO / 'tests')!r}]
        from parktwin.hydraulics.compile import load_network
        from parktwin.hydraulics.results import ResultSet
        from test_statistics import run_store, NET1
        net = load_network(NET1)
        z = np.load({str(tmp_path / 'res.npz')!r})
        res = ResultSet(net.node_ids, net.link_ids, np.asarray({list(map(int, res.time_s))!r}),
                        **{{k: z[k] for k in z.files if k != "failure"}},
                        failure=z["failure"].astype(object))
        run_store(net, res, {str(path)!r}, chunk=5, save_every=2, stop_after=3)
        os._exit(3)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr
    assert not is_complete(path)
    stats, meta = read_summary(path)
    np.testing.assert_array_equal(meta["done"], np.arange(30) < 10)
    assert stats["n_scenarios"] == 10 and read_accumulator(path).n_scenarios == 10
    assert run_store(net1, res, path, chunk=6, resume=True) is True
    full = tmp_path / "full.h5"
    run_store(net1, res, full, chunk=30)
    assert_same_content(file_content(full), file_content(path))
