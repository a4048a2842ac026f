"""Perturbation tables: reading and writing, every rejection, and the batches they build."""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from parktwin.hydraulics.inputs import BatchInputs
from parktwin.hydraulics.network import LinkKind
from parktwin.scenarios.attributes import ATTRIBUTES, BY_NAME, ElementKind, element_columns
from parktwin.scenarios.batch import build_batch
from parktwin.scenarios.perturbation_files import read_perturbations
from parktwin.scenarios.perturbations import DEFAULT_H5_GROUP, PerturbationError, PerturbationTable

NETWORKS = Path("/work/shared/networks")
NET1_PATH = NETWORKS / "epanet-tests/network_one/NET1.inp"
LTOWN_PATH = NETWORKS / "benchmarks/l-town.inp"


def _load(path: Path):
    try:
        from parktwin.hydraulics.compile import load_network
        return load_network(path)
    except ImportError:
        # The INP reader or controls may be mid-rewrite elsewhere; the plain WNTR path has every id we need.
        import wntr
        from parktwin.hydraulics.compile import compile_network
        return compile_network(wntr.network.WaterNetworkModel(str(path)), name=path.stem)


@pytest.fixture(scope="module")
def net1():
    return _load(NET1_PATH)


@pytest.fixture(scope="module")
def ltown():
    return _load(LTOWN_PATH)


ROWS = [
    ("leak", "11", "leak_area_m2", "1e-3"),
    ("leak", "11", "leak_cd", "0.6"),
    ("growth", "*", "demand_multiplier", "1.5"),
    ("growth", "12", "demand_multiplier", "0.5"),
    ("outage", "9", "status", "Closed"),
    ("mixed", "2", "tank_level_m", "35"),
    ("mixed", "10p", "roughness", "120"),
    ("mixed", "9", "reservoir_head_m", "250.5"),
    ("mixed", "9", "pump_speed", "0.8"),
    ("mixed", "13", "base_demand_m3s", "0.01"),
]


def _table(rows=ROWS, source="<rows>"):
    return PerturbationTable.from_rows(rows, source=source)


def _write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------- the attribute table
def test_attributes_are_declared_once_and_fill_batch_inputs():
    names = [a.name for a in ATTRIBUTES]
    assert len(names) == len(set(names)) == 14
    fields = set(BatchInputs.__dataclass_fields__)
    assert all(a.inputs_field in fields for a in ATTRIBUTES)
    assert BY_NAME["demand_multiplier"].element is ElementKind.JUNCTION_OR_ALL
    assert BY_NAME["status"].value.value == "status word"


def test_element_columns_follow_batch_input_axes(net1):
    assert element_columns(net1, ElementKind.TANK) == {"2": 0}
    assert element_columns(net1, ElementKind.RESERVOIR) == {"9": 0}
    assert element_columns(net1, ElementKind.PUMP) == {"9": 0}
    assert element_columns(net1, ElementKind.PIPE)["10p"] == net1.link_index("10p")
    assert "9" not in element_columns(net1, ElementKind.PIPE)
    assert element_columns(net1, ElementKind.VALVE) == {}


# ---------------------------------------------------------------------- reading and writing
def _same_rows(a: PerturbationTable, b: PerturbationTable):
    assert a.to_rows() == b.to_rows()


def test_round_trip_csv_json_h5(tmp_path):
    table = _table()
    table.to_csv(tmp_path / "t.csv")
    _same_rows(read_perturbations(tmp_path / "t.csv"), table)
    table.to_json(tmp_path / "t.json")
    _same_rows(read_perturbations(tmp_path / "t.json"), table)
    with h5py.File(tmp_path / "t.h5", "w") as f:
        table.write_h5(f.require_group(DEFAULT_H5_GROUP))
        table.write_h5(f.require_group("elsewhere"))
    _same_rows(read_perturbations(tmp_path / "t.h5"), table)
    _same_rows(read_perturbations(tmp_path / "t.h5", group="elsewhere"), table)
    # Values stay as written: '1e-3' is not rewritten as '0.001'.
    assert read_perturbations(tmp_path / "t.csv").value[0] == "1e-3"


