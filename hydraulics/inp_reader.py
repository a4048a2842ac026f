"""Read EPANET .inp files into WNTR models with EPANET 2.3's meaning.

``read_inp(path)`` first lets EPANET 2.3 (the ``owa-epanet`` toolkit) open the file: a file EPANET
rejects raises one :class:`InpError` naming the file, the line and EPANET's message.  The text is
then taken as EPANET's fgets() sees it (each line cut at its first NUL byte and at 1023 bytes),
rewritten by :mod:`hydraulics.inp_normalise` into the spelling WNTR 1.5 understands (WNTR
rejects or silently misreads clock times, unit words, SI units, optional fields, ranges, absolute
viscosities, non-default pressure units, ...) and WNTR reads that copy.  Display data that never
changes the hydraulics ([LABELS], [BACKDROP], [TAGS], invalid coordinates) stays out of the copy, so
WNTR's reader never refuses a file over it; valid coordinates are kept for the views.  Options that matter to
the hydraulics but have no place in a WNTR model are returned by ``read_inp_with_extras`` as an
:class:`InpExtras`.
"""
from __future__ import annotations

import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import wntr
from wntr.epanet.exceptions import EpanetException

from parktwin.hydraulics.inp_normalise import normalise
from parktwin.hydraulics.inp_tokens import NormaliseError, decode_inp, epanet_lines, section_lines, tokenise

__all__ = ['InpError', 'InpExtras', 'read_inp', 'read_inp_with_extras']


class InpError(ValueError):
    """An .inp file that cannot be read: names the file, the line (when known) and the problem."""

    def __init__(self, path, message: str, line: int | None = None, code: int | None = None):
        self.path, self.line, self.code, self.problem = str(path), line, code, message
        where = '%s, line %d' % (self.path, line) if line else self.path
        super().__init__('%s: %s' % (where, message))


@dataclass(frozen=True)
class InpExtras:
    """What the file says about the hydraulics that a WNTR model cannot hold."""

    flow_units: str                      # EPANET's flow units ("UNITS SI" reads as LPS)
    pressure_units: str                  # the file's pressure unit (values were converted)
    emitter_backflow: bool               # [OPTIONS] BACKFLOW ALLOWED (EPANET 2.3), default YES
    leakage: tuple                       # [LEAKAGE] (pipe, C1 leak area, C2 expansion) as written
    unbalanced: tuple                    # ('STOP', 0) or ('CONTINUE', extra trials)
    htol: float | None = None            # undocumented HTOL/QTOL/RQTOL options WNTR rejects
    qtol: float | None = None
    rqtol: float | None = None
    dropped: tuple = ()                  # (line, what) inert data left out (disabled controls, ...)
    workarounds: tuple = ()              # rewrites applied so WNTR reads EPANET's meaning
    # PCVs, which WNTR reads as TCVs: (id, percent open, initial status word, Kv-ratio curve id or None)
    pcv: tuple = ()
    encoding: str = 'utf-8'
    # IDs with blanks inside (quoted in the file): (the stand-in WNTR's model uses, the file's ID)
    aliases: tuple = ()


def read_inp(path) -> wntr.network.WaterNetworkModel:
    """The WNTR model (SI units) of an EPANET .inp file, as EPANET 2.3 reads it."""
    return read_inp_with_extras(path)[0]


def read_inp_with_extras(path) -> tuple[wntr.network.WaterNetworkModel, InpExtras]:
    """The WNTR model of an EPANET .inp file and the hydraulic options WNTR cannot hold."""
    path = Path(path)
    text, numbers, encoding, nul = _read_text(path)
    counts = _epanet_check(path, text, numbers, nul)
    try:
        norm = normalise(text, numbers)
    except NormaliseError as err:
        raise InpError(path, err.message, err.line) from err
    wn = _wntr_read(path, norm)
    _check_counts(path, wn, counts)
    tol = norm.tolerances
    notes = norm.workarounds + (('non-UTF-8 bytes decoded as Latin-1',)
                                if encoding != 'utf-8' else ()) + (
        ('NUL bytes: each line read up to its first NUL, as EPANET does',) if nul else ()) + (
        ('IDs with blanks given to WNTR with stand-ins, named as in the file in the compiled network',)
        if norm.aliases else ())
    extras = InpExtras(flow_units=norm.flow_units, pressure_units=norm.pressure_units,
                       emitter_backflow=norm.emitter_backflow, leakage=norm.leakage,
                       unbalanced=norm.unbalanced, htol=tol.get('HTOL'), qtol=tol.get('QTOL'),
                       rqtol=tol.get('RQTOL'), dropped=norm.dropped, workarounds=notes,
                       encoding=encoding, pcv=norm.pcv, aliases=norm.aliases)
    return wn, extras


def _read_text(path: Path) -> tuple[str, list[int], str, bool]:
    """The text as EPANET reads it (see epanet_lines), the file line of each of its lines, the
    encoding and whether the file holds NUL bytes."""
    if not path.is_file():
        raise InpError(path, 'file not found' if not path.exists() else 'not a regular file')
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InpError(path, 'cannot read file: %s' % err.strerror) from err
    if not data.strip():
        raise InpError(path, 'empty file')
    pieces, numbers = epanet_lines(data)
    text, encoding = decode_inp(b'\n'.join(pieces))
    return text, numbers, encoding, b'\x00' in data


