"""EPANET 2.3 rule-based controls ([RULES]) parsed from tokenised .inp lines: rules.c ruledata(), newpremise(),
newaction() and newpriority(). The batched engine that evaluates them is hydraulics.rules.

Premise values are kept as written in the file together with EPANET's unit factor (`ucf`), because EPANET
compares a premise in file units with a tolerance of 0.001 file units; `value_si` is for reading only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from parktwin.hydraulics.coefficients import ACTIVE, CLOSED, OPEN
from parktwin.hydraulics.control_units import MISSING, ControlError, FileUnits, setting_si_factor
from parktwin.hydraulics.inp_tokens import findmatch, getfloat, hour
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
