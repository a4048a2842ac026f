"""The boundary balance of a park run: from the hydraulic results, closing where books and meters agree,
its residual exactly the disagreement where they do not; periodic runs; `parktwin park run/whatif`."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from parktwin.twin.boundary import CLOSURE_TOLERANCE, boundary_of
from parktwin.twin.coupled import run_park
from parktwin.twin.park import load_park
from parktwin.twin.periodic import Periodicity
from parktwin.twin.whatif import CityFreshHead, apply

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "twin" / "example_park"
ENV_CLI = [sys.executable, "-m", "parktwin.api.cli"]


def _copy(tmp_path, edit_supply=None) -> Path:
    folder = tmp_path / "park"
    shutil.copytree(EXAMPLE, folder)
    if edit_supply is not None:
        path = folder / "supply.inp"
        path.write_text(edit_supply(path.read_text()))
    return folder


def _parts(b: dict) -> float:
    return sum(b["in"].values()) - sum(b["out"].values()) - b["storage_change_m3d"]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    done = subprocess.run([*ENV_CLI, "park", "run", str(EXAMPLE), "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads((out / "balance.json").read_text()), done.stdout


def test_cli_run_writes_the_boundary_balance_and_it_closes(cli_run):
    balance, stdout = cli_run
    b = balance["boundary"]
    assert set(b["in"]) == {"fresh_m3d", "city_reclaimed_m3d"}
    assert set(b["out"]) == {"consumption_m3d", "discharge_to_city_m3d", "reclaimed_export_m3d",
                             "network_leaks_m3d", "plant_losses_m3d"}
    assert_allclose(b["residual_m3d"], _parts(b), atol=1e-6)
    assert b["closure"] == pytest.approx(abs(b["residual_m3d"]) / sum(b["in"].values()))
    assert b["closure"] <= CLOSURE_TOLERANCE
    # By default the run goes on until the tank repeats its level: the example's tank fills on day 1.
    days = balance["days"]
    assert days["periodic"] is True and days["reported_day"] >= 2
    assert abs(b["storage_change_m3d"]) < 1e-3 * b["in"]["fresh_m3d"]
    # The parts are the networks' own: fresh is the supply network's source outflow, discharge the outfall's.
    nets = balance["networks"]
    assert b["in"]["fresh_m3d"] == nets["supply"]["source_outflow_m3d"]
    plants = b["detail"]["plants"]
    assert plants["outfall_m3d"] == -nets["discharge"]["source_outflow_m3d"]
    assert_allclose(b["out"]["discharge_to_city_m3d"] + plants["reclaimed_to_park_m3d"]
                    + b["out"]["reclaimed_export_m3d"] + b["out"]["plant_losses_m3d"], plants["outfall_m3d"])
    assert "boundary:" in stdout and "tanks repeat" in stdout
    # Plant losses: the park's 0.5 % of what the wastewater plant treated, as the books have them.
    assert_allclose(b["out"]["plant_losses_m3d"], 0.005 * plants["treated_m3d"])
    assert_allclose(b["out"]["plant_losses_m3d"], balance["plants"]["wastewater"]["losses"], rtol=1e-6)


def test_changing_the_supply_network_alone_moves_the_intake(tmp_path):
    """An emitter in supply.inp (a user no enterprise books): the metered intake rises by what it drew and
    the residual is exactly that volume, named as unbooked outflow."""
    def add_emitter(text):
        return text.replace("[EMITTERS]\n;ID        Flow coefficient\n",
                            "[EMITTERS]\n;ID        Flow coefficient\nS0101 0.5\n")
    base = run_park(load_park(EXAMPLE), periodicity=Periodicity(days=2))
    park = load_park(_copy(tmp_path, add_emitter))
    changed = run_park(park, periodicity=Periodicity(days=2))
    h = changed.hydraulics["supply"]
    drawn = float(h.node_volume_m3[h.net.node_index("S0101")])
    assert drawn > 50.0
    b0, b1 = boundary_of(base), boundary_of(changed)
    assert_allclose(b1.fresh_m3d - b0.fresh_m3d, drawn, rtol=1e-3)
    assert_allclose(b1.residual_m3d, drawn, rtol=1e-3)
    causes = {c.name: c.m3d for c in b1.causes}
    assert_allclose(causes["unbooked_outflow[supply]"], drawn, rtol=1e-9)
    # The causes below 1e-6 of the intake (solver round-off) are not listed.
    assert_allclose(sum(c.m3d for c in b1.causes if c.in_residual), b1.residual_m3d, atol=1e-5 * b1.fresh_m3d)
    # The books never saw it: per-unit figures are the same.
    assert changed.balance["park"]["intake"] == base.balance["park"]["intake"]


def test_unserved_demand_is_the_residual(tmp_path):
    """Pressure-driven demand with a required pressure the network cannot give: the enterprises are booked
    their full intake, the network delivers less; the residual is exactly minus the unserved volume."""
    def pressure_driven(text):
        return text.replace("[OPTIONS]\n", "[OPTIONS]\nDEMAND MODEL         PDA\nMINIMUM PRESSURE     0\n"
                                           "REQUIRED PRESSURE    45\nPRESSURE EXPONENT    0.5\n")
    park = load_park(_copy(tmp_path, pressure_driven))
    result = run_park(park, periodicity=Periodicity(days=2))
    s = result.service["supply"]
    unserved = s.requested_m3d - s.delivered_m3d
    assert unserved > 100.0
    b = boundary_of(result)
    assert_allclose(b.residual_m3d, -unserved, rtol=1e-4)
    assert b.closure > CLOSURE_TOLERANCE
    assert {c.name for c in b.causes if c.in_residual} == {"unserved_demand[supply]"}
    # The report names the cause and says the balance does not close.
    from parktwin.twin.report import write_report
    text = write_report(tmp_path / "report.md", result).read_text()
    assert "unserved_demand[supply]" in text and "**beyond** 0.1 %" in text


def test_report_of_the_example(tmp_path):
    from parktwin.twin.report import write_report
    result = run_park(load_park(EXAMPLE), periodicity=Periodicity())
    text = write_report(tmp_path / "report.md", result).read_text()
    assert "## Boundary balance" in text and "within 0.1 %" in text and "the tanks repeat" in text
    reuse = result.indicators["reuse_rate"]
    # Both classifications of the park plant's water are in the report, with the margin to the target.
    alt = reuse["other_classification"]
    assert f"{100 * reuse['value']:.1f} %" in text and f"{100 * alt['value']:.1f} %" in text
    assert "if counted as reuse" in text and "margin" in text
    assert "no provincial quota (electronic_chemicals)" in text
    assert "Water per 10,000 yuan:" in text and "2020" in text


def test_a_draining_tank_is_storage_change_not_closure_error():
    """The city's head below the tank's water level: the tank drains over the day and feeds the park."""
    park = apply(load_park(EXAMPLE), [CityFreshHead(87.0)])
    result = run_park(park, periodicity=Periodicity(days=1))
    b = boundary_of(result)
    assert b.storage_change_m3d < -300.0
    assert b.closure <= CLOSURE_TOLERANCE
    booked = result.allocation.fresh_total
    assert_allclose(b.fresh_m3d - b.storage_change_m3d, booked, rtol=1e-4)
    assert any(c.name == "tank_storage[supply]" and not c.in_residual for c in b.causes)
    assert result.days["periodic"] is False


def test_days_option(tmp_path):
    park = load_park(EXAMPLE)
    one = run_park(park, periodicity=Periodicity(days=1))
    three = run_park(park, periodicity=Periodicity(days=3))
    assert one.days["reported_day"] == 1 and one.days["periodic"] is False
    assert three.days["reported_day"] == 3 and three.days["days_run"] == 3
    # Day 1 fills the tank (about 4 m); by day 3 it is full and stays so.
    assert one.boundary.storage_change_m3d > 500.0
    assert abs(three.boundary.storage_change_m3d) < 1.0
    assert_allclose(three.boundary.fresh_m3d, three.allocation.fresh_total, rtol=1e-4)
    # The report times of the reported day only, on its own clock.
    t = three.hydraulics["supply"].times_s
    assert t[0] == 0 and t[-1] == 86400 and len(t) == 25
    assert not np.array_equal(three.hydraulics["supply"].head_m, one.hydraulics["supply"].head_m)
    with pytest.raises(ValueError, match="days"):
        Periodicity(days=0)
    # Until periodic, but allowed one day only: the run says the tanks do not repeat.
    capped = run_park(park, periodicity=Periodicity(max_days=1))
    assert capped.days["mode"] == "until periodic" and capped.days["periodic"] is False
    assert capped.days["tank_level_change_m"]["supply"] == pytest.approx(4.0, abs=0.1)
    assert Periodicity().run_lengths() == (1, 2, 4, 8, 16)


def test_cli_whatif_leak_raises_leaks_and_intake_by_its_volume(tmp_path):
    ops = tmp_path / "ops.json"
    ops.write_text(json.dumps([{"op": "perturbation", "network": "supply", "element": "S0707",
                                "attribute": "leak_area_m2", "value": 1e-3}]))
    out = tmp_path / "out"
    done = subprocess.run([*ENV_CLI, "park", "whatif", str(EXAMPLE), "--ops", str(ops), "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    comparison = json.loads((out / "comparison.json").read_text())
    balance = json.loads((out / "balance.json").read_text())
    assert (out / "indicators.json").is_file()
    leak = balance["networks"]["supply"]["leaks_m3d"]
    assert leak > 100.0
    b = comparison["boundary"]
    assert_allclose(b["network_leaks_m3d"]["change"], leak, rtol=1e-9)
    assert_allclose(b["fresh_m3d"]["change"], leak, rtol=1e-2)
    assert b["closure"]["after"] <= CLOSURE_TOLERANCE
    ind = comparison["indicators"]["network_leakage_rate[supply]"]
    assert ind["before"] == 0.0 and ind["after"] > 0.0 and ind["change"] == ind["after"]


def test_a_sewer_leak_is_a_network_leak_and_a_park_loss():
    """A leak on a discharge main: the outfall gets less, the boundary books it as a network leak (sewer
    exfiltration), the closure holds, and the park's leakage rate counts it."""
    from parktwin.twin.whatif import JunctionLeak
    park = load_park(EXAMPLE)
    base = run_park(park, periodicity=Periodicity(days=2))
    leaky = run_park(apply(park, [JunctionLeak("discharge", "D0707", 5e-4)]), periodicity=Periodicity(days=2))
    sewer = leaky.service["discharge"].leaks_m3d
    assert sewer > 100.0
    b0, b1 = boundary_of(base), boundary_of(leaky)
    assert_allclose(b1.network_leaks_m3d - b0.network_leaks_m3d, sewer, rtol=1e-9)
    # The plant treats that much less, and so loses its losses_fraction of it less.
    kept = 1.0 - park.wastewater_plant.losses_fraction
    assert_allclose(b0.discharge_to_city_m3d - b1.discharge_to_city_m3d, sewer * kept, rtol=1e-3)
    assert b1.closure <= CLOSURE_TOLERANCE
    assert any(c.name == "sewer_exfiltration" and not c.in_residual for c in b1.causes)
    d0, d1 = base.park_balance, leaky.park_balance
    assert_allclose(d1.losses - d0.losses, sewer, rtol=1e-9)
    assert_allclose(leaky.balance["park"]["network_losses_sewer"], sewer)


