"""EPANET 2.3's batched rule engine: rules.c checkrules(), evalpremises(), updateactionlist() and
takeactions(), and hydraul.c ruletimestep(), on rules parsed by hydraulics.rules_parse and converted to
internal units by hydraulics.controls.to_internal.

A premise is compared as EPANET does: in file units (its value times `ucf`), with a tolerance of 0.001.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np

from parktwin.hydraulics.coefficients import ACTIVE, CLOSED, OPEN, set_pcv_loss
from parktwin.hydraulics.control_units import MISSING, SECONDS_PER_DAY
from parktwin.hydraulics.controls import ActionInternal, RuleInternal, pump_restart_flow, to_internal
from parktwin.hydraulics.epanet_units import TINY, SolverNetwork
from parktwin.hydraulics.leakage import node_leakage
from parktwin.hydraulics.network import LinkKind
from parktwin.hydraulics.rules_parse import NO_STATUS, Premise

TOL = 1.0e-3     # rules.c: premises compare within 0.001 file units


class RuleStep(NamedTuple):
    tstep: np.ndarray    # [B] int64: the time step actually taken (<= the proposed one)
    fired: np.ndarray    # [B] bool: some rule action changed a link at the end of that step


class RuleEngine:
    """Batched rules.c + hydraul.c ruletimestep(). Works on a HydraulicState in internal units.

    update_tanks(dt): callback owned by the caller; dt is an int64 array [B] of seconds. It must do
    EPANET's tanklevels(dt[b]) for every scenario b with dt[b] > 0 (volume += NodeDemand*dt, the
    full/empty-within-a-second snap, head = tankgrade(volume) into state.head and state.tank_volume) and
    leave scenarios with dt[b] == 0 untouched. It is called on the same state object given to step().
    """

    def __init__(self, rules, sn: SolverNetwork, *, rule_step_s: int, clock_start_s: int):
        self.rules: tuple[RuleInternal, ...] = to_internal(tuple(rules), sn)
        self.sn = sn
        self.rule_step_s = int(rule_step_s)
        self.clock_start_s = int(clock_start_s)
        self._tank_of = {int(n): t for t, n in enumerate(sn.tank_node)}
        self._priority = np.array([r.priority for r in self.rules] + [-np.inf])

    # ------------------------------------------------------------------ ruletimestep()
    def advance(self, state, time_s, tstep, update_tanks: Callable[[np.ndarray], None],
                system_demand: np.ndarray | None = None) -> RuleStep:
        """ruletimestep() per scenario: from time_s, step the clock by rule steps up to tstep, updating
        tanks and checking rules after each; stop at the first step where a rule acts. Scenarios with
        tstep <= 0 are left alone. system_demand [B] (cfs): EPANET's Dsystem for SYSTEM DEMAND premises
        (sum of positive demand-category demands); defaults to the sum of positive state.full_demand."""
        tnow = np.asarray(time_s, dtype=np.int64)
        tstep = np.asarray(tstep, dtype=np.int64)
        batch = len(tstep)
        fired = np.zeros(batch, bool)
        live = tstep > 0
        if not self.rules:
            update_tanks(np.where(live, tstep, 0))
            return RuleStep(tstep.copy(), fired)
        rs = self.rule_step_s if self.rule_step_s > 0 else 1 << 62
        tmax = tnow + tstep
        dt = np.minimum(rs, tstep)
        dt1 = np.minimum(rs - tnow % rs, tstep)
        dt1 = np.where(dt1 == 0, dt, dt1)
        htime = tnow.copy()
        active = live.copy()
        while active.any():
            inc = np.where(active, dt1, 0)
            htime = htime + inc
            update_tanks(inc)
            cols = np.flatnonzero(active)
            dsys = None if system_demand is None else np.asarray(system_demand)[cols]
            acted = self.check(state, htime[cols], inc[cols], cols, dsys) > 0
            fired[cols[acted]] = True
            active[cols[acted]] = False
            dt = np.where(active, np.minimum(dt, tmax - htime), dt)
            dt1 = dt
            active &= dt > 0
        return RuleStep(np.where(live, htime - tnow, tstep), fired)

    def step(self, state, time_s, tstep, update_tanks, system_demand=None) -> np.ndarray:
        return self.advance(state, time_s, tstep, update_tanks, system_demand).tstep

    # ------------------------------------------------------------------ checkrules()
    def check(self, state, htime, dt, cols=None, system_demand=None) -> np.ndarray:
        """checkrules(dt) at clock htime for the scenarios `cols` (all if None); returns the number of
        actions taken per listed scenario (state is changed in place)."""
        cols = np.arange(state.batch_size) if cols is None else np.asarray(cols)
        nc = len(cols)
        htime = np.broadcast_to(np.asarray(htime, np.int64), (nc,))
        t1 = htime - np.asarray(dt, np.int64) + 1
        if system_demand is None:
            system_demand = np.maximum(state.full_demand[:, cols], 0.0).sum(axis=0)
        n_rules = len(self.rules)
        win_rule: dict[int, np.ndarray] = {}
        win_action: dict[int, np.ndarray] = {}
        actions: list[ActionInternal] = []
        for i, rule in enumerate(self.rules):
            if not rule.enabled:
                continue
            truth = self._premises(rule, state, cols, t1, htime, system_demand)
            for acts, mask in ((rule.then_actions, truth), (rule.else_actions, ~truth)):
                for a in acts:
                    aid = len(actions)
                    actions.append(a)
                    if not mask.any():
                        continue
                    r = win_rule.setdefault(a.link, np.full(nc, n_rules, np.int64))
                    w = win_action.setdefault(a.link, np.full(nc, -1, np.int64))
                    take = mask & ((r == n_rules) | (rule.priority > self._priority[r]))
                    r[take] = i
                    w[take] = aid
        count = np.zeros(nc, np.int64)
        for link, w in win_action.items():
            for aid in np.unique(w[w >= 0]):
                sel = w == aid
                count[sel] += self._take(actions[aid], state, cols[sel])
        return count

    def _premises(self, rule, state, cols, t1, t2, dsys):
        """evalpremises(): AND closes the running result (a false one ends the rule), OR extends it."""
        result = np.ones(len(cols), bool)
        dead = np.zeros(len(cols), bool)
        for p in rule.premises:
            if p.logop == "OR":
                result = result | self._premise(p, state, cols, t1, t2, dsys)
            else:
                dead |= ~result
                result = self._premise(p, state, cols, t1, t2, dsys)
        return result & ~dead

    def _premise(self, p: Premise, state, cols, t1, t2, dsys) -> np.ndarray:
        nc = len(cols)
        if p.variable in ("TIME", "CLOCKTIME"):
            if p.variable == "CLOCKTIME":
                t1 = (t1 + self.clock_start_s) % SECONDS_PER_DAY
                t2 = (t2 + self.clock_start_s) % SECONDS_PER_DAY
            x = int(p.value_file)
            rel = p.relation
            if rel in ("=", "<>"):
                inside = np.where(t2 < t1, (x >= t1) | (x <= t2), (x >= t1) & (x <= t2))
                return inside if rel == "=" else ~inside
            return {"<": t2 < x, "<=": t2 <= x, ">": t2 > x, ">=": t2 >= x}[rel]
        if p.status != NO_STATUS:
            if p.object != "LINK":   # EPANET would read LinkStatus[node index]: meaningless, never true here
                return np.zeros(nc, bool)
            s = state.status[p.index, cols]
            j = np.where(s <= CLOSED, CLOSED, np.where(s == ACTIVE, ACTIVE, OPEN))
            if p.relation == "=":
                return j == p.status
            if p.relation == "<>":
                return j != p.status
            return np.zeros(nc, bool)
        sn, i, var = self.sn, p.index, p.variable
        valid = np.ones(nc, bool)
        if var == "DEMAND":
            if p.object == "SYSTEM":
                x = dsys * p.ucf
            elif i < sn.n_junctions:
                x = junction_outflow(state, i, cols) * p.ucf
            else:
                x = state.node_outflow[i, cols] * p.ucf
        elif var in ("HEAD", "GRADE"):
            x = state.head[i, cols] * p.ucf
        elif var in ("PRESSURE", "LEVEL"):
            x = (state.head[i, cols] - sn.elevation_ft[i]) * p.ucf
        elif var == "FLOW":
            x = np.abs(state.flow[i, cols]) * p.ucf
        elif var == "SETTING":
            x = state.setting[i, cols] * p.ucf
            valid = ~np.isnan(x)
        elif var in ("FILLTIME", "DRAINTIME"):
            t = self._tank_of.get(i, -1)
            if t < 0 or sn.tank_area_ft2[t] == 0.0:
                return np.zeros(nc, bool)
            q = state.node_outflow[i, cols]
            fill = var == "FILLTIME"
            valid = q > TINY if fill else q < -TINY
            target = sn.tank_vmax_ft3[t] if fill else sn.tank_vmin_ft3[t]
            x = (target - state.tank_volume[t, cols]) / np.where(valid, q, 1.0)
        else:                        # STATUS compared with a number, POWER: never true (as rules.c)
            return np.zeros(nc, bool)
        v = p.value_file
        rel = p.relation
        with np.errstate(invalid="ignore"):
            ok = {"=": ~(np.abs(x - v) > TOL), "<>": ~(np.abs(x - v) < TOL), "<": ~(x > v + TOL),
                  "<=": ~(x > v - TOL), ">": ~(x < v - TOL), ">=": ~(x < v + TOL)}[rel]
        return ok & valid

    # ------------------------------------------------------------------ takeactions()
    def _take(self, a: ActionInternal, state, cols) -> np.ndarray:
        """One action on the scenarios `cols`; returns 1 where it changed the link, else 0."""
        k, kind = a.link, a.link_kind
        s = state.status[k, cols]
        v = state.setting[k, cols]
        flow = state.flow[k, cols]
        new_s, new_v = s.copy(), v.copy()
        if a.status == OPEN:
            flag = s <= CLOSED
            if kind == LinkKind.PUMP:
                new_v = np.where(flag, 1.0, new_v)
                flow = self._reset_flow(k, flow, flag & (s == CLOSED))
            elif kind > LinkKind.PUMP and kind != LinkKind.GPV:
                new_v = np.where(flag, MISSING, new_v)
            new_s = np.where(flag, OPEN, new_s)
        elif a.status == CLOSED:
            flag = s > CLOSED
            if kind == LinkKind.PUMP:
                new_v = np.where(flag, 0.0, new_v)
            elif kind > LinkKind.PUMP and kind != LinkKind.GPV:
                new_v = np.where(flag, MISSING, new_v)
            new_s = np.where(flag, CLOSED, new_s)
        elif not math.isnan(a.setting):
            x = a.setting
            flag = np.isnan(v) | (np.abs(x - v) > TOL)
            new_v = np.where(flag, x, v)
            if kind == LinkKind.PCV:
                set_pcv_loss(self.sn, state, k, x, flag, cols)
            if kind == LinkKind.PUMP:
                reopen = flag & (x > 0) & (s <= CLOSED)
                flow = self._reset_flow(k, flow, reopen)
                new_s = np.where(reopen, OPEN, new_s)
                new_s = np.where(flag & (x == 0) & (s > CLOSED), CLOSED, new_s)
            elif kind == LinkKind.FCV:
                new_s = np.where(flag, ACTIVE, new_s)
            else:
                new_s = np.where(flag & np.isnan(v) & (s <= CLOSED), OPEN, new_s)
        else:                        # "STATUS IS ACTIVE": rules.c takes no action
            return np.zeros(len(cols), np.int64)
        state.status[k, cols] = new_s
        state.setting[k, cols] = new_v
        state.flow[k, cols] = flow
        return flag.astype(np.int64)

    def _reset_flow(self, k, flow, mask):
        q0 = pump_restart_flow(self.sn, k)
        return flow if q0 is None else np.where(mask, q0, flow)


def junction_outflow(state, i: int, cols) -> np.ndarray:
    """EPANET's NodeDemand of junction i: delivered demand, emitter, orifice leak and pipe leakage (cfs)."""
    q = state.demand_flow[i, cols] + state.emitter_flow[i, cols] + state.leak_flow[i, cols]
    pipe_leak = node_leakage(state)
    return q if pipe_leak is None else q + pipe_leak[i, cols]
