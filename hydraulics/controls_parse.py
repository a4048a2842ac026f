"""EPANET 2.3 simple controls ([CONTROLS]) parsed from the .inp text, and `compile_controls`, which reads
both [CONTROLS] and [RULES] (the rules themselves: hydraulics.rules_parse) into what NetworkArrays stores.

Parsing follows input3.c controldata() and the unit conversions of input1.c convertunits(); the text is
read with hydraulics.inp_tokens, the one tokeniser of .inp files. A `SimpleControl` is SI, as WNTR writes
a file's values (psi -> m as 0.3048/0.4333, flow with WNTR's factor); hydraulics.controls turns it into
EPANET's internal units and evaluates it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parktwin.hydraulics.coefficients import ACTIVE, CLOSED, OPEN
from parktwin.hydraulics.control_units import (MISSING, SECONDS_PER_DAY, ControlError, FileUnits, file_units,
                                               setting_si_factor)
from parktwin.hydraulics.inp_tokens import decode_inp, epanet_lines, getfloat, hour, match, numbered_rows, section_lines
from parktwin.hydraulics.network import LinkKind, NodeKind
from parktwin.hydraulics.rules_parse import RuleParser


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
    u = file_units(inp_text, flow_units, specific_gravity)
    controls = []
    rp = RuleParser(node_index, link_index, link_kind, node_kind, u)
    for sect, ln in section_lines(numbered_rows(inp_text)):
        if sect == "[CONTROLS]":
            controls.append(_control(ln.toks, ln.no, ln.raw, node_index, link_index, link_kind, node_kind,
                                     elevation_m, u))
        elif sect == "[RULES]":
            rp.line(ln.toks, ln.no, ln.raw)
    return tuple(controls), rp.finish()


def read_inp_text(path) -> str:
    """The text as EPANET reads it: every line cut at its first NUL byte and at fgets' MAXLINE."""
    return decode_inp(b"\n".join(epanet_lines(Path(path).read_bytes())[0]))[0]


def compile_controls_from_file(path, node_index, link_index, link_kind, node_kind, elevation_m,
                               flow_units, specific_gravity):
    return compile_controls(read_inp_text(path), node_index, link_index, link_kind, node_kind, elevation_m,
                            flow_units, specific_gravity)
