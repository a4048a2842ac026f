"""Leak alarms over time (issue 15): `parktwin locate L-Town --ledger` on four days of hourly readings made by
the oracle (EPANET) with demand uncertainty and meter noise; the full BattLeDIM-style study is
bench/leak_alarm_study.py (numbers in docs/leak-location.md)."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from bench.leak_alarm_study import LTOWN, Leak, Truth, meter_ids, oracle_readings, pipe_distances_m

REPO = Path(__file__).resolve().parents[1]
START = "2026-03-02T00:00:00+02:00"
pytestmark = pytest.mark.skipif(not LTOWN.is_file(), reason=f"{LTOWN} not found (../shared is missing)")


def readings_csv(values: np.ndarray) -> str:
    ids, quantities = meter_ids()
    start = datetime.fromisoformat(START)
    lines = ["meter,time,quantity,value"]
    for t in range(values.shape[0]):
        when = (start + timedelta(hours=t)).isoformat()
        lines += [f"{ids[k]},{when},{quantities[k]},{float(values[t, k])!r}" for k in range(len(ids))]
    return "\n".join(lines) + "\n"


def test_no_alarm_on_leak_free_days():
    from parktwin.hydraulics.compile import load_network
    from parktwin.twin.leak_alarm import AlarmOptions, MeterSeries, detect_leaks
    values = oracle_readings([], Truth(days=4), seed=21)
    ids, quantities = meter_ids()
    result = detect_leaks(load_network(LTOWN), MeterSeries(np.arange(96) * 3600.0, ids, quantities, values),
                          AlarmOptions(train_steps=48))
    assert result.alarms == ()
    assert np.nanmax(result.statistic) < result.threshold
    # the demand level the fit found wanders like the truth's (AR(1), σ 5 %), not pinned to the grid's ends
    assert 0.8 < result.demand_level.min() and result.demand_level.max() < 1.2


def test_locate_over_a_ledger_raises_one_alarm_after_the_leak_and_finds_it(tmp_path):
    leak = Leak("n300", start_step=60, ramp_steps=0, area_m2=3e-4)
    (tmp_path / "scada.csv").write_text(readings_csv(oracle_readings([leak], Truth(days=4), seed=11)))
    run = [sys.executable, "-m", "parktwin.api.cli"]
    done = subprocess.run(run + ["meters", "ingest", str(tmp_path / "l.ledger"), str(tmp_path / "scada.csv")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    done = subprocess.run(run + ["locate", str(LTOWN), "--ledger", str(tmp_path / "l.ledger"), "--from", START,
                                 "--to", "2026-03-06T00:00:00+02:00", "--train-hours", "48",
                                 "--out", str(tmp_path / "alarms.json")],
                          capture_output=True, text=True, timeout=900, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "37 meters, 96 hourly steps" in done.stdout and "ALARM at" in done.stdout
    answer = json.loads((tmp_path / "alarms.json").read_text())
    first = answer["alarms"][0]
    assert leak.start_step <= first["step"] <= leak.start_step + 12     # after the leak, within half a day
    assert first["time"] == f"2026-03-04T{first['step'] - 48 - 2:02d}:00:00Z"
    from parktwin.hydraulics.compile import load_network
    net = load_network(LTOWN)
    distance = pipe_distances_m(net, leak.junction)[net.node_index(first["candidates"][0]["junction"])]
    assert distance <= 300.0
    assert abs(sum(c["probability"] for c in first["candidates"]) - 1.0) < 0.05
    missing = subprocess.run(run + ["locate", str(LTOWN), "--ledger", str(tmp_path / "l.ledger")],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "--ledger needs --from and --to" in missing.stderr
