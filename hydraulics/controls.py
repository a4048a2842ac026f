"""EPANET 2.3's control engine: simple controls and rules in EPANET's internal units, and the evaluation of
simple controls for a batch (hydraul.c controls() and controltimestep()).

The parsers (hydraulics.controls_parse, hydraulics.rules_parse) give SI `SimpleControl`s and `Rule`s, as
NetworkArrays stores them; `to_internal` converts them once per solver into `InternalControl`s and
`RuleInternal`s in EPANET's internal units (ft, cfs). Junction-pressure controls act inside the solver
(hydsolver.c pswitch(), see hydraulics.status.pressure_switch); the rule engine is hydraulics.rules.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from parktwin.hydraulics.coefficients import CLOSED, OPEN, set_pcv_loss
from parktwin.hydraulics.control_units import MISSING, SECONDS_PER_DAY, setting_to_internal
from parktwin.hydraulics.controls_parse import SimpleControl
from parktwin.hydraulics.epanet_units import QZERO, SolverNetwork, tank_volume
from parktwin.hydraulics.network import LinkKind, PumpCurveKind
from parktwin.hydraulics.rules_parse import Action, Premise, Rule
from parktwin.hydraulics.units_tables import M_PER_FT


@dataclass(frozen=True)
class InternalControl:
    """A SimpleControl in EPANET's internal units (what the evaluation functions take)."""

    link: int
    node: int
    tank: int            # index into sn.tank_node, -1 if the node is not a tank (or a time control)
    kind: str
    grade_ft: float      # control->Grade (nan for time controls)
    volume_ft3: float    # tankvolume(Grade) for a tank control, else nan
    time_s: int
    status: int
    setting: float       # internal units; nan = MISSING
    enabled: bool
    link_kind: int


@dataclass(frozen=True)
class ActionInternal:
    link: int
    link_kind: int
    status: int
    setting: float       # internal units; nan = none


@dataclass(frozen=True)
class RuleInternal:
    label: str
    premises: tuple[Premise, ...]
    then_actions: tuple[ActionInternal, ...]
    else_actions: tuple[ActionInternal, ...]
    priority: float
    enabled: bool


def rule_to_internal(rule: Rule, sn: SolverNetwork) -> RuleInternal:
    def conv(a: Action):
        kind = int(sn.kind[a.link])
        return ActionInternal(link=a.link, link_kind=kind, status=a.status,
                              setting=setting_to_internal(kind, a.setting_si, sn))
    return RuleInternal(label=rule.label, premises=rule.premises,
                        then_actions=tuple(conv(a) for a in rule.then_actions),
                        else_actions=tuple(conv(a) for a in rule.else_actions),
                        priority=rule.priority, enabled=rule.enabled)


# --------------------------------------------------------------------------- to internal units
def to_internal(items, sn: SolverNetwork) -> tuple:
    """SimpleControl -> InternalControl, Rule -> RuleInternal (once per solver); internal items pass."""
    tank_of = {int(n): t for t, n in enumerate(sn.tank_node)}
    out = []
    for c in items:
        if isinstance(c, Rule):
            out.append(rule_to_internal(c, sn))
            continue
        if not isinstance(c, SimpleControl):
            out.append(c)
            continue
        lk = int(sn.kind[c.link])
        tank, grade, vol = -1, math.nan, math.nan
        if c.node >= 0:
            el = float(sn.elevation_ft[c.node])
            if c.node < sn.n_junctions:
                grade = el + c.level_si * sn.pressure_si_to_ft
            else:
                grade = el + c.level_si / M_PER_FT
                tank = tank_of.get(c.node, -1)
                if tank >= 0:
                    vol = float(tank_volume(sn, tank, grade))
        setting = MISSING if lk == LinkKind.GPV else setting_to_internal(lk, c.setting_si, sn)
        out.append(InternalControl(link=c.link, node=c.node, tank=tank, kind=c.kind, grade_ft=grade,
                                   volume_ft3=vol, time_s=c.time_s, status=c.status, setting=setting,
                                   enabled=c.enabled, link_kind=lk))
    return tuple(out)


# --------------------------------------------------------------------------- evaluation
def same_setting(a, b):
    """EPANET's setting equality with MISSING as nan."""
    return (a == b) | (np.isnan(a) & np.isnan(b))


def pump_restart_flow(sn: SolverNetwork, k: int):
    """hydraul.c resetpumpflow(): the flow (cfs) a re-opened link k restarts from, or None (no reset:
    only constant-power pumps are reset, to their Q0)."""
    p = int(sn.pump_of_link[k])
    if p >= 0 and sn.pump_type[p] == PumpCurveKind.CONST_HP:
        return float(sn.pump_q0[p])
    return None


