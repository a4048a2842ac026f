"""`parktwin park reconcile` (issue 15): the example park against a day of readings generated with a hidden
leak, demand noise and meter noise; the unexplained volume finds the leak."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from parktwin.twin.meter_synthesis import SynthesisOptions, leak, synthesize_day
from parktwin.twin.park import load_park
from parktwin.twin.reconcile import held_volume_m3, hourly_load

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_PARK = REPO / "twin" / "example_park"
DAY = ("--from", "2026-03-01T00:00:00+08:00", "--to", "2026-03-02T00:00:00+08:00")


def cli(*args):
    return subprocess.run([sys.executable, "-m", "parktwin.api.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=REPO)


def test_volumes_hold_each_reading_until_the_next():
    t = [0.0, 600.0, 1800.0]
    assert_allclose(held_volume_m3(np.array(t), np.array([1.0, 2.0, 3.0]), 3600.0), 600 * 1 + 1200 * 2 + 1800 * 3)
    load = hourly_load(np.array([0.0, 7200.0]), np.array([1.0, 3.0]), 86400.0)
    assert_allclose(load.mean_m3s, (2 * 1 + 22 * 3) / 24)
    assert_allclose(load.profile[:3] * load.mean_m3s, [1.0, 1.0, 3.0])


@pytest.fixture(scope="module")
def leaky_day(tmp_path_factory):
    park = load_park(EXAMPLE_PARK)
    day = synthesize_day(park, (leak("supply", "S0505", 5e-4),), SynthesisOptions(seed=7))
    folder = tmp_path_factory.mktemp("reconcile")
    (folder / "day.csv").write_text(day.csv)
    done = cli("meters", "ingest", folder / "park.ledger", folder / "day.csv", "--park", EXAMPLE_PARK)
    assert done.returncode == 0, done.stderr
    return folder, day


def test_reconcile_finds_the_hidden_leak_in_the_unexplained_volume(leaky_day):
    folder, day = leaky_day
    out = folder / "out"
    done = cli("park", "reconcile", EXAMPLE_PARK, "--ledger", folder / "park.ledger", *DAY, "--out", out)
    assert done.returncode == 0, done.stderr
    assert "supply: unexplained" in done.stdout
    rec = json.loads((out / "reconcile.json").read_text())
    assert rec["ledger"]["verified"] is True and rec["days"] == 1 and rec["unread_meters"] == []
    supply = rec["networks"]["supply"]
    hidden = day.leak_m3["supply"]
    assert hidden > 500.0          # the leak is a real share of the day (about 7 % of the intake)
    assert abs(supply["unexplained_m3"] - hidden) <= 0.10 * hidden, (supply["unexplained_m3"], hidden)
    assert supply["storage_source"] == {"TANK": "level meter"}
    for name in ("reclaimed", "discharge"):       # no leak there: what is left is meter noise
        n = rec["networks"][name]
        assert abs(n["unexplained_m3"]) < 0.01 * n["enterprises_m3"], (name, n["unexplained_m3"])
    # The model ran without the leak: the metered intake exceeds the modelled one by about the leak,
    # and the pressure meters read below the model.
    assert supply["model_leaks_m3"] == 0.0
    assert_allclose(supply["intake_m3"] - supply["modelled_intake_m3"], hidden, rtol=0.25)
    pressures = [m for m in rec["meters"] if m["quantity"] == "pressure_m"]
    assert len(pressures) == 11 and all(m["bias"] < 0 for m in pressures)
    books = rec["books"]["enterprise_meters"]
    assert len(books) == 33 and all(abs(r["difference_m3"]) < 0.2 * r["booked_m3"] for r in books)
    report = (out / "reconcile.md").read_text()
    assert "## The twin against its meters" in report and "![Pressures at the meters" in report
    for png in ("reconcile_boundary.png", "reconcile_pressures.png", "reconcile_levels.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_reconcile_refuses_a_tampered_ledger_and_a_partial_day(leaky_day, tmp_path):
    folder, _ = leaky_day
    bad = cli("park", "reconcile", EXAMPLE_PARK, "--ledger", folder / "park.ledger", "--from",
              "2026-03-01T00:00:00+08:00", "--to", "2026-03-01T12:00:00+08:00", "--out", tmp_path / "x")
    assert bad.returncode == 2 and "the period must be whole days" in bad.stderr
    tampered = tmp_path / "tampered.ledger"
    tampered.write_bytes((folder / "park.ledger").read_bytes())
    (tmp_path / "tampered.ledger.pub").write_bytes((folder / "park.ledger.pub").read_bytes())
    con = sqlite3.connect(tampered)
    con.execute("UPDATE readings SET value = value * 1.05 WHERE meter = 'intake_1'")
    con.commit()
    con.close()
    done = cli("park", "reconcile", EXAMPLE_PARK, "--ledger", tampered, *DAY, "--out", tmp_path / "y")
    assert done.returncode == 2 and "reconciliation refuses tampered data" in done.stderr
    assert "was altered after it was signed" in done.stderr
