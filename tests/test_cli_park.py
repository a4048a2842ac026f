"""`parktwin park run` end to end on a small park made of NET1 copies."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from oracle_compare import NETWORKS

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not (NETWORKS / "epanet-tests").exists(),
                                reason="../shared/networks is not beside the repository")


def _park(tmp_path):
    import test_park
    folder = tmp_path / "park"
    folder.mkdir()
    test_park._write_park(folder)
    return folder


def test_park_run_writes_indicators_and_balance(tmp_path):
    folder, out = _park(tmp_path), tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "parktwin.api.cli", "park", "run", str(folder), "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    indicators = json.loads((out / "indicators.json").read_text())
    balance = json.loads((out / "balance.json").read_text())
    assert "reuse_rate" in json.dumps(indicators) and "m3/d" in json.dumps(balance)
    assert "reuse_rate" in done.stdout


def test_park_run_snapshot_and_day_differ_only_where_time_matters(tmp_path):
    folder = _park(tmp_path)
    outs = {}
    for label, extra in (("day", []), ("snapshot", ["--snapshot"])):
        out = tmp_path / label
        done = subprocess.run([sys.executable, "-m", "parktwin.api.cli", "park", "run", str(folder), "--out", str(out), *extra],
                              cwd=REPO, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        outs[label] = (json.loads((out / "indicators.json").read_text()), json.loads((out / "balance.json").read_text()))
    day, snap = outs["day"], outs["snapshot"]
    assert day[0]["duration_s"] == 86400 and snap[0]["duration_s"] == 0
    # Without leaks the allocation is daily in both modes: the same indicators and enterprise balances.
    assert day[0]["indicators"]["reuse_rate"]["value"] == snap[0]["indicators"]["reuse_rate"]["value"]
    assert day[1]["enterprises"] == snap[1]["enterprises"]
    # ... but the networks' day differs: the tanks of NET1 move over 24 h.
    assert day[1]["networks"]["supply"]["storage_change_m3d"] != snap[1]["networks"]["supply"]["storage_change_m3d"]


def test_park_mc_writes_study_and_summary(tmp_path):
    example = REPO / "twin" / "example_park"
    out = tmp_path / "study.h5"
    cmd = [sys.executable, "-m", "parktwin.api.cli", "park", "mc", str(example), "--out", str(out), "--scenarios", "60",
           "--seed", "2", "--outage-probability", "0.5"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["scenarios"] == 60 and 0.2 < summary["probability"]["reclaimed_supply_short"] < 0.8
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "exists; give --resume" in again.stderr
    bad = subprocess.run(cmd[:-2] + ["--demand-min", "1.5", "--demand-max", "1.0", "--out", str(tmp_path / "b.h5")],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "ParkStudy.demand_factor_range" in bad.stderr and "Traceback" not in bad.stderr