def test_csv_rows_are_numbered_by_line_and_columns_found_by_name(tmp_path):
    path = _write_csv(tmp_path / "p.csv", "Value, Attribute ,element,scenario\n\n0.5,demand_multiplier,*,a\n")
    table = read_perturbations(path)
    assert table.to_rows() == [{"scenario": "a", "element": "*", "attribute": "demand_multiplier",
                                "value": "0.5"}]
    assert table.row_number.tolist() == [3]    # line 1 header, line 2 blank


def test_json_accepts_a_list_or_rows_and_keeps_numbers_as_written(tmp_path):
    rows = [{"scenario": "a", "element": "11", "attribute": "leak_area_m2", "value": 0.00010}]
    (tmp_path / "list.json").write_text(json.dumps(rows))
    (tmp_path / "obj.json").write_text('{"rows": [{"scenario": "a", "element": "11", '
                                       '"attribute": "leak_area_m2", "value": 1.0E-4}]}')
    assert read_perturbations(tmp_path / "list.json").value.tolist() == ["0.0001"]
    assert read_perturbations(tmp_path / "obj.json").value.tolist() == ["1.0E-4"]


def test_empty_tables_from_results_can_be_read_back(tmp_path):
    empty = PerturbationTable.from_rows([])
    assert len(empty) == 0 and empty.scenario_ids() == ()
    with h5py.File(tmp_path / "r.h5", "w") as f:
        empty.write_h5(f.require_group(DEFAULT_H5_GROUP))
    assert len(read_perturbations(tmp_path / "r.h5", allow_empty=True)) == 0
    with pytest.raises(PerturbationError, match="no rows"):
        read_perturbations(tmp_path / "r.h5")


def test_from_columns_broadcasts_and_writes_numbers_as_text():
    table = PerturbationTable.from_columns(["s0", "s1"], "*", "demand_multiplier", np.array([0.1 + 0.2, 2.0]))
    assert table.value.tolist() == ["0.30000000000000004", "2.0"]
    assert float(table.value[0]) == 0.1 + 0.2


def test_access_helpers():
    table = _table()
    assert len(table) == len(ROWS)
    assert table.scenario_ids() == ("leak", "growth", "outage", "mixed")
    sub = table.for_scenarios(["outage", "leak"])
    assert sub.scenario.tolist() == ["leak", "leak", "outage"]
    assert sub.row_number.tolist() == [1, 2, 5]


# ---------------------------------------------------------------------- rejections
def _error(rows, net=None, source="<rows>") -> PerturbationError:
    with pytest.raises(PerturbationError) as info:
        table = PerturbationTable.from_rows(rows, source=source)
        if net is not None:
            build_batch(table, net)
    return info.value


GOOD = ("a", "11", "leak_area_m2", "0.001")

NETWORK_FREE_ERRORS = [
    ([GOOD, ("a", "11", "leak_area", "1")], 2, "unknown attribute 'leak_area' (valid: leak_area_m2, leak_cd"),
    ([("a", "11", "leak_area_m2", "abc")], 1, "leak_area_m2 value 'abc' is not a number"),
    ([("a", "11", "leak_area_m2", "-0.01")], 1, "leak_area_m2 value '-0.01' must be >= 0"),
    ([("a", "11", "leak_area_m2", "inf")], 1, "is not finite"),
    ([("a", "10p", "roughness", "nan")], 1, "roughness value 'nan' is not finite"),
    ([("a", "10p", "roughness", "0")], 1, "roughness value '0' must be > 0"),
    ([("a", "9", "pump_speed", "-1")], 1, "pump_speed value '-1' must be >= 0"),
    ([("a", "10p", "status", "shut")], 1, "status must be 'open' or 'closed', not 'shut'"),
    ([GOOD, ("b", "11", "leak_area_m2", "1"), ("a", "11", "leak_area_m2", "2")], 3,
     "repeats row 1 (scenario 'a', element '11', attribute 'leak_area_m2')"),
    ([("a", "*", "leak_area_m2", "1")], 1, "'*' (all junctions) is allowed only for demand_multiplier"),
    ([("a", "", "leak_area_m2", "1")], 1, "empty 'element'"),
    ([GOOD, {"scenario": "a", "element": "12", "attribute": "leak_area_m2"}], 2, "missing 'value'"),
    ([GOOD, ("a", "12", "leak_area_m2")], 2, "expected 4 fields"),
]


