"""What the [CONTROLS] and [RULES] parsers share: the error they raise, how a file's values convert to SI
(`FileUnits`, from the file's flow and pressure units as input1.c initunits() sets them) and how a link
setting converts to and from EPANET's internal units.

Below both parsers (hydraulics.controls_parse, hydraulics.rules_parse) and the engines (hydraulics.controls,
hydraulics.rules), so that none of them imports another for these.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from parktwin.hydraulics.epanet_units import SolverNetwork
from parktwin.hydraulics.inp_tokens import match, numbered_rows, section_lines
from parktwin.hydraulics.network import LinkKind
from parktwin.hydraulics.units_tables import (BAR_PER_PSI, EPANET_FLOW_PER_CFS, KPA_PER_PSI, M_PER_FT, PSI_PER_FT,
                                              US_FLOW_UNITS, wntr_flow_unit_factor)

SECONDS_PER_DAY = 86400
MISSING = math.nan               # EPANET's MISSING setting ("unchanged"), as nan
PRESSURE_VALVES = (LinkKind.PRV, LinkKind.PSV, LinkKind.PBV)


class ControlError(ValueError):
    """A [CONTROLS] or [RULES] line EPANET would reject; `code` is EPANET's error code."""

    def __init__(self, code: int, line_no: int, line: str, what: str = ""):
        self.code, self.line_no, self.line = code, line_no, line
        super().__init__(f"EPANET error {code} at line {line_no}: {what + ': ' if what else ''}{line.strip()}")


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
    fu = flow_units.upper()
    us = fu in US_FLOW_UNITS
    press = None
    for sect, ln in section_lines(numbered_rows(inp_text)):
        tok = ln.toks
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
