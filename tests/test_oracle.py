"""The EPANET 2.3 oracle (hydraulics/oracle.py) and the toolkit-loop baseline (bench/)."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from parktwin.hydraulics import oracle
from parktwin.hydraulics.oracle import EpanetError, EpanetProject, source_connected_nodes

pytest.importorskip("epanet", reason="owa-epanet (EPANET 2.3) is not installed")

REPO = Path(__file__).resolve().parents[1]
NETWORKS = Path("/work/shared/networks")
if not NETWORKS.exists():
    NETWORKS = REPO.parent / "shared" / "networks"
NET1 = NETWORKS / "epanet-tests/network_one/NET1.inp"      # GPM, snapshot
HANOI = NETWORKS / "benchmarks/hanoi.inp"                  # LPS
LTOWN = NETWORKS / "benchmarks/l-town.inp"                 # CMH
needs_networks = pytest.mark.skipif(not NET1.exists(), reason="shared networks not found")

M_PER_FT = 0.3048
M3S_PER_GPM = 0.3048**3 / 7.48051948 / 60.0


def _wntr_net1_24h() -> Path:
    wntr = pytest.importorskip("wntr")
    path = Path(wntr.__file__).parent / "library/networks/Net1.inp"
    if not path.exists():
        pytest.skip("WNTR's Net1.inp not found")
    return path


def _wntr_snapshot(path: Path, tmp_path: Path):
    wntr = pytest.importorskip("wntr")
    wn = wntr.network.WaterNetworkModel(str(path))
    wn.options.time.duration = 0
    res = wntr.sim.EpanetSimulator(wn).run_sim(file_prefix=str(tmp_path / "wntr"))
    return res.node["head"].iloc[0], res.link["flowrate"].iloc[0]


def test_version():
    assert oracle.epanet_version().startswith("2.3")


@needs_networks
def test_us_units_are_converted_to_si():
    with EpanetProject(NET1) as p:
        assert p.file_flow_units == "GPM" and p.flow_units == "CMS"
        r = p.solve_snapshot()
        i = {nid: k for k, nid in enumerate(p.node_ids)}
        # NET1: reservoir 9 at 800 ft, tank 2 at 850 ft + 120 ft initial level, junction 11 150 gpm
        assert p.node_types[i["9"]] == oracle.EN_RESERVOIR and p.node_types[i["2"]] == oracle.EN_TANK
        assert r["head_m"][i["9"]] == pytest.approx(800 * M_PER_FT, abs=1e-9)
        assert r["head_m"][i["2"]] == pytest.approx(970 * M_PER_FT, abs=1e-9)
        assert r["demand_m3s"][i["11"]] == pytest.approx(150 * M3S_PER_GPM, rel=2e-5)
        np.testing.assert_allclose(r["pressure_m"], r["head_m"] - p.elevation_m, atol=1e-9)
        # the reservoir supplies exactly what the junctions draw plus what fills the tank
        assert -r["total_outflow_m3s"][i["9"]] == pytest.approx(
            r["demand_m3s"].sum() + r["total_outflow_m3s"][i["2"]], rel=1e-6)
        assert r["status"].dtype == np.int8 and set(r["status"]) <= {0, 1, 2}
        assert r["time_s"] == 0


@needs_networks
@pytest.mark.parametrize("path", [NET1, HANOI], ids=["NET1-GPM", "hanoi-LPS"])
def test_snapshot_agrees_with_wntr(path, tmp_path):
    head_w, flow_w = _wntr_snapshot(path, tmp_path)
    with EpanetProject(path) as p:
        r = p.solve_snapshot()
        for k, t in enumerate(p.node_types):
            if t == oracle.EN_RESERVOIR:
                assert r["head_m"][k] == pytest.approx(p.elevation_m[k], abs=1e-9)
        np.testing.assert_allclose(r["head_m"], head_w[p.node_ids].to_numpy(), atol=1e-3)
        np.testing.assert_allclose(r["flow_m3s"], flow_w[p.link_ids].to_numpy(), atol=1e-5, rtol=1e-3)


def test_run_extended_report_times():
    path = _wntr_net1_24h()
    with EpanetProject(path) as p:
        assert (p.duration_s, p.report_step_s, p.report_start_s) == (86400, 3600, 0)
        r = p.run_extended()
        np.testing.assert_array_equal(r["time_s"], np.arange(25) * 3600)
        assert r["head_m"].shape == (25, p.n_nodes) and r["flow_m3s"].shape == (25, p.n_links)
        assert set(r["time_s"]) <= set(r["step_times_s"])
        assert np.all(np.diff(r["step_times_s"]) > 0)
        tank = int(np.flatnonzero(p.node_types == oracle.EN_TANK)[0])
        assert np.ptp(r["head_m"][:, tank]) > 1.0  # the tank really moves over the day
        short = p.run_extended(max_time_s=7200)
        np.testing.assert_array_equal(short["time_s"], [0, 3600, 7200])
        np.testing.assert_allclose(short["head_m"], r["head_m"][:3], atol=1e-9)


@needs_networks
@pytest.mark.parametrize("path", [NET1, LTOWN], ids=["NET1-GPM", "ltown-CMH"])
@pytest.mark.parametrize("area", [2e-5, 5e-4])
def test_emitter_is_the_orifice_leak_law(path, area):
    coeff = 0.75 * area * math.sqrt(2 * 9.81)
    with EpanetProject(path) as p:
        p.set_emitter_exponent(0.5)
        p.set_emitter_backflow(False)
        node = int(np.flatnonzero(p.node_types == oracle.EN_JUNCTION)[len(p.node_ids) // 3])
        p.set_emitter(node, coeff)
        # EPANET hands the SI coefficient back unchanged (its internal units are ft, cfs)
        assert p.get_node_values(oracle.EN_EMITTER)[node] == pytest.approx(coeff, rel=1e-12)
        r = p.solve_snapshot()
        pressure = r["pressure_m"][node]
        assert pressure > 0
        expected = coeff * math.sqrt(pressure)
        assert r["emitter_flow_m3s"][node] == pytest.approx(expected, rel=1e-6)
        leak = r["total_outflow_m3s"][node] - r["demand_m3s"][node]
        assert leak == pytest.approx(expected, rel=1e-6)


@needs_networks
def test_emitter_backflow_option():
    with EpanetProject(NET1) as p:
        node = p.node_ids.index("32")
        p.set_emitter_exponent(0.5)
        p.set_node_value(node, oracle.EN_ELEVATION, p.elevation_m[node] + 150.0)  # now below 0 m pressure
        p.set_emitter(node, 1e-3)
        p.set_emitter_backflow(True)  # EPANET 2.3's default
        wet = p.solve_snapshot()
        assert wet["pressure_m"][node] < 0 and wet["emitter_flow_m3s"][node] < 0
        p.set_emitter_backflow(False)
        dry = p.solve_snapshot()
        assert dry["pressure_m"][node] < 0
        # EPANET enforces q >= 0 with a smooth barrier, so "zero" is a few 1e-9 m³/s
        assert abs(dry["emitter_flow_m3s"][node]) < 1e-6 * abs(wet["emitter_flow_m3s"][node])


def test_source_connected_nodes_toy():
    J, R, T = oracle.EN_JUNCTION, oracle.EN_RESERVOIR, oracle.EN_TANK
    node_types = np.array([R, J, J, J, T, J, J])
    link_nodes = np.array([[0, 1], [1, 2], [2, 3], [4, 5], [5, 6]])
    status = np.array([1, 0, 1, 2, 0])  # 2 = active valve: passes flow
    mask = source_connected_nodes((node_types, link_nodes), status)
    np.testing.assert_array_equal(mask, [1, 1, 0, 0, 1, 1, 0])
    both = source_connected_nodes((node_types, link_nodes), np.stack([status, np.ones(5)]))
    np.testing.assert_array_equal(both, [[1, 1, 0, 0, 1, 1, 0], [1] * 7])


@needs_networks
def test_source_connected_on_a_project():
    with EpanetProject(NET1) as p:
        r = p.solve_snapshot()
        assert source_connected_nodes(p, r["status"]).all()
        status = r["status"].copy()
        status[p.link_ids.index("10p")] = 0  # junction 10 still hangs on the pump
        assert source_connected_nodes(p, status).all()
        status[p.link_ids.index("9")] = 0  # ... and now on nothing
        mask = source_connected_nodes(p, status)
        assert mask.sum() == p.n_nodes - 1 and not mask[p.node_ids.index("10")]


def test_broken_file_raises_naming_the_file(tmp_path):
    bad = tmp_path / "broken.inp"
    bad.write_text("[JUNCTIONS]\n J1 not-a-number\n[PIPES]\n P1 J1 NOWHERE 100 100 100\n[END]\n")
    with pytest.raises(EpanetError) as err:
        EpanetProject(bad)
    assert err.value.code == 200 and "broken.inp" in str(err.value)
    assert "Error 202" in str(err.value)  # the itemised input error from EPANET's report
    with pytest.raises(EpanetError, match="missing.inp"):
        EpanetProject(tmp_path / "missing.inp")


@needs_networks
def test_bulk_getter_rejects_a_wrong_buffer():
    with EpanetProject(NET1) as p:
        with pytest.raises(ValueError):
            p.get_node_values(oracle.EN_HEAD, np.empty(p.n_nodes - 1))
        with pytest.raises(ValueError):
            p.get_link_values(oracle.EN_FLOW, np.empty(p.n_links, dtype=np.float32))


@needs_networks
def test_toolkit_loop_baseline():
    sys.path.insert(0, str(REPO))
    from bench.toolkit_loop import (junction_ids_of, leak_emitter_coefficient,
                                    make_leak_scenarios, run_toolkit_loop)

    with EpanetProject(LTOWN) as p:
        ids = junction_ids_of(p)
        j, area, mult = make_leak_scenarios(4, 7, ids)
        j2, area2, mult2 = make_leak_scenarios(4, 7, ids)
        assert np.array_equal(j, j2) and np.array_equal(area, area2) and np.array_equal(mult, mult2)
        assert ((2e-5 <= area) & (area <= 5e-4)).all() and ((0.7 <= mult) & (mult <= 1.3)).all()
        res = run_toolkit_loop(p, j, area, mult, keep_results=True)
        assert res["head_m"].shape == (4, p.n_nodes) and np.isfinite(res["head_m"]).all()
        # the last scenario again, cold-started, agrees within what ACCURACY 1e-5 allows
        node = p.node_ids.index(ids[j[-1]])
        p.set_emitter_exponent(0.5)
        p.set_emitter(node, float(leak_emitter_coefficient(area[-1])))
        p.set_demand_multiplier(mult[-1])
        cold = p.solve_snapshot()
        np.testing.assert_allclose(res["head_m"][-1], cold["head_m"], atol=1e-3)
