"""Leak alarm and localisation from meter readings (twin.leak_location), on synthetic leaks whose place and
size are known: the example park's supply network with a pressure logger at every 10th junction."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose

from parktwin.hydraulics.compile import load_network
from parktwin.hydraulics.inputs import BatchInputs
from parktwin.hydraulics.solver import HydraulicSolver
from parktwin.twin.leak_location import LocateOptions, Reading, locate_leak, read_readings

REPO = Path(__file__).resolve().parents[1]
SUPPLY = REPO / "twin" / "example_park" / "supply.inp"
NOISE_M = 0.02


@pytest.fixture(scope="module")
def net():
    return load_network(SUPPLY)


@pytest.fixture(scope="module")
def solver(net):
    return HydraulicSolver(net)


def _leak(net, solver, junction: int, area_m2: float):
    leaks = sp.csr_matrix(([area_m2], ([0], [junction])), shape=(1, net.n_junctions))
    return solver.run(BatchInputs(1, leak_area_m2=leaks), 0)


def _loggers(net, res, rng, every: int = 10, noise_m: float = NOISE_M):
    sensors = range(0, net.n_junctions, every)
    return [Reading(net.node_ids[i], "pressure_m", float(res.pressure_m[0, 0, i]) + rng.normal(0, noise_m), noise_m)
            for i in sensors]


def test_leaks_are_found_where_they_are(net, solver):
    """20 random leaks of 3 to 14 L/s, pressure loggers with 5 mm noise: the alarm every time, the true
    junction among the first three candidates in most cases, the first candidate a pipe away at worst
    in most of the others (the network is a 200 m grid: neighbours look alike at the loggers)."""
    rng = np.random.default_rng(11)
    ranks, distance_m, alarms = [], [], 0
    for _ in range(20):
        j, area = int(rng.integers(net.n_junctions)), float(10 ** rng.uniform(-3.5, -2.7))
        location = locate_leak(net, _loggers(net, _leak(net, solver, j, area), rng, noise_m=0.005))
        ids = [c.junction for c in location.candidates]
        alarms += location.alarm
        ranks.append(ids.index(net.node_ids[j]) if net.node_ids[j] in ids else len(ids))
        distance_m.append(float(np.hypot(*(net.xy_m[net.node_index(ids[0])] - net.xy_m[j]))))
        probability = [c.probability for c in location.candidates]
        assert probability == sorted(probability, reverse=True) and 0 < sum(probability) <= 1 + 1e-12
    ranks = np.array(ranks)
    assert alarms == 20
    assert np.mean(ranks < 3) >= 0.7 and np.mean(ranks < 10) >= 0.85, ranks
    assert np.median(distance_m) == 0.0 and np.percentile(distance_m, 80) <= 300.0, distance_m


def test_no_leak_no_alarm(net, solver):
    rng = np.random.default_rng(5)
    base = solver.run(BatchInputs(1), 0)
    false_alarms = sum(locate_leak(net, _loggers(net, base, rng)).alarm for _ in range(10))
    assert false_alarms == 0


def test_an_intake_meter_sizes_the_leak(net, solver):
    """A flow meter on the intake: the leak's outflow is what the intake gains, so the size is found."""
    rng = np.random.default_rng(3)
    j = net.node_index("S0707")
    res = _leak(net, solver, j, 1e-3)
    intakes = [k for k, lid in enumerate(net.link_ids) if lid.startswith("S-INTAKE")]
    meters = _loggers(net, res, rng) + [Reading(net.link_ids[k], "flow_m3s", float(res.flow_m3s[0, 0, k]), 1e-4)
                                        for k in intakes]
    location = locate_leak(net, meters)
    best = location.candidates[0]
    assert location.alarm
    assert_allclose(best.leak_m3s, float(res.leak_m3s[0, 0, j]), rtol=0.1)
    assert "S0707" in [c.junction for c in location.candidates[:3]]


def test_bad_readings_and_options(net, tmp_path):
    with pytest.raises(ValueError, match="reading 'NOPE': .* has no node of that id"):
        locate_leak(net, [Reading("NOPE", "pressure_m", 30.0, 0.1)])
    with pytest.raises(ValueError, match="reading 'S0101': unknown quantity 'head'"):
        locate_leak(net, [Reading("S0101", "head", 30.0, 0.1)])
    with pytest.raises(ValueError, match="candidates: 'MUNICIPAL' is not a junction"):
        locate_leak(net, [Reading("S0101", "pressure_m", 30.0, 0.1)], LocateOptions(candidates=("MUNICIPAL",)))
    csv = tmp_path / "r.csv"
    csv.write_text("element,quantity,value\nS0101,pressure_m,31.2\nS0102,pressure_m,abc\n")
    with pytest.raises(ValueError, match=r"r.csv: row 3: value and noise must be numbers"):
        read_readings(csv)
    csv.write_text("element,value\nS0101,31.2\n")
    with pytest.raises(ValueError, match="r.csv: missing column"):
        read_readings(csv)


def test_parktwin_locate(net, solver, tmp_path):
    rng = np.random.default_rng(2)
    j = net.node_index("S0707")
    rows = ["element,quantity,value,noise"] + [f"{r.element},{r.quantity},{r.value!r},{r.noise!r}"
                                                for r in _loggers(net, _leak(net, solver, j, 1e-3), rng)]
    (tmp_path / "readings.csv").write_text("\n".join(rows) + "\n")
    done = subprocess.run([sys.executable, "-m", "parktwin.api.cli", "locate", str(SUPPLY), "--readings",
                           str(tmp_path / "readings.csv"), "--out", str(tmp_path / "where.json")],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "ALARM" in done.stdout and "S0707" in done.stdout
    found = json.loads((tmp_path / "where.json").read_text())
    assert found["alarm"] and "S0707" in [c["junction"] for c in found["candidates"][:3]]
    bad = subprocess.run([sys.executable, "-m", "parktwin.api.cli", "locate", str(SUPPLY), "--readings",
                          str(tmp_path / "missing.csv")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "missing.csv" in bad.stderr and "Traceback" not in bad.stderr
