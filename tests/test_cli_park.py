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
    done = subprocess.run([sys.executable, "-m", "api.cli", "park", "run", str(folder), "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    indicators = json.loads((out / "indicators.json").read_text())
    balance = json.loads((out / "balance.json").read_text())
    assert "reuse_rate" in json.dumps(indicators) and "m3/d" in json.dumps(balance)
    assert "reuse_rate" in done.stdout


def test_park_run_over_24h_says_it_is_not_there_yet(tmp_path):
    done = subprocess.run([sys.executable, "-m", "api.cli", "park", "run", str(_park(tmp_path)), "--out",
                           str(tmp_path / "out"), "--duration", "86400"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2 and "not implemented yet" in done.stderr and "Traceback" not in done.stderr
