"""EPANET 2.3 simple controls ([CONTROLS]), parsed from the .inp text and evaluated for a batch.

Parsing follows input3.c controldata() and the unit conversions of input1.c convertunits(); evaluation
follows hydraul.c controls() and controltimestep(). Junction-pressure controls act inside the solver
(hydsolver.c pswitch(), see hydraulics.status.pressure_switch); the rule engine is in hydraulics.rules.

Two forms of a control:
  * `SimpleControl` (what `compile_controls` returns; stored in NetworkArrays): SI, as WNTR writes a
    file's values (psi -> m as 0.3048/0.4333, flow with WNTR's factor);
  * `InternalControl` (what `to_internal` makes once per solver): EPANET's internal units (ft, cfs).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parktwin.hydraulics.coefficients import ACTIVE, CLOSED, OPEN, set_pcv_loss
from parktwin.hydraulics.inp_tokens import decode_inp, epanet_lines, findmatch, getfloat, hour, match  # noqa: F401  (rules.py imports them from here)
from parktwin.hydraulics.epanet_units import M_PER_FT, PSI_PER_FT, QZERO, US_FLOW_UNITS, SolverNetwork, tank_volume
from parktwin.hydraulics.network import LinkKind, NodeKind, PumpCurveKind

SECONDS_PER_DAY = 86400
KPA_PER_PSI = 6.895
BAR_PER_PSI = 0.068948
MISSING = math.nan
SECTIONS = ("[TITLE]", "[JUNCTIONS]", "[RESERVOIRS]", "[TANKS]", "[PIPES]", "[PUMPS]", "[VALVES]",
            "[CONTROLS]", "[RULES]", "[DEMANDS]", "[SOURCES]", "[EMITTERS]", "[PATTERNS]", "[CURVES]",
            "[QUALITY]", "[STATUS]", "[ROUGHNESS]", "[ENERGY]", "[REACTIONS]", "[MIXING]", "[REPORT]",
            "[TIMES]", "[OPTIONS]", "[COORDINATES]", "[VERTICES]", "[LABELS]", "[BACKDROP]", "[TAGS]",
            "[LEAKAGE]", "[END]")
PRESSURE_VALVES = (LinkKind.PRV, LinkKind.PSV, LinkKind.PBV)


class ControlError(ValueError):
    """A [CONTROLS] or [RULES] line EPANET would reject; `code` is EPANET's error code."""

    def __init__(self, code: int, line_no: int, line: str, what: str = ""):
        self.code, self.line_no, self.line = code, line_no, line
        super().__init__(f"EPANET error {code} at line {line_no}: {what + ': ' if what else ''}{line.strip()}")


# --------------------------------------------------------------------------- EPANET's text primitives
_QUOTE_END = re.compile(r'["\n\r]')
_SEP = re.compile(r"[ \t\n\r]")


def tokens(line: str) -> list[str]:
    """input2.c gettokens(): cut at ';', split on blanks/tabs, a token starting with '"' runs to the next '"'."""
    line = line.split(";", 1)[0]
    out, i, n = [], 0, len(line)
    while i < n and len(out) < 40:
        if line[i] in " \t\n\r":
            i += 1
            continue
        quoted = line[i] == '"'
        m = (_QUOTE_END if quoted else _SEP).search(line, i + quoted)
        j = m.start() if m else n
        out.append(line[i + quoted:j])
        i = j + quoted
    return out


def section_lines(inp_text: str):
    """(section, tokens, line_no, line) for every non-blank data line; section is e.g. '[RULES]' or None.
    Reading stops at [END], as EPANET's does."""
    sect = None
    for no, line in enumerate(inp_text.split("\n"), start=1):   # fgets: only \n ends a line
        tok = tokens(line)
        if not tok:
            continue
        if tok[0].startswith("["):
            k = findmatch(tok[0], SECTIONS)
            sect = SECTIONS[k] if k >= 0 else None
            if sect == "[END]":
                return
            continue
        yield sect, tok, no, line