@pytest.mark.parametrize("rows, row, reason", NETWORK_FREE_ERRORS)
def test_network_free_errors_name_source_row_and_reason(rows, row, reason):
    err = _error(rows, source="mine.csv")
    assert str(err).startswith(f"mine.csv: row {row}: ")
    assert reason in str(err)
    assert err.row_number == row and err.source == "mine.csv"


NETWORK_ERRORS = [
    ([("a", "J-99", "leak_area_m2", "1")], "'J-99' is not a junction of l-town; leak_area_m2 applies to junctions"),
    ([("a", "T1", "leak_area_m2", "1")], "'T1' is not a junction of l-town (it is a tank)"),
    ([("a", "PUMP_1", "roughness", "100")], "'PUMP_1' is not a pipe of l-town (it is a pump)"),
    ([("a", "p1", "pump_speed", "1")], "'p1' is not a pump of l-town (it is a pipe)"),
    ([("a", "p1", "valve_setting", "30")], "'p1' is not a valve of l-town (it is a pipe); valve_setting "
                                           "applies to PRV, PSV, PBV, FCV, TCV and PCV valves"),
    ([("a", "n1", "status", "open")], "'n1' is not a link of l-town (it is a junction)"),
    ([("a", "R1", "tank_level_m", "1")], "'R1' is not a tank of l-town (it is a reservoir)"),
    ([("a", "T1", "reservoir_head_m", "1")], "'T1' is not a reservoir of l-town (it is a tank)"),
    ([("a", "n1", "leak_cd", "0.6")], "leak_cd on junction 'n1' needs a leak_area_m2 row for the same junction "
                                      "in scenario 'a'"),
    ([("a", "T1", "tank_level_m", "4.5")], "tank_level_m 4.5 for tank 'T1' is outside its range 0 to 4 m"),
]


@pytest.mark.parametrize("rows, reason", NETWORK_ERRORS)
def test_network_errors_name_the_element_and_network(ltown, rows, reason):
    padded = [("ok", "n1", "leak_area_m2", "0.001")] + rows    # the bad row is row 2
    err = _error(padded, ltown, source="l-town-cases.csv")
    assert str(err).startswith("l-town-cases.csv: row 2: ")
    assert reason in str(err)


def test_leak_cd_with_its_leak_is_fine_and_pump_speed_zero_is_off(ltown):
    batch = build_batch(_table([("a", "n1", "leak_area_m2", "0.001"), ("a", "n1", "leak_cd", "0.6"),
                                ("b", "PUMP_1", "pump_speed", "0")]), ltown)
    assert batch.inputs.leak_cd[0, ltown.node_index("n1")] == 0.6
    assert batch.inputs.pump_speed[1, 0] == 0.0


def test_leak_cd_needs_the_leak_in_the_same_scenario(net1):
    err = _error([("a", "11", "leak_area_m2", "0.001"), ("b", "11", "leak_cd", "0.6")], net1)
    assert "row 2: leak_cd on junction '11' needs a leak_area_m2 row" in str(err)


def test_base_demand_needs_a_demand_category(net1):
    no_demand_at_13 = dataclasses.replace(net1, demand_node=np.where(net1.demand_node == 3, 0, net1.demand_node))
    err = _error([("a", "13", "base_demand_m3s", "0.01")], no_demand_at_13)
    assert "row 1: junction '13' has no demand in NET1 for base_demand_m3s to replace" in str(err)


def test_the_earliest_row_is_reported_whatever_the_check(net1):
    # Within a stage the earliest row wins, whichever attribute or check finds it...
    bad_tank, bad_id = ("a", "2", "tank_level_m", "1000"), ("a", "J-99", "leak_area_m2", "1")
    assert "row 2: tank_level_m 1000" in str(_error([GOOD, bad_tank, bad_id], net1))
    assert "row 2: 'J-99'" in str(_error([GOOD, bad_id, bad_tank], net1))
    values = [GOOD, ("a", "10p", "roughness", "-3"), ("a", "11", "status", "x"), ("a", "9", "zzz", "1")]
    assert "row 2: roughness value '-3'" in str(_error(values))
    # ...a malformed row after a bad value loses to the value, being later...
    assert "row 1: leak_area_m2 value 'x'" in str(_error([("a", "11", "leak_area_m2", "x"), ("a",)]))
    # ...and the network-free checks (run when the table is read) come before the network's.
    assert "row 3: roughness value 'x'" in str(_error([GOOD, bad_id, ("a", "10p", "roughness", "x")], net1))


