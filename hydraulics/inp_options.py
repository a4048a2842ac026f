"""[OPTIONS] and [TIMES]: EPANET's reading of them, and their canonical rewrite for WNTR.

``_Net`` also carries the node/link/pattern tables that the section pass fills in, since options
such as the pressure unit and the default pattern change how those sections are rewritten.
"""
from __future__ import annotations

from parktwin.hydraulics.inp_tokens import Line, _atoi, _Out, fmt, hms, hours, isnum, match, num
from parktwin.hydraulics.units_tables import (BAR_PER_PSI, DIFFUSIVITY_FT2S, FLOW_UNITS, KPA_PER_PSI, M_PER_FT,
                                              PSI_PER_FT, SI_FLOW_UNITS, VISCOSITY_FT2S)


class _Net:
    """EPANET's view of the options, times and object tables, collected in a first pass."""

    def __init__(self):
        self.flow, self.headloss, self.press, self.spgrav = 'GPM', 'H-W', None, 1.0
        self.viscos = self.diffus = self.tolerance = None
        self.opt = {'TRIALS': 200, 'ACCURACY': 0.001, 'CHECKFREQ': 2, 'MAXCHECK': 10,
                    'DAMPLIMIT': 0.0, 'DEMAND MULTIPLIER': 1.0, 'HEADERROR': 0.0,
                    'FLOWCHANGE': 0.0}
        self.tol = {}
        self.unbalanced, self.def_pat, self.model, self.backflow = -1, '1', 'DDA', True
        self.pmin, self.preq, self.pexp, self.emit_n = 0.0, 0.1, 0.5, 0.5
        self.quality = ['NONE']
        self.t = {'dur': 0, 'hstep': 3600, 'qstep': 0, 'pstep': 3600, 'pstart': 0,
                  'rstep': 3600, 'rstart': 0, 'rulestep': 0, 'tstart': 0}
        self.statistic = 'NONE'
        self.nodes, self.links = {}, {}          # id -> 'J'/'R'/'T', id -> type word
        self.patterns, self.curves = [], set()
        self.speed, self.setting, self.status = {}, {}, {}
        self.pcv = {}                            # PCV id -> its Kv-ratio curve id or None
        self.notes, self.dropped, self.varspeed = [], [], set()

    @property
    def us(self):
        return self.flow not in SI_FLOW_UNITS

    @property
    def kp(self):
        """Factor from the file's pressure unit to the unit WNTR assumes (psi or m), via EPANET's
        Ucf[PRESSURE] (input1.c initunits), which uses the specific gravity and PSIperFT=0.4333."""
        press = self.press or ('PSI' if self.us else 'METERS')
        pcf = {'PSI': PSI_PER_FT * self.spgrav, 'KPA': KPA_PER_PSI * PSI_PER_FT * self.spgrav,
               'BAR': BAR_PER_PSI * PSI_PER_FT * self.spgrav, 'METERS': M_PER_FT, 'FEET': 1.0}[press]
        return (PSI_PER_FT if self.us else M_PER_FT) / pcf

    def note(self, text):
        if text not in self.notes:
            self.notes.append(text)