def test_cli_whatif_bad_operation_is_one_line_naming_the_file(tmp_path):
    ops = tmp_path / "ops.json"
    ops.write_text(json.dumps({"operations": [{"op": "leak", "network": "supply", "junction": "S0707",
                                               "area_m2": -1}]}))
    done = subprocess.run([*ENV_CLI, "park", "whatif", str(EXAMPLE), "--ops", str(ops), "--out",
                           str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert str(ops) in done.stderr and "operations.0.area_m2" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    ops.write_text(json.dumps([{"op": "leak", "network": "supply", "junction": "NOPE", "area_m2": 1e-3}]))
    done = subprocess.run([*ENV_CLI, "park", "whatif", str(EXAMPLE), "--ops", str(ops), "--out",
                           str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "operations.0" in done.stderr and "NOPE" in done.stderr
    assert not (tmp_path / "out").exists()


def test_http_api_gives_the_boundary_balance_and_the_same_operations_as_the_cli(tmp_path):
    """The API's balance carries the boundary; the API and `parktwin park whatif` take one operation
    list and agree on the leak's effect."""
    from test_api_whatif import ApiServer
    ops = [{"op": "perturbation", "network": "supply", "element": "S0707", "attribute": "leak_area_m2",
            "value": 1e-3}]
    server = ApiServer(tmp_path / "data").start()
    try:
        with server.client() as client:
            bal = client.get("/parks/example/balance").json()["balance"]
            body = client.post("/parks/example/whatif", json={"operations": ops}).json()
    finally:
        server.stop()
    b = bal["boundary"]
    assert b["closure"] <= CLOSURE_TOLERANCE and b["closes"] is True
    # The API runs one day (days=1): the example's tank fills, and that is storage, not a closure error.
    assert b["storage_change_m3d"] > 500.0
    after = body["balance"]["boundary"]
    assert after["closure"] <= CLOSURE_TOLERANCE
    file = tmp_path / "ops.json"
    file.write_text(json.dumps({"operations": ops}))
    done = subprocess.run([*ENV_CLI, "park", "whatif", str(EXAMPLE), "--ops", str(file), "--out",
                           str(tmp_path / "out"), "--days", "1"], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    cli = json.loads((tmp_path / "out" / "balance.json").read_text())["boundary"]
    assert_allclose(cli["out"]["network_leaks_m3d"], after["out"]["network_leaks_m3d"], rtol=1e-9)
    assert_allclose(cli["in"]["fresh_m3d"], after["in"]["fresh_m3d"], rtol=1e-9)