def test_rows_of_scenarios_not_asked_for_are_still_validated(net1):
    table = _table([GOOD, ("other", "J-99", "leak_area_m2", "1")])
    with pytest.raises(PerturbationError, match="row 2: 'J-99' is not a junction of NET1"):
        build_batch(table, net1, scenario_ids=["a"])


def test_file_errors(tmp_path):
    cases = {
        "empty.csv": ("", "empty.csv: the file is empty"),
        "header.csv": ("scenario,element,attribute,value\n", "has a header but no rows"),
        "cols.csv": ("scenario,element,value\na,11,1\n", "cols.csv: row 1: missing column(s) 'attribute'"),
        "fields.csv": ("scenario,element,attribute,value\na,11,leak_area_m2,0.1\nb,11\n",
                       "fields.csv: row 3: 2 fields, but the header has 4"),
        "bad.csv": ("scenario,element,attribute,value\n\na,11,leak_area_m2,-1\n",
                    "bad.csv: row 3: leak_area_m2 value '-1' must be >= 0"),
        "empty.json": ("  ", "empty.json: the file is empty"),
        "none.json": ("[]", "none.json: the file has no rows"),
        "shape.json": ('{"a": 1}', 'expected a list of rows or {"rows": [...]}'),
        "broken.json": ("[{", "not valid JSON (line 1"),
        "nan.json": ('[{"scenario": "a", "element": "11", "attribute": "leak_area_m2", "value": NaN}]',
                     "nan.json: row 1: leak_area_m2 value 'NaN' is not finite"),
        "table.xlsx": ("x", "unsupported file type '.xlsx'"),
    }
    for name, (text, message) in cases.items():
        path = _write_csv(tmp_path / name, text)
        with pytest.raises(PerturbationError) as info:
            read_perturbations(path)
        assert message in str(info.value), name
        assert str(path) in str(info.value)
    with pytest.raises(PerturbationError, match="no such file"):
        read_perturbations(tmp_path / "absent.csv")
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_group(DEFAULT_H5_GROUP).create_dataset("scenario", data=["a"])
    with pytest.raises(PerturbationError, match="no group 'elsewhere'"):
        read_perturbations(tmp_path / "x.h5", group="elsewhere")
    with pytest.raises(PerturbationError, match="missing column 'element'"):
        read_perturbations(tmp_path / "x.h5")


# ---------------------------------------------------------------------- building batches
def test_build_batch_on_net1_fills_the_right_cells(net1):
    batch = build_batch(_table(), net1, scenario_ids=["base", "leak", "growth", "outage", "mixed"], seed=7)
    x = batch.inputs
    assert batch.ids == ("base", "leak", "growth", "outage", "mixed") and batch.seed == 7
    assert x.batch_size == 5 and batch.size == 5
    j11, j12, j13 = (net1.node_index(j) for j in ("11", "12", "13"))
    # Leaks are sparse [B, Nj]; a leak_cd entry that is absent means the default 0.75.
    assert x.leak_area_m2.toarray()[:, j11].tolist() == [0, 1e-3, 0, 0, 0]
    assert x.leak_area_m2.sum() == 1e-3
    assert x.leak_cd.toarray()[:, j11].tolist() == [0, 0.6, 0, 0, 0]
    # '*' sets every junction, the single junction's row replaces it (0.5, not 0.75).
    expected = np.ones((5, net1.n_junctions))
    expected[2] = 1.5
    expected[2, j12] = 0.5
    np.testing.assert_array_equal(x.demand_multiplier, expected)
    pump = net1.link_index("9")
    assert x.link_status.dtype == np.int8
    assert x.link_status[:, pump].tolist() == [-1, -1, -1, 0, -1]
    assert (np.delete(x.link_status, pump, axis=1) == -1).all()
    assert np.isnan(x.tank_level_m[:4]).all() and x.tank_level_m[4, 0] == 35.0
    assert x.roughness[4, net1.link_index("10p")] == 120.0 and np.isnan(x.roughness).sum() == 5 * 13 - 1
    assert x.reservoir_head_m[:, 0].tolist()[4] == 250.5
    assert x.pump_speed[4, 0] == 0.8 and np.isnan(x.pump_speed[:4]).all()
    assert x.base_demand_m3s[4, j13] == 0.01 and np.isnan(x.base_demand_m3s).sum() == 5 * 9 - 1
    assert x.valve_setting is None
    assert batch.perturbations.scenario_ids() == ("leak", "growth", "outage", "mixed")