def _epanet_check(path: Path, text: str, numbers: list[int], nul: bool) -> dict:
    """Open the file with EPANET 2.3; raise its errors with the offending line numbers."""
    from epanet import toolkit as en

    with tempfile.TemporaryDirectory(prefix='parktwin-inp-') as tmp:
        rpt = os.path.join(tmp, 'check.rpt')
        ph = en.createproject()
        failure, counts = None, {}
        try:
            en.open(ph, str(path), rpt, '')
            counts = {k: en.getcount(ph, getattr(en, k)) for k in
                      ('NODECOUNT', 'TANKCOUNT', 'LINKCOUNT', 'PATCOUNT')}
            counts['PUMPS'] = sum(en.getlinktype(ph, i) == en.PUMP
                                  for i in range(1, counts['LINKCOUNT'] + 1))
        except Exception as err:  # noqa: BLE001 - the SWIG toolkit raises bare Exception
            failure = str(err)
        finally:
            en.close(ph)            # flushes the report even when the open failed
            en.deleteproject(ph)
        report = Path(rpt).read_text(errors='replace') if os.path.exists(rpt) else ''
    if failure is None:
        if counts['NODECOUNT'] == 0:
            # EPANET 2.3 opens a file without nodes as an empty project; it is no network
            raise InpError(path, 'no nodes found: not an EPANET network file (missing '
                           '[JUNCTIONS]/[RESERVOIRS]/[TANKS] sections?)%s' % (
                               '; it holds NUL bytes: binary data or UTF-16 text?' if nul else ''))
        return counts
    problems, first_line = _report_errors(report, text, numbers)
    if not problems:
        problems = [failure]
    code = int(m.group(1)) if (m := re.search(r'Error (\d+)', problems[0])) else None
    more = ' (+%d more)' % (len(problems) - 5) if len(problems) > 5 else ''
    if text.startswith('\ufeff'):
        more += ' (the file starts with a UTF-8 byte-order mark, which EPANET reads as part of ' \
                'the first line, so that line and its section are skipped)'
    raise InpError(path, 'EPANET rejects the file: ' + '; '.join(problems[:5]) + more,
                   first_line, code)


def _report_errors(report: str, text: str, numbers: list[int]) -> tuple[list[str], int | None]:
    """EPANET's report has 'Error NNN: ... in [SECTION] section:' lines followed by an echo of
    the offending input line (never its number), or 'Error NNN: ... <ID>' for checks made after
    reading (tank levels, pump curves)."""
    lines = [ln.strip() for ln in report.splitlines()]
    src = list(section_lines(zip(numbers, text.split('\n')), headers=True))
    problems, first = [], None
    for i, ln in enumerate(lines):
        m = re.match(r'Error (\d+): (.*)$', ln)
        if not m or m.group(1) == '200':
            continue
        msg = m.group(2).strip()
        echoed = msg.endswith(':') or 'section contents ignored' in msg
        echo = lines[i + 1] if echoed and i + 1 < len(lines) else ''
        sect = re.search(r'in (\[[A-Z]+\]) section', msg)
        if echo:
            no = _find_line(src, sect.group(1) if sect else None, tokenise(echo + '\n')[0])
        else:
            no = _find_definition(src, msg.split()[-1] if msg.split() else '')
        first = first or no
        problems.append('Error %s: %s%s' % (m.group(1), msg.rstrip(':'),
                                             ' (line %d: %s)' % (no, echo) if no and echo else
                                             ' (line %d)' % no if no else ''))
    return problems, first


def _find_line(src: list, section: str | None, want: list[str]) -> int | None:
    """File line number of the line with these tokens, inside the named section if one is given."""
    return next((ln.no for sect, ln in src if ln.toks == want and (section is None or sect == section)), None)


_DEFINING = {'[JUNCTIONS]', '[RESERVOIRS]', '[TANKS]', '[PIPES]', '[PUMPS]', '[VALVES]', '[PATTERNS]', '[CURVES]'}


def _find_definition(src: list, ident: str) -> int | None:
    """Line defining a node, link, pattern or curve named in a post-read EPANET error."""
    return next((ln.no for sect, ln in src if sect in _DEFINING and ln.toks[0] == ident), None)


def _wntr_read(path: Path, norm) -> wntr.network.WaterNetworkModel:
    with tempfile.TemporaryDirectory(prefix='parktwin-inp-') as tmp:
        copy = os.path.join(tmp, 'normalised.inp')
        with open(copy, 'w', encoding='utf-8') as f:
            f.write(norm.text)
        try:
            with warnings.catch_warnings():
                # WNTR warns about its own unit handling (e.g. D-W roughness); values are converted
                warnings.simplefilter('ignore', UserWarning)
                wn = wntr.network.WaterNetworkModel(copy)
        except (EpanetException, ValueError, KeyError, IndexError, RuntimeError) as err:
            cause = err.__cause__ or err
            no = getattr(cause, 'line_num', None)
            line = norm.line_map[no - 1] if no and no - 1 < len(norm.line_map) else None
            raise InpError(path, 'WNTR cannot read the normalised file: %s' % cause,
                           line or None) from err
    wn.name = str(path)
    if norm.implicit_pattern_junctions and wn.options.hydraulic.pattern is not None:
        # WNTR makes a pattern "1" the default even when the file's PATTERN option names a
        # missing pattern; EPANET then has no default pattern (input1.c adjustdata)
        wn.options.hydraulic.pattern = None
        for name in norm.implicit_pattern_junctions:
            for demand in wn.get_node(name).demand_timeseries_list:
                demand.pattern_name = None
    return wn


def _check_counts(path: Path, wn, counts: dict):
    """A last guard: WNTR must see exactly the objects EPANET sees."""
    mine = {'NODECOUNT': wn.num_nodes, 'TANKCOUNT': wn.num_tanks + wn.num_reservoirs,
            'LINKCOUNT': wn.num_links, 'PUMPS': wn.num_pumps}
    bad = {k: (v, counts[k]) for k, v in mine.items() if counts.get(k) != v}
    if bad:
        raise InpError(path, 'WNTR model disagrees with EPANET (WNTR, EPANET): %s' % bad)