def reset_pump_flow(sn: SolverNetwork, state, k: int, mask) -> None:
    q0 = pump_restart_flow(sn, k)
    if q0 is not None:
        state.flow[k] = np.where(mask, q0, state.flow[k])


def _ctl_setting(c: InternalControl, current):
    """The setting a control writes: its own for pumps and valves, unchanged for pipes and GPVs."""
    if c.link_kind > LinkKind.PIPE and c.link_kind != LinkKind.GPV:
        return np.full(current.shape, c.setting)
    return current


def apply_simple_controls(controls, sn: SolverNetwork, state, time_s, clock_start_s: int) -> np.ndarray:
    """hydraul.c controls() at each scenario's current time; returns [B] bool: some link changed.

    Tank/reservoir level, timer and time-of-day controls (junction-pressure ones act in pswitch()).
    Controls apply in file order, each seeing the changes of those before it."""
    t = np.asarray(time_s, dtype=np.int64)
    batch = state.batch_size
    changed = np.zeros(batch, bool)
    for c in controls:
        if not c.enabled or c.link < 0:
            continue
        if c.kind in ("low", "high"):
            if c.node < sn.n_junctions:
                continue
            if c.tank < 0:      # a reservoir: tankvolume() is 0 at any head, so it always fires
                reset = np.ones(batch, bool)
            else:
                v1 = tank_volume(sn, c.tank, state.head[c.node])
                vplus = np.abs(state.node_outflow[c.node])
                reset = (v1 <= c.volume_ft3 + vplus) if c.kind == "low" else (v1 >= c.volume_ft3 - vplus)
        elif c.kind == "timer":
            reset = t == c.time_s
        else:
            reset = (t + clock_start_s) % SECONDS_PER_DAY == c.time_s
        if not reset.any():
            continue
        k = c.link
        s_now = state.status[k]
        s1 = np.where(s_now <= CLOSED, CLOSED, OPEN)
        k1 = state.setting[k]
        k2 = _ctl_setting(c, k1)
        if c.link_kind == LinkKind.PUMP and c.status == OPEN:
            reset_pump_flow(sn, state, k, reset & (s1 == CLOSED))
        change = reset & ((s1 != c.status) | ~same_setting(k1, k2))
        state.status[k] = np.where(change, c.status, s_now)
        state.setting[k] = np.where(change, k2, k1)
        if c.link_kind == LinkKind.PCV:
            set_pcv_loss(sn, state, k, k2, change)
        changed |= change
    return changed


def epanet_round(x) -> np.ndarray:
    """types.h ROUND(): half away from zero, truncated to an integer."""
    x = np.clip(np.nan_to_num(np.asarray(x, float)), -2.0 ** 62, 2.0 ** 62)
    return np.where(x >= 0, np.floor(x + 0.5), np.ceil(x - 0.5)).astype(np.int64)


def control_time_step(controls, sn: SolverNetwork, state, time_s, tstep, clock_start_s: int) -> np.ndarray:
    """hydraul.c controltimestep(): tstep [B] shortened to the next time a control would change a link."""
    t_now = np.asarray(time_s, dtype=np.int64)
    tstep = np.array(tstep, dtype=np.int64, copy=True)
    for c in controls:
        if not c.enabled:
            continue
        t = np.zeros(len(tstep), np.int64)
        if c.kind in ("low", "high"):
            if c.node < sn.n_junctions or c.tank < 0:   # junctions skipped; reservoirs give t = 0
                continue
            h = state.head[c.node]
            q = state.node_outflow[c.node]
            go = (np.abs(q) > QZERO) & (((h < c.grade_ft) & (q > 0.0)) if c.kind == "high"
                                        else ((h > c.grade_ft) & (q < 0.0)))
            with np.errstate(divide="ignore", invalid="ignore"):
                v = c.volume_ft3 - state.tank_volume[c.tank]
                t = np.where(go, epanet_round(v / np.where(go, q, 1.0)), 0)
        elif c.kind == "timer":
            t = np.where(c.time_s > t_now, c.time_s - t_now, 0)
        else:
            t1 = (t_now + clock_start_s) % SECONDS_PER_DAY
            t = np.where(c.time_s >= t1, c.time_s - t1, SECONDS_PER_DAY - t1 + c.time_s)
        use = (t > 0) & (t < tstep)
        if not use.any():
            continue
        k = c.link
        differs = state.status[k] != c.status
        if c.link_kind > LinkKind.PIPE and c.link_kind != LinkKind.GPV:
            differs |= ~same_setting(state.setting[k], np.full(len(tstep), c.setting))
        tstep = np.where(use & differs, t, tstep)
    return tstep