# --------------------------------------------------------------------------- units
@dataclass(frozen=True)
class FileUnits:
    """How a file's values convert: `*_si` = SI per file unit (WNTR's convention), `*_ucf` = EPANET's
    Ucf (file unit per internal unit), used verbatim where EPANET compares in file units (rules)."""

    us: bool
    flow_si: float
    flow_ucf: float
    head_si: float
    head_ucf: float
    pressure_si: float
    pressure_ucf: float


def file_units(inp_text: str, flow_units: str, specific_gravity: float) -> FileUnits:
    from parktwin.hydraulics.compile import EPANET_FLOW_PER_CFS, wntr_flow_unit_factor
    fu = flow_units.upper()
    us = fu in US_FLOW_UNITS
    press = None
    for sect, tok, _, _ in section_lines(inp_text):
        if sect == "[OPTIONS]" and len(tok) >= 2 and match(tok[0], "PRESSURE") and not match(tok[1], "EXP"):
            press = next((w for w in ("PSI", "KPA", "METERS", "BAR", "FEET") if match(tok[1], w)), press)
    press = press or ("PSI" if us else "METERS")
    sg = specific_gravity
    pcf = {"PSI": PSI_PER_FT * sg, "METERS": M_PER_FT, "KPA": KPA_PER_PSI * PSI_PER_FT * sg,
           "BAR": BAR_PER_PSI * PSI_PER_FT * sg, "FEET": 1.0}[press]
    if (us and press == "PSI") or (not us and press == "METERS"):
        psi = M_PER_FT / PSI_PER_FT if us else 1.0
    else:   # internal ft -> the solver's SI pressure (sn.pressure_si_to_ft) convention
        psi = M_PER_FT * (sg if us else 1.0) / pcf
    return FileUnits(us=us, flow_si=wntr_flow_unit_factor(fu), flow_ucf=EPANET_FLOW_PER_CFS[fu],
                     head_si=M_PER_FT if us else 1.0, head_ucf=1.0 if us else M_PER_FT,
                     pressure_si=psi, pressure_ucf=pcf)


def setting_si_factor(kind: int, u: FileUnits) -> float:
    """SI per file unit of a link setting (input1.c: valves' pressure or flow; others unconverted)."""
    if kind in PRESSURE_VALVES:
        return u.pressure_si
    if kind == LinkKind.FCV:
        return u.flow_si
    return 1.0


def setting_to_internal(kind: int, value_si: float, sn: SolverNetwork) -> float:
    if kind in PRESSURE_VALVES:
        return value_si * sn.pressure_si_to_ft
    if kind == LinkKind.FCV:
        return value_si / sn.m3s_per_cfs
    return value_si


# --------------------------------------------------------------------------- simple controls
@dataclass(frozen=True)
class SimpleControl:
    """One [CONTROLS] line, SI. kind: low/high (IF NODE BELOW/ABOVE), timer (AT TIME), timeofday (AT CLOCKTIME).
    status: EPANET StatusType as controldata() sets it (CLOSED 2, OPEN 3, ACTIVE 4). setting_si: nan =
    MISSING; pump speed; PRV/PSV/PBV m; FCV m3/s; TCV loss coefficient; pipe: the number written (unused);
    GPV: nan (EPANET stores the GPV's own curve index, i.e. 'setting unchanged')."""

    link: int
    node: int
    kind: str
    threshold_head_m: float
    time_s: int
    status: int
    setting_si: float
    enabled: bool
    level_si: float = math.nan   # the level as written, SI: tank level (m) or junction pressure (m)


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