def _option(net: _Net, ln: Line):
    """EPANET's optionchoice() then optionvalue() (input3.c)."""
    t, n = ln.toks, len(ln.toks) - 1
    k = t[0]
    if match(k, 'UNIT'):
        if n >= 1:
            if match(t[1], 'SI'):
                # WNTR 1.5 has no "SI" flow unit; EPANET reads it as LPS (input2.c getunitsoption)
                net.note('UNITS SI written as LPS')
            net.flow = next((w for w in FLOW_UNITS if match(t[1], w)), 'LPS')
        return
    if match(k, 'PRESSURE') and n >= 1 and not match(t[1], 'EXP'):
        net.press = next(w for w in ('PSI', 'KPA', 'METERS', 'BAR', 'FEET') if match(t[1], w))
        return
    if match(k, 'HEADL'):
        if n >= 1:
            net.headloss = next(w for w in ('H-W', 'D-W', 'C-M') if match(t[1], w))
        return
    if match(k, 'HYDR') or match(k, 'MAP') or match(k, 'VERI'):
        net.dropped.append((ln.no, 'option %s (files only, no effect on the model)' % k.upper()))
        return
    if match(k, 'QUAL'):
        if n >= 1:
            q = t[1]
            if match(q, 'NONE') or match(q, 'AGE'):
                net.quality = ['NONE' if match(q, 'NONE') else 'AGE']
            elif match(q, 'TRACE'):
                net.quality = ['TRACE', t[2]]
            elif match(q, 'CHEM'):
                if n >= 2 and not any(u in t[2].lower() for u in ('mg', 'ug')):
                    net.note('QUALITY CHEMICAL units word that WNTR rejects dropped')
                net.quality = ['Chemical', 'mg/L']
            else:
                # WNTR only accepts mg/ug units; EPANET keeps any label (quality only)
                net.quality = [q, 'ug/L' if n >= 2 and 'ug' in t[2].lower() else 'mg/L']
        return
    if match(k, 'UNBA'):
        if n >= 1:
            net.unbalanced = -1 if match(t[1], 'STOP') else (_atoi(t[2]) if n >= 2 else 0)
        return
    if match(k, 'PATT'):
        if n >= 1:
            net.def_pat = t[1]
        return
    if match(k, 'DEMAND') and n >= 2 and match(t[1], 'MODEL'):
        net.model = 'PDA' if match(t[2], 'PDA') else 'DDA'
        return
    if match(k, 'BACK') and n >= 2 and match(t[1], 'ALLOW'):
        net.backflow = match(t[2], 'YES')
        return
    if match(k, 'DEMAND') and n < 2:
        return
    if match(k, 'SEGM'):
        net.note('obsolete SEGMENTS option (ignored by EPANET, rejected by WNTR) dropped')
        return
    nv = 2 if any(match(k, w) for w in ('SPEC', 'EMIT', 'DEMAND', 'MINI', 'REQ', 'PRESSURE')) else 1
    if n < nv:
        return
    y = num(t[nv])
    if match(k, 'TOLER'):
        net.tolerance = y
    elif match(k, 'DIFF'):
        net.diffus = y
    elif match(k, 'DAMPLIMIT'):
        net.opt['DAMPLIMIT'] = y
    elif match(k, 'FLOWCHANGE'):
        net.opt['FLOWCHANGE'] = y
    elif match(k, 'HEADERROR'):
        net.opt['HEADERROR'] = y
    elif match(k, 'MINI'):
        net.preq = y + 0.1 if net.preq == 0.1 else net.preq
        net.pmin = y
    elif match(k, 'REQ'):
        net.preq = y
    elif match(k, 'PRESSURE'):
        net.pexp = y
    elif match(k, 'VISC'):
        net.viscos = y
    elif match(k, 'SPEC'):
        net.spgrav = y
    elif match(k, 'TRIAL'):
        net.opt['TRIALS'] = int(y)
    elif match(k, 'ACCU'):
        # EPANET clamps ACCURACY to [1e-5, 0.1] (input3.c optionvalue); WNTR keeps any value
        net.opt['ACCURACY'] = min(max(y, 1e-5), 0.1)
        if net.opt['ACCURACY'] != y:
            net.note('ACCURACY clamped to [1e-5, 0.1] as EPANET does')
    elif match(k, 'HTOL') or match(k, 'QTOL') or match(k, 'RQTOL'):
        net.tol[k.upper()] = y
        net.note('HTOL/QTOL/RQTOL option (rejected by WNTR) moved to InpExtras')
    elif match(k, 'CHECKFREQ'):
        net.opt['CHECKFREQ'] = int(y)
    elif match(k, 'MAXCHECK'):
        net.opt['MAXCHECK'] = int(y)
    elif match(k, 'EMIT'):
        net.emit_n = y
    elif match(k, 'DEMAND'):
        net.opt['DEMAND MULTIPLIER'] = y


def _time(net: _Net, ln: Line):
    """EPANET's timedata(): value (units) or clock time (AM/PM) -> whole seconds."""
    t, n = ln.toks, len(ln.toks) - 1
    if match(t[0], 'STAT'):
        net.statistic = next((w for w in ('NONE', 'AVERAGE', 'MINIMUM', 'MAXIMUM', 'RANGE')
                              if match(t[n], w)), 'NONE')
        return
    if isnum(t[n]):
        y = num(t[n])
    else:
        y = hours(t[n], '')
        if y < 0.0:
            y = hours(t[n - 1], t[n])
            if not (match(t[n], 'HOU') or (match(t[0], 'STAR') and match(t[n], 'AM'))):
                net.note('[TIMES] unit/AM-PM words (WNTR ignores them) converted to H:MM:SS')
    sec = int(3600.0 * y + 0.5)
    key = ('dur' if match(t[0], 'DURA') else 'hstep' if match(t[0], 'HYDR') else
           'qstep' if match(t[0], 'QUAL') else 'rulestep' if match(t[0], 'RULE') else
           None if match(t[0], 'MINI') else
           ('pstep' if match(t[1], 'TIME') else 'pstart') if match(t[0], 'PATT') else
           ('rstep' if match(t[1], 'TIME') else 'rstart') if match(t[0], 'REPO') else 'tstart')
    if key == 'tstart':
        sec %= 86400
    if key:
        net.t[key] = sec


