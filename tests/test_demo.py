"""`parktwin demo` runs the example park end to end and writes its report and JSON files."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_runs_example_park(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "parktwin.api.cli", "demo", "--out-dir", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "reuse_rate" in proc.stdout and "substitution_rate" in proc.stdout

    park = out / "park"
    for name in ("indicators.json", "balance.json", "report.md", "park-study.h5", "park-study.json"):
        assert (park / name).is_file(), name
    indicators = json.loads((park / "indicators.json").read_text())["indicators"]
    assert {"reuse_rate", "substitution_rate"} <= set(indicators)
    balance = json.loads((park / "balance.json").read_text())
    assert balance["enterprises"] and set(balance["plants"]) == {"wastewater", "reclaimed"}

    report = (park / "report.md").read_text(encoding="utf-8")
    assert "## Indicators against their targets" in report
    assert "| indicator | value | unit | target | sense | status |" in report
    assert "| reuse_rate |" in report and "| substitution_rate |" in report
    assert "## Water balance (m³/d)" in report and "plant: reclaimed" in report
    assert "## What-if: reclaimed-water plant outage" in report
    # Issue 14: each enterprise's delivered TDS with the GB/T 19923 check, and the RO what-if's effect on it.
    assert "## Water quality: total dissolved solids" in report and "| steelworks | 2,480 |" in report
    assert "## What-if: RO recovery 0.6" in report and "| steelworks: delivered TDS (mg/L) |" in report
    assert "Mode: 24 h run" in report
    assert "## Boundary balance" in report and "the tanks repeat their levels" in report
    assert "## Monte-Carlo study of the park's operations" in report and "| reclaimed supply short |" in report
    assert "24 h run: reuse_rate" in proc.stdout and "park study: 2,000 scenarios" in proc.stdout
    # per-network indicators keep their network's name on the console (not eaten as markup)
    assert "network_leakage_rate[supply]" in proc.stdout and "unserved_demand[reclaimed]" in proc.stdout

    assert "## Leak drill: alarm and localisation" in report and "**alarm**" in report
    assert "leak drill:" in proc.stdout and "ALARM" in proc.stdout
    assert "## The twin against its meters" in report and "ledger verified against its signatures" in report
    assert "](reconcile_pressures.png)" in report and (park / "reconcile_pressures.png").is_file()
    assert "meters: 4,753 readings signed into" in proc.stdout and "unexplained supply volume" in proc.stdout
    for picture in ("pressure.png", "risk.png"):
        assert (park / picture).stat().st_size > 50_000, picture
        assert f"]({picture})" in report, picture

    summary = json.loads((park / "park-study.json").read_text())
    assert summary["scenarios"] == 2000
    # The plant is out in about 5 % of the scenarios, and every outage is a shortfall of reclaimed water.
    assert 0.03 < summary["probability"]["reclaimed_supply_short"] < 0.12