def _control(tok, no, line, node_index, link_index, link_kind, node_kind, elevation_m, u: FileUnits):
    n = len(tok)
    if n < 6:
        raise ControlError(201, no, line)
    enabled = True
    if match(tok[n - 1], "DISABLED"):
        enabled, n = False, n - 1
    k = link_index.get(tok[1])
    if k is None:
        raise ControlError(204, no, line, f"undefined link {tok[1]}")
    lt = int(link_kind[k])
    if lt == LinkKind.CVPIPE:
        raise ControlError(207, no, line, "cannot control a check valve")
    setting, status = MISSING, ACTIVE
    if match(tok[2], "OPEN"):
        status = OPEN
        setting = 1.0 if lt == LinkKind.PUMP else MISSING
    elif match(tok[2], "CLOSED"):
        status = CLOSED
        setting = 0.0 if lt == LinkKind.PUMP else MISSING
    elif lt == LinkKind.GPV:
        raise ControlError(207, no, line, "a GPV takes OPEN or CLOSED only")
    else:
        setting = getfloat(tok[2])
        if setting is None:
            raise ControlError(202, no, line)
    if lt in (LinkKind.PUMP, LinkKind.PIPE) and not math.isnan(setting):
        if setting < 0.0:
            raise ControlError(211, no, line)
        status = CLOSED if setting == 0.0 else OPEN
    node = -1
    if match(tok[4], "TIME"):
        kind = "timer"
    elif match(tok[4], "CLOCKTIME"):
        kind = "timeofday"
    else:
        if n < 8:
            raise ControlError(201, no, line)
        node = node_index.get(tok[5], -1)
        if node < 0:
            raise ControlError(203, no, line, f"undefined node {tok[5]}")
        if match(tok[6], "BELOW"):
            kind = "low"
        elif match(tok[6], "ABOVE"):
            kind = "high"
        else:
            raise ControlError(213, no, line)
    time_s, head, level_si = 0, math.nan, math.nan
    if kind in ("timer", "timeofday"):
        h = hour(tok[5], "") if n == 6 else hour(tok[5], tok[6]) if n >= 7 else 0.0
        if h < 0.0:
            raise ControlError(213, no, line)
        time_s = int(3600.0 * h)
        if kind == "timeofday":
            time_s %= SECONDS_PER_DAY
    else:
        level = getfloat(tok[7])
        if level is None:
            raise ControlError(202, no, line)
        junction = int(node_kind[node]) == NodeKind.JUNCTION
        level_si = level * (u.pressure_si if junction else u.head_si)
        head = float(elevation_m[node]) + level_si
    setting_si = setting * setting_si_factor(lt, u) if lt != LinkKind.GPV else MISSING
    return SimpleControl(link=k, node=node, kind=kind, threshold_head_m=head, time_s=time_s, status=status,
                         setting_si=setting_si, enabled=enabled, level_si=level_si)


def compile_controls(inp_text: str, node_index: dict[str, int], link_index: dict[str, int],
                     link_kind: np.ndarray, node_kind: np.ndarray, elevation_m: np.ndarray,
                     flow_units: str, specific_gravity: float):
    """Parse [CONTROLS] and [RULES] of an .inp text -> (SimpleControl tuple, Rule tuple), SI.

    elevation_m: node elevations (reservoirs: their head, as EPANET's Node.El). Raises ControlError where
    EPANET would refuse the file."""
    from parktwin.hydraulics.rules import RuleParser
    u = file_units(inp_text, flow_units, specific_gravity)
    controls = []
    rp = RuleParser(node_index, link_index, link_kind, node_kind, u)
    for sect, tok, no, line in section_lines(inp_text):
        if sect == "[CONTROLS]":
            controls.append(_control(tok, no, line, node_index, link_index, link_kind, node_kind, elevation_m, u))
        elif sect == "[RULES]":
            rp.line(tok, no, line)
    return tuple(controls), rp.finish()


def read_inp_text(path) -> str:
    """The text as EPANET reads it: every line cut at its first NUL byte and at fgets' MAXLINE."""
    return decode_inp(b"\n".join(epanet_lines(Path(path).read_bytes())[0]))[0]


def compile_controls_from_file(path, node_index, link_index, link_kind, node_kind, elevation_m,
                               flow_units, specific_gravity):
    return compile_controls(read_inp_text(path), node_index, link_index, link_kind, node_kind, elevation_m,
                            flow_units, specific_gravity)


# --------------------------------------------------------------------------- to internal units
def to_internal(items, sn: SolverNetwork) -> tuple:
    """SimpleControl -> InternalControl, Rule -> RuleInternal (once per solver); internal items pass."""
    from parktwin.hydraulics.rules import Rule, rule_to_internal
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