def _adjust_times(t: dict):
    """EPANET's adjustdata() (input1.c): the time steps EPANET actually uses."""
    if t['pstep'] <= 0:
        t['pstep'] = 3600
    if t['rstep'] == 0:
        t['rstep'] = t['pstep']
    if t['hstep'] <= 0:
        t['hstep'] = 3600
    t['hstep'] = min(t['hstep'], t['pstep'], t['rstep'])
    if t['rstart'] > t['dur']:
        t['rstart'] = 0
    if t['qstep'] == 0:
        t['qstep'] = t['hstep'] // 10
    if t['rulestep'] == 0:
        t['rulestep'] = t['hstep'] // 10
    t['rulestep'] = min(t['rulestep'], t['hstep'])
    t['qstep'] = min(t['qstep'], t['hstep'])


def _emit_options(net: _Net, out: _Out):
    S = '[OPTIONS]'
    out.add(S, 0, 'UNITS', net.flow)
    out.add(S, 0, 'HEADLOSS', net.headloss)
    out.add(S, 0, 'SPECIFIC GRAVITY', fmt(net.spgrav))
    v = net.viscos
    # WNTR holds a relative viscosity; EPANET reads values <= 1e-3 as absolute (ft2/s or m2/s)
    rel = 1.0 if v is None else v if v > 1e-3 else v / (1.0 if net.us else M_PER_FT ** 2) / VISCOSITY_FT2S
    if v is not None and v <= 1e-3:
        net.note('absolute VISCOSITY converted to the relative value WNTR holds')
    out.add(S, 0, 'VISCOSITY', fmt(rel))
    d = net.diffus
    rel = 1.0 if d is None else d if d > 1e-4 else d / (1.0 if net.us else M_PER_FT ** 2) / DIFFUSIVITY_FT2S
    out.add(S, 0, 'DIFFUSIVITY', fmt(rel))
    if net.kp != 1.0:
        net.note('pressure values converted from %s (specific gravity %g) as EPANET does'
                 % (net.press or ('PSI' if net.us else 'METERS'), net.spgrav))
    if net.def_pat not in net.patterns and net.def_pat != '1':
        net.note('PATTERN option names a missing pattern: no default pattern, as in EPANET')
    for key in ('TRIALS', 'CHECKFREQ', 'MAXCHECK'):
        out.add(S, 0, key, int(net.opt[key]))
    for key in ('ACCURACY', 'DAMPLIMIT', 'DEMAND MULTIPLIER'):
        out.add(S, 0, key, fmt(net.opt[key]))
    # WNTR stores HEADERROR/FLOWCHANGE unconverted; the model is SI, so give them in m and m3/s
    from wntr.epanet.util import FlowUnits
    out.add(S, 0, 'HEADERROR', fmt(net.opt['HEADERROR'] * (M_PER_FT if net.us else 1.0)))
    out.add(S, 0, 'FLOWCHANGE', fmt(net.opt['FLOWCHANGE'] * FlowUnits[net.flow].factor))
    out.add(S, 0, 'UNBALANCED', 'STOP' if net.unbalanced < 0 else 'CONTINUE %d' % net.unbalanced)
    if net.def_pat in net.patterns:
        out.add(S, 0, 'PATTERN', net.def_pat)
    out.add(S, 0, 'DEMAND MODEL', net.model)
    # EPANET's PDA limits are in the file's pressure unit (with specific gravity) and REQUIRED
    # defaults to MINIMUM + 0.1; WNTR's own default (0.07 m) differs
    out.add(S, 0, 'MINIMUM PRESSURE', fmt(net.pmin * net.kp))
    out.add(S, 0, 'REQUIRED PRESSURE', fmt(net.preq * net.kp))
    out.add(S, 0, 'PRESSURE EXPONENT', fmt(net.pexp))
    out.add(S, 0, 'EMITTER EXPONENT', fmt(net.emit_n))
    out.add(S, 0, 'QUALITY', *net.quality)
    if net.tolerance is not None:
        out.add(S, 0, 'TOLERANCE', fmt(net.tolerance))


def _emit_times(net: _Net, out: _Out):
    t, S = net.t, '[TIMES]'
    _adjust_times(t)
    for key, name in (('dur', 'DURATION'), ('hstep', 'HYDRAULIC TIMESTEP'),
                      ('qstep', 'QUALITY TIMESTEP'), ('pstep', 'PATTERN TIMESTEP'),
                      ('pstart', 'PATTERN START'), ('rstep', 'REPORT TIMESTEP'),
                      ('rstart', 'REPORT START'), ('rulestep', 'RULE TIMESTEP')):
        # WNTR reads a bare number as hours and ignores unit words; H:MM:SS is unambiguous
        out.add(S, 0, name, hms(t[key]))
    h, rest = divmod(t['tstart'], 3600)
    # WNTR's clock parser mishandles 12 AM/PM and 24-hour times with AM; write h (0-11) AM/PM
    out.add(S, 0, 'START CLOCKTIME', '%s %s' % (hms(h % 12 * 3600 + rest), 'AM' if h < 12 else 'PM'))
    out.add(S, 0, 'STATISTIC', net.statistic)
