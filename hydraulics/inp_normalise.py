"""Rewrite EPANET 2.3 .inp text into an equivalent text that WNTR 1.5 reads the way EPANET does.

EPANET (input2.c/input3.c) matches keywords by prefix and case-insensitively, accepts optional
fields with defaults, clock times, unit words and ranges that WNTR's reader rejects or silently
misreads.  ``normalise`` tokenises the file the way EPANET does (``hydraulics.inp_tokens``),
interprets every line with EPANET's rules and writes it back in the one canonical spelling WNTR
understands.  Only files that
EPANET itself has already opened are normalised, so the input is known to be well formed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from parktwin.hydraulics.inp_options import _emit_options, _emit_times, _Net
from parktwin.hydraulics.inp_sections import _collect, _emit_network
from parktwin.hydraulics.inp_tokens import _Out, split_sections

__all__ = ['Normalised', 'normalise']


@dataclass
class Normalised:
    text: str
    line_map: list[int]                      # output line index -> original line number (0: none)
    flow_units: str
    pressure_units: str
    emitter_backflow: bool = True
    demand_model: str = 'DDA'
    unbalanced: tuple[str, int] = ('STOP', 0)
    tolerances: dict = field(default_factory=dict)
    leakage: tuple = ()
    dropped: tuple = ()
    workarounds: tuple = ()
    implicit_pattern_junctions: frozenset = frozenset()
    pcv: tuple = ()                          # (id, percent open, 'ACTIVE'/'OPEN'/'CLOSED', curve id or None)
    aliases: tuple = ()                      # (stand-in, original ID) for IDs with blanks (quoted in the file)


def normalise(text: str, line_numbers: list[int] | None = None) -> Normalised:
    """EPANET-accepted .inp text -> text WNTR 1.5 reads with EPANET's meaning.

    ``line_numbers``: the file line of each line of ``text`` when they differ (see epanet_lines)."""
    aliases: dict[str, str] = {}
    lines = split_sections(text, line_numbers, aliases)
    net = _Net()
    _collect(net, lines)
    out = _Out()
    _emit_options(net, out)
    _emit_times(net, out)
    implicit, leakage = _emit_network(net, lines, out)
    body, nos = out.render()
    return Normalised(
        text=body, line_map=nos, flow_units=net.flow,
        pressure_units=net.press or ('PSI' if net.us else 'METERS'),
        emitter_backflow=net.backflow, demand_model=net.model,
        unbalanced=('STOP', 0) if net.unbalanced < 0 else ('CONTINUE', net.unbalanced),
        tolerances=dict(net.tol), leakage=leakage, dropped=tuple(net.dropped),
        workarounds=tuple(net.notes), implicit_pattern_junctions=frozenset(implicit),
        pcv=tuple((link, float(net.setting[link]), net.status.get(link, 'ACTIVE'), curve)
                  for link, curve in net.pcv.items()),
        aliases=tuple((alias, original) for original, alias in aliases.items()))
