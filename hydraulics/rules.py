"""EPANET 2.3 rule-based controls ([RULES]): parsing (rules.c ruledata/newpremise/newaction/newpriority)
and a batched engine (rules.c checkrules/evalpremises/updateactionlist/takeactions, hydraul.c ruletimestep).

Premise values are kept as written in the file together with EPANET's unit factor (`ucf`), because EPANET
compares a premise in file units with a tolerance of 0.001 file units; `value_si` is for reading only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from parktwin.hydraulics.coefficients import ACTIVE, CLOSED, OPEN, set_pcv_loss
from parktwin.hydraulics.controls import (
    MISSING, SECONDS_PER_DAY, ControlError, FileUnits, findmatch, getfloat, hour, pump_restart_flow,
    setting_si_factor, setting_to_internal,
)
from parktwin.hydraulics.epanet_units import TINY, SolverNetwork
from parktwin.hydraulics.network import LinkKind, NodeKind

RULE_WORDS = ("RULE", "IF", "AND", "OR", "THEN", "ELSE", "PRIO", "DISABLED")
VARIABLES = ("DEMAND", "HEAD", "GRADE", "LEVEL", "PRESSURE", "FLOW", "STATUS", "SETTING", "POWER", "TIME",
             "CLOCKTIME", "FILLTIME", "DRAINTIME")
_OBJECT_WORDS = ("SYSTEM", "Junc", "Reser", "Tank", "Pipe", "Pump", "Valve", "NODE", "LINK")
OBJECT_TYPES = ("SYSTEM", "JUNCTION", "RESERVOIR", "TANK", "PIPE", "PUMP", "VALVE", "NODE", "LINK")
_OPERATORS = ("=", "<>", "<=", ">=", "<", ">", "IS", "NOT", "BELOW", "ABOVE")
RELATIONS = ("=", "<>", "<=", ">=", "<", ">", "=", "<>", "<", ">")
_VALUES = ("XXXX", "OPEN", "CLOSED", "ACTIVE")
_STATUS_OF_VALUE = {1: OPEN, 2: CLOSED, 3: ACTIVE}
NO_STATUS = -1
TOL = 1.0e-3


@dataclass(frozen=True)
class Premise:
    logop: str           # "AND" (also the IF clause) or "OR"
    object: str          # EPANET's class: "NODE", "LINK" or "SYSTEM"
    object_type: str     # as written: JUNCTION/RESERVOIR/TANK/NODE/PIPE/PUMP/VALVE/LINK/SYSTEM
    index: int           # node or link index, -1 for SYSTEM
    variable: str        # DEMAND HEAD GRADE LEVEL PRESSURE FLOW STATUS SETTING TIME CLOCKTIME FILLTIME DRAINTIME
    relation: str        # "=", "<>", "<=", ">=", "<", ">" (IS/NOT/BELOW/ABOVE mapped as rules.c does)
    status: int          # OPEN 3 / CLOSED 2 / ACTIVE 4 for a status comparison, else -1
    value_si: float      # SI (m, m3/s, m of pressure, s for TIME/CLOCKTIME/FILLTIME/DRAINTIME); nan if status
    value_file: float    # the number as EPANET holds it (file units; seconds for times)
    ucf: float           # EPANET's Ucf: file units per internal unit for this variable (1 for times)


@dataclass(frozen=True)
class Action:
    link: int
    status: int          # OPEN 3 / CLOSED 2 / ACTIVE 4, or -1 for a setting action
    setting_si: float    # nan unless a setting action: pump speed, PRV/PSV/PBV m, FCV m3/s, TCV coefficient


@dataclass(frozen=True)
class Rule:
    label: str
    premises: tuple[Premise, ...]
    then_actions: tuple[Action, ...]
    else_actions: tuple[Action, ...]
    priority: float
    enabled: bool


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


class RuleParser:
    """rules.c ruledata(): fed one tokenised [RULES] line at a time."""

    def __init__(self, node_index, link_index, link_kind, node_kind, units: FileUnits):
        self.node_index, self.link_index = node_index, link_index
        self.link_kind, self.node_kind, self.u = link_kind, node_kind, units
        self.rules: list[dict] = []
        self.state = "PRIO"

    def line(self, tok, no, line):
        key = findmatch(tok[0], RULE_WORDS)
        st = self.state
        if key == 0:
            if len(tok) != 2:
                raise ControlError(201, no, line)
            self.rules.append(dict(label=tok[1], premises=[], then=[], els=[], priority=0.0, enabled=True))
            self.state = "RULE"
        elif key == 1:
            if st != "RULE":
                raise ControlError(221, no, line, "mis-placed clause")
            self.state = "IF"
            self._premise(tok, "AND", no, line)
        elif key in (2, 3):
            if st == "IF":
                self._premise(tok, RULE_WORDS[key], no, line)
            elif key == 2 and st in ("THEN", "ELSE"):
                self._action(tok, no, line)
            else:
                raise ControlError(221, no, line, "mis-placed clause")
        elif key in (4, 5):
            if st != ("IF" if key == 4 else "THEN"):
                raise ControlError(221, no, line, "mis-placed clause")
            self.state = RULE_WORDS[key]
            self._action(tok, no, line)
        elif key == 6:
            if st not in ("THEN", "ELSE"):
                raise ControlError(221, no, line, "mis-placed clause")
            self.state = "PRIO"
            x = getfloat(tok[1]) if len(tok) > 1 else None
            if x is None:
                raise ControlError(202 if len(tok) > 1 else 201, no, line)
            self.rules[-1]["priority"] = x
        elif key == 7:
            if st not in ("THEN", "ELSE", "PRIO"):
                raise ControlError(221, no, line, "mis-placed clause")
            self.rules[-1]["enabled"] = False
        else:
            raise ControlError(201, no, line, "unrecognised rule keyword")

    def _premise(self, tok, logop, no, line):
        n = len(tok)
        if n not in (5, 6):
            raise ControlError(201, no, line)
        obj = findmatch(tok[1], _OBJECT_WORDS)
        index = -1
        if obj == 0:
            v = findmatch(tok[2], VARIABLES)
            if v < 0 or VARIABLES[v] not in ("DEMAND", "TIME", "CLOCKTIME"):
                raise ControlError(201, no, line)
            cls = "SYSTEM"
        else:
            v = findmatch(tok[3], VARIABLES)
            if v < 0 or obj < 0:
                raise ControlError(201, no, line)
            var = VARIABLES[v]
            cls = "NODE" if obj in (1, 2, 3, 7) else "LINK"
            if cls == "NODE":
                index = self.node_index.get(tok[2], -1)
                if index < 0:
                    raise ControlError(203, no, line, f"undefined node {tok[2]}")
                junction = int(self.node_kind[index]) == NodeKind.JUNCTION
                if var in ("FILLTIME", "DRAINTIME"):
                    if junction:
                        raise ControlError(201, no, line)
                elif var not in ("DEMAND", "HEAD", "GRADE", "LEVEL", "PRESSURE"):
                    raise ControlError(201, no, line)
            else:
                index = self.link_index.get(tok[2], -1)
                if index < 0:
                    raise ControlError(204, no, line, f"undefined link {tok[2]}")
                if var not in ("FLOW", "STATUS", "SETTING"):
                    raise ControlError(201, no, line)
        var = VARIABLES[v]
        r = findmatch(tok[3 if cls == "SYSTEM" else 4], _OPERATORS)
        if r < 0:
            raise ControlError(201, no, line)
        status, x = NO_STATUS, MISSING
        if var in ("TIME", "CLOCKTIME"):
            x = hour(tok[4], tok[5] if n == 6 else "") * 3600.0
            if x < 0.0:
                raise ControlError(202, no, line)
        elif findmatch(tok[n - 1], _VALUES) > 0:
            status = _STATUS_OF_VALUE[findmatch(tok[n - 1], _VALUES)]
        else:
            x = getfloat(tok[n - 1])
            if x is None:
                raise ControlError(202, no, line)
            if var in ("FILLTIME", "DRAINTIME"):
                x *= 3600.0
        si, ucf = self._factors(var, index)
        self.rules[-1]["premises"].append(Premise(
            logop=logop, object=cls, object_type=OBJECT_TYPES[obj], index=index, variable=var,
            relation=RELATIONS[r], status=status, value_si=x * si, value_file=x, ucf=ucf))

    def _factors(self, var, index):
        """(SI per file unit, EPANET Ucf) of a premise variable (rules.c checkvalue)."""
        u = self.u
        if var in ("DEMAND", "FLOW"):
            return u.flow_si, u.flow_ucf
        if var in ("HEAD", "GRADE", "LEVEL"):
            return u.head_si, u.head_ucf
        if var == "PRESSURE":
            return u.pressure_si, u.pressure_ucf
        if var == "SETTING":
            kind = int(self.link_kind[index])
            if kind in (LinkKind.PRV, LinkKind.PSV, LinkKind.PBV):
                return u.pressure_si, u.pressure_ucf
            if kind == LinkKind.FCV:
                return u.flow_si, u.flow_ucf
        return 1.0, 1.0

    def _action(self, tok, no, line):
        if len(tok) != 6:
            raise ControlError(201, no, line)
        k = self.link_index.get(tok[2], -1)
        if k < 0:
            raise ControlError(204, no, line, f"undefined link {tok[2]}")
        kind = int(self.link_kind[k])
        if kind == LinkKind.CVPIPE:
            raise ControlError(207, no, line, "cannot control a check valve")
        status, x = NO_STATUS, MISSING
        w = findmatch(tok[5], _VALUES)
        if w > 0:
            status = _STATUS_OF_VALUE[w]
        else:
            x = getfloat(tok[5])
            if x is None or x < 0.0:
                raise ControlError(202, no, line)
        if not math.isnan(x) and kind == LinkKind.GPV:
            raise ControlError(202, no, line, "cannot change a GPV's setting")
        if not math.isnan(x) and kind == LinkKind.PIPE:
            status, x = (CLOSED if x == 0.0 else OPEN), MISSING
        a = Action(link=k, status=status, setting_si=x * setting_si_factor(kind, self.u))
        self.rules[-1]["then" if self.state == "THEN" else "els"].append(a)

    def finish(self) -> tuple[Rule, ...]:
        return tuple(Rule(label=r["label"], premises=tuple(r["premises"]), then_actions=tuple(r["then"]),
                          else_actions=tuple(r["els"]), priority=r["priority"], enabled=r["enabled"])
                     for r in self.rules)


def rule_to_internal(rule: Rule, sn: SolverNetwork) -> RuleInternal:
    def conv(a: Action):
        kind = int(sn.kind[a.link])
        return ActionInternal(link=a.link, link_kind=kind, status=a.status,
                              setting=setting_to_internal(kind, a.setting_si, sn))
    return RuleInternal(label=rule.label, premises=rule.premises,
                        then_actions=tuple(conv(a) for a in rule.then_actions),
                        else_actions=tuple(conv(a) for a in rule.else_actions),
                        priority=rule.priority, enabled=rule.enabled)


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
        from parktwin.hydraulics.controls import to_internal
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
    from parktwin.hydraulics.leakage import node_leakage
    q = state.demand_flow[i, cols] + state.emitter_flow[i, cols] + state.leak_flow[i, cols]
    pipe_leak = node_leakage(state)
    return q if pipe_leak is None else q + pipe_leak[i, cols]
