"""Random mixed scenarios, written both as ParkTwin perturbation rows and as EPANET toolkit edits.

A scenario is a list of :class:`Change`: one perturbation-table row and the EPANET 2.3 call that means the
same. EPANET solves every scenario in a project of its own, from freshly initialised flows (what a user gets
from ``EN_openH``/``EN_initH(10)``), so its answers never depend on scenario order.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parktwin.hydraulics import oracle

# epanet2_enums.h (EPANET 2.3), beyond what hydraulics/oracle.py names
EN_TANKLEVEL, EN_MINLEVEL, EN_MAXLEVEL = 8, 20, 21
EN_TRIALS = 0
EN_INITSTATUS, EN_INITSETTING = 4, 5
EN_PRV, EN_PSV, EN_PBV, EN_FCV, EN_TCV = 3, 4, 5, 6, 7

LEAK_CD = 0.75
GRAVITY_MS2 = 9.81
KINDS = ("leak", "demand_multiplier", "closed", "pump_speed", "valve_setting", "tank_level", "reservoir_head")


@dataclass(frozen=True)
class Change:
    element: str            # the element id ('*' for every junction)
    attribute: str          # ParkTwin's perturbation attribute
    value: float | str
    target: str             # 'node' or 'link' or 'option'
    index: int              # EPANET index (0-based) or option code
    prop: int               # EPANET property code
    epanet_value: float


LEAK_AND_DEMAND = ("leak", "demand_multiplier")


def draw(ep: oracle.EpanetProject, rng: np.random.Generator, n: int, kinds=KINDS,
         every_kind: bool = False) -> list[list[Change]]:
    """n scenarios drawn from what this network has: one to three random changes of `kinds`, or one of
    every kind (every_kind)."""
    pool = _pool(ep)
    kinds = [k for k in kinds if len(pool[k])]
    out = []
    for _ in range(n):
        size = len(kinds) if every_kind else min(len(kinds), int(rng.integers(1, 4)))
        picked = rng.permutation(kinds)[:size]
        changes: list[Change] = []
        seen = set()
        for kind in picked:
            change = _draw_one(ep, rng, str(kind), pool[str(kind)])
            if change.element not in seen:
                seen.add(change.element)
                changes.append(change)
        out.append(changes)
    return out


def _pool(ep: oracle.EpanetProject) -> dict:
    types, ltypes = ep.node_types, ep.link_types
    emitters = ep.get_node_values(oracle.EN_EMITTER)
    junctions = np.flatnonzero(types == oracle.EN_JUNCTION)
    # EPANET has one emitter exponent and one backflow rule for the whole network: a leak (exponent 0.5, no
    # backflow) can only be added to a network that has no emitters of its own.
    leak_nodes = junctions if not (emitters > 0).any() else np.array([], np.int64)
    setting = ep.get_link_values(EN_INITSETTING)
    valves = np.flatnonzero(np.isin(ltypes, [EN_PRV, EN_PSV, EN_PBV, EN_FCV, EN_TCV]) & (setting > 0))
    return {
        "leak": leak_nodes,
        "demand_multiplier": junctions,
        "closed": np.flatnonzero(ltypes == oracle.EN_PIPE),
        "pump_speed": np.flatnonzero(ltypes == oracle.EN_PUMP),
        "valve_setting": valves,
        "tank_level": np.flatnonzero(types == oracle.EN_TANK),
        "reservoir_head": np.flatnonzero(types == oracle.EN_RESERVOIR),
    }


def _draw_one(ep: oracle.EpanetProject, rng, kind: str, pool: np.ndarray) -> Change:
    i = int(rng.choice(pool))
    node, link = ep.node_ids[i] if i < ep.n_nodes else None, ep.link_ids[i] if i < ep.n_links else None
    if kind == "leak":
        area = float(rng.uniform(2e-5, 5e-4))
        return Change(node, "leak_area_m2", area, "node", i, oracle.EN_EMITTER,
                      LEAK_CD * area * np.sqrt(2.0 * GRAVITY_MS2))
    if kind == "demand_multiplier":
        m = float(rng.uniform(0.7, 1.3))
        return Change("*", "demand_multiplier", m, "option", oracle.EN_DEMANDMULT, 0,
                      m * ep.get_option(oracle.EN_DEMANDMULT))
    if kind == "closed":
        return Change(link, "status", "closed", "link", i, EN_INITSTATUS, 0.0)
    if kind == "pump_speed":
        s = float(rng.uniform(0.8, 1.2))
        return Change(link, "pump_speed", s, "link", i, EN_INITSETTING, s)
    if kind == "valve_setting":
        v = float(ep.get_link_values(EN_INITSETTING)[i] * rng.uniform(0.8, 1.2))
        return Change(link, "valve_setting", v, "link", i, EN_INITSETTING, v)
    if kind == "tank_level":
        lo, hi = ep.get_node_values(EN_MINLEVEL)[i], ep.get_node_values(EN_MAXLEVEL)[i]
        level = float(rng.uniform(lo, hi)) if hi > lo else float(lo)
        return Change(node, "tank_level_m", level, "node", i, EN_TANKLEVEL, level)
    if kind == "reservoir_head":
        h = float(ep.get_node_values(oracle.EN_ELEVATION)[i] + rng.uniform(-2.0, 2.0))
        return Change(node, "reservoir_head_m", h, "node", i, oracle.EN_ELEVATION, h)
    raise ValueError(kind)


def write_table(path: Path, scenarios: list[list[Change]]) -> list[str]:
    """The perturbation table of the scenarios (CSV); returns their ids."""
    ids = [f"r{k}" for k in range(len(scenarios))]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["scenario", "element", "attribute", "value"])
        for sid, changes in zip(ids, scenarios):
            for c in changes:
                w.writerow([sid, c.element, c.attribute, c.value if isinstance(c.value, str) else repr(c.value)])
    return ids


def epanet_solve(path: Path, changes: list[Change], duration_s: int, accuracy: float, warm: bool = False,
                 trials_factor: float = 1.0) -> dict:
    """EPANET's answer to one scenario, in a fresh project: snapshot, or every report time up to duration_s.

    warm=True solves the base case first and the scenario from its flows (EN_initH(0)), as ParkTwin's warm
    start does; trials_factor scales the file's TRIALS. A scenario EPANET cannot solve at all (error 110)
    comes back with "error": 110."""
    with oracle.EpanetProject(path, accuracy=accuracy) as ep:
        if trials_factor != 1.0:
            ep.set_option(EN_TRIALS, round(ep.get_option(EN_TRIALS) * trials_factor))
        if warm:
            ep.open_hydraulics()
            ep.init_hydraulics(oracle.EN_INITFLOW)
            ep.run_h()
        if any(c.attribute == "leak_area_m2" for c in changes):
            ep.set_emitter_exponent(0.5)
            ep.set_emitter_backflow(False)
        for c in changes:
            if c.target == "option":
                ep.set_option(c.index, c.epanet_value)
            elif c.target == "node":
                ep.set_node_value(c.index, c.prop, c.epanet_value)
            else:
                ep.set_link_value(c.index, c.prop, c.epanet_value)
        try:
            if warm:
                ep.init_hydraulics(oracle.EN_NOSAVE)
                ep.run_h()
                ref = ep._read_state()
                ref.update(time_s=0, warning=ep.last_warning, iterations=int(ep.statistic()))
            else:
                ref = ep.solve_snapshot() if duration_s == 0 else ep.run_extended(max_time_s=duration_s)
        except oracle.EpanetError as error:
            if error.code != 110:
                raise
            ref = {"error": 110}
        ref["node_ids"], ref["link_ids"] = ep.node_ids, ep.link_ids
        ref["node_types"], ref["link_types"], ref["link_nodes"] = ep.node_types, ep.link_types, ep.link_nodes
        ref["trials"] = int(ep.get_option(EN_TRIALS))
    return ref