def test_build_batch_defaults_to_table_ids_and_only_present_attributes(net1):
    batch = build_batch(_table([("s2", "*", "demand_multiplier", "2"), ("s1", "11", "leak_area_m2", "0.1")]), net1)
    assert batch.ids == ("s2", "s1")
    assert batch.inputs.roughness is None and batch.inputs.leak_cd is None
    # Only '*' rows: one factor per scenario, broadcast over the junctions by the solver.
    assert batch.inputs.demand_multiplier.shape == (2, 1)
    assert batch.inputs.demand_multiplier[:, 0].tolist() == [2.0, 1.0]
    sub = batch.subset(slice(1, 2))
    assert sub.ids == ("s1",) and sub.perturbations.scenario.tolist() == ["s1"]
    with pytest.raises(ValueError, match="repeat"):
        build_batch(_table(), net1, scenario_ids=["a", "a"])
    assert build_batch(PerturbationTable.from_rows([]), net1, scenario_ids=["base"]).size == 1


def test_build_batch_on_ltown(ltown):
    prv = ltown.link_ids[int(np.flatnonzero(ltown.link_kind == LinkKind.PRV)[0])]
    rows = [("a", "n54", "leak_area_m2", "0.0005"), ("a", prv, "valve_setting", "30"),
            ("b", "R2", "reservoir_head_m", "70"), ("b", "T1", "tank_level_m", "3.9"),
            ("b", "p1", "status", "closed"), ("c", "p2", "roughness", "0.5")]
    x = build_batch(_table(rows), ltown, scenario_ids=["a", "b", "c", "base"]).inputs
    n54 = ltown.node_index("n54")
    assert x.leak_area_m2.shape == (4, 782) and x.leak_area_m2[0, n54] == 5e-4
    assert x.leak_area_m2.count_nonzero() == 1
    assert x.valve_setting[0, ltown.link_index(prv)] == 30.0 and np.isnan(x.valve_setting[1:]).all()
    assert x.reservoir_head_m[1].tolist()[1] == 70.0 and np.isnan(x.reservoir_head_m[1, 0])
    assert x.tank_level_m[:, 0].tolist()[1] == 3.9
    assert x.link_status[1, ltown.link_index("p1")] == 0 and (x.link_status[[0, 2, 3]] == -1).all()
    assert x.roughness[2, ltown.link_index("p2")] == 0.5


@pytest.mark.parametrize("name", ["NET1", "l-town"])
def test_building_100000_scenarios_is_fast(name, net1, ltown):
    net = net1 if name == "NET1" else ltown
    n = 100_000
    rng = np.random.default_rng(1)
    ids = np.char.add("s", np.arange(n).astype(str))
    junctions = np.array(net.junction_ids)[rng.integers(0, net.n_junctions, n)]
    start = time.perf_counter()
    table = PerturbationTable.from_columns(
        np.repeat(ids, 2), np.column_stack([junctions, np.full(n, "*")]).ravel(),
        np.tile(["leak_area_m2", "demand_multiplier"], n),
        np.column_stack([rng.uniform(1e-4, 1e-3, n), rng.uniform(0.8, 1.2, n)]).ravel())
    made = time.perf_counter()
    batch = build_batch(table, net)
    built = time.perf_counter()
    gb = 2 * n * net.n_junctions * 8 / 1e9
    print(f"\n100,000 scenarios x 2 rows on {name}: from_columns {made - start:.2f} s, "
          f"build_batch {built - made:.2f} s (two [{n}, {net.n_junctions}] float64 arrays, {gb:.2f} GB)")
    k = 12345
    assert batch.inputs.leak_area_m2[k, net.node_index(str(junctions[k]))] == float(table.value[2 * k])
    assert batch.inputs.demand_multiplier[k, 0] == float(table.value[2 * k + 1])
