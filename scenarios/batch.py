"""A batch of scenarios: ids, per-scenario solver inputs and the perturbation rows that made them
(`ScenarioBatch`), and `build_batch`, which turns a checked perturbation table into one."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from parktwin.hydraulics.inputs import BatchInputs
from parktwin.hydraulics.network import NetworkArrays
from parktwin.scenarios.attributes import ATTRIBUTES
from parktwin.scenarios.perturbations import PerturbationTable, factorize, resolve


@dataclass(frozen=True)
class ScenarioBatch:
    ids: tuple[str, ...]
    inputs: BatchInputs
    perturbations: PerturbationTable
    seed: int | None = None

    @property
    def size(self) -> int:
        return len(self.ids)

    def subset(self, rows: np.ndarray | slice) -> "ScenarioBatch":
        idx = np.arange(self.size)[rows]
        ids = tuple(self.ids[i] for i in idx)
        return ScenarioBatch(ids=ids, inputs=self.inputs.subset(idx),
                             perturbations=self.perturbations.for_scenarios(ids), seed=self.seed)


def build_batch(table: PerturbationTable, net: NetworkArrays, scenario_ids=None,
                seed: int | None = None) -> ScenarioBatch:
    """One scenario per id (given, else the table's ids in order of appearance); ids without rows are
    the base case. The whole table is validated first, also rows of scenarios not asked for.

    `demand_multiplier` on `*` sets every junction of the scenario; a row for a single junction in the
    same scenario overrides it there (it does not multiply with it). Only attributes that appear in the
    selected rows get an array in `BatchInputs`; the others stay None ("as in the network").
    """
    attr_code, numeric, column = resolve(table, net)
    order, scenario_code = factorize(table.scenario)
    ids = tuple(order) if scenario_ids is None else tuple(str(s) for s in scenario_ids)
    if len(set(ids)) != len(ids):
        repeated = [sid for sid, n in Counter(ids).items() if n > 1]
        raise ValueError(f"scenario ids repeat: {', '.join(repeated[:5])}")
    if not ids:
        raise ValueError("no scenarios: the table has no rows and no scenario ids were given")
    position = {sid: i for i, sid in enumerate(ids)}
    row_scenario = np.array([position.get(s, -1) for s in order], np.int64)[scenario_code] \
        if len(table) else np.zeros(0, np.int64)
    perturbations = table if scenario_ids is None else table.for_scenarios(ids)
    return ScenarioBatch(ids=ids, inputs=inputs_from_rows(net, len(ids), row_scenario, attr_code, numeric, column),
                         perturbations=perturbations, seed=seed)


def inputs_from_rows(net: NetworkArrays, n_scenarios: int, row_scenario: np.ndarray, attr_code: np.ndarray,
                     numeric: np.ndarray, column: np.ndarray) -> BatchInputs:
    """The solver inputs of checked rows given as numbers: each row's scenario position (-1: not in the
    batch), attribute (index in ATTRIBUTES), value (status words as their code) and column (see
    attributes.element_columns; -1: every junction). What `build_batch` makes of a table's rows, and what
    the samplers make of theirs without writing them as text first."""
    selected = row_scenario >= 0
    base = BatchInputs(batch_size=n_scenarios)
    fields: dict[str, np.ndarray] = {}
    for code in np.unique(attr_code[selected]):
        attr = ATTRIBUTES[code]
        rows = np.flatnonzero(selected & (attr_code == code))
        every = rows[column[rows] < 0]
        if len(every) == len(rows) and attr.inputs_field == "demand_multiplier":
            # Only '*' rows: one factor per scenario, [B, 1], broadcast over junctions by the solver
            # (a dense [B, Nj] array would cost 6 GB per million L-Town scenarios).
            target = np.ones((n_scenarios, 1))
            target[row_scenario[every], 0] = numeric[every]
            fields[attr.inputs_field] = target
            continue
        if attr.inputs_field in ("leak_area_m2", "leak_cd"):
            # Leaks are a few per scenario: sparse, so a million scenarios do not need a dense [B, Nj].
            target = sp.csr_matrix((numeric[rows], (row_scenario[rows], column[rows])),
                                   shape=(n_scenarios, net.n_junctions))
            fields[attr.inputs_field] = target
            continue
        target = base.filled(attr.inputs_field, net)
        # '*' rows first, so a single junction's row of the same scenario overrides them.
        target[row_scenario[every], :] = numeric[every, None]
        one = rows[column[rows] >= 0]
        target[row_scenario[one], column[one]] = numeric[one]
        fields[attr.inputs_field] = target
    return BatchInputs(batch_size=n_scenarios, **fields)
