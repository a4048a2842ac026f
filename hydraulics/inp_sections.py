"""The network, [CONTROLS] and [RULES] sections: EPANET's first pass over every section, which
builds the node/link tables, then the rewrite of each network line for WNTR."""
from __future__ import annotations

import math

from parktwin.hydraulics.inp_options import _Net, _option, _time
from parktwin.hydraulics.inp_tokens import (PRESSURE_VALVES, VALVE_TYPES, Line, NormaliseError, _Out, _range, findmatch,
                                            fmt, hms, hours, isnum, match, num, numtok)
from parktwin.hydraulics.units_tables import M_PER_FT, PSI_PER_FT


def _check_id(ln: Line, tok: str):
    if not tok or any(ch.isspace() for ch in tok):
        raise NormaliseError(ln.no, 'ID %r contains blanks, which WNTR cannot represent' % tok)


def _collect(net: _Net, lines: list[tuple[str, Line]]):
    """First pass: options, times and the node/link/pattern/curve tables EPANET builds."""
    for sect, ln in lines:
        t = ln.toks
        if sect == '[OPTIONS]':
            _option(net, ln)
        elif sect == '[TIMES]':
            _time(net, ln)
        elif sect == '[JUNCTIONS]':
            _check_id(ln, t[0])
            net.nodes[t[0]] = 'J'
        elif sect in ('[RESERVOIRS]', '[TANKS]'):
            _check_id(ln, t[0])
            # EPANET's tankdata(): <= 3 fields or a zero diameter make a reservoir, whatever the section
            net.nodes[t[0]] = 'R' if len(t) <= 3 or num(t[5]) == 0.0 else 'T'
            if sect == '[TANKS]' and net.nodes[t[0]] == 'R':
                net.note('[TANKS] entry without diameter written as a reservoir')
        elif sect == '[PIPES]' and len(t) >= 3:
            _check_id(ln, t[0])
            cv = any(match(x, 'CV') for x in t[6:8])
            net.links[t[0]] = 'CV' if cv else 'PIPE'
        elif sect == '[PUMPS]' and len(t) >= 3:
            _check_id(ln, t[0])
            net.links[t[0]] = 'PUMP'
            pairs = dict(_pump_pairs(t))
            net.speed[t[0]] = num(pairs['SPEED']) if 'SPEED' in pairs else 1.0
        elif sect == '[VALVES]' and len(t) >= 5:
            _check_id(ln, t[0])
            vt = VALVE_TYPES[findmatch(t[4], VALVE_TYPES)]
            if vt == 'GPV' and len(t) < 6:
                raise NormaliseError(ln.no, 'GPV %s has no head-loss curve' % t[0])
            net.links[t[0]] = vt
            net.setting[t[0]] = t[5] if vt == 'GPV' else (num(t[5]) if len(t) > 5 else 0.0)
            if vt == 'PCV':
                # EPANET's valvedata() caps the percent open at 100 only when a curve follows
                net.pcv[t[0]] = t[7] if len(t) > 7 else None
                if len(t) > 7:
                    net.setting[t[0]] = min(net.setting[t[0]], 100.0)
        elif sect == '[PATTERNS]' and t[0] not in net.patterns:
            _check_id(ln, t[0])
            net.patterns.append(t[0])
        elif sect == '[CURVES]':
            _check_id(ln, t[0])
            net.curves.add(t[0])
    for sect, ln in lines:
        if sect == '[STATUS]':
            _status(net, ln)
    net.varspeed = {p for p, v in net.speed.items() if v != 1.0}
    for sect, ln in lines:
        t = ln.toks
        link, value = (t[1], t[2]) if sect == '[CONTROLS]' else (t[2], t[-1]) if (
            sect == '[RULES]' and len(t) == 6 and findmatch(t[0], ('THEN', 'ELSE', 'AND')) >= 0
            and t[2] in net.links) else (None, None)
        if net.links.get(link) == 'PUMP' and isnum(value) and num(value) not in (0.0, 1.0):
            net.varspeed.add(link)


def _pump_pairs(t):
    """EPANET's pumpdata() keyword/value pairs (a trailing unpaired keyword is ignored)."""
    for m in range(4, len(t), 2):
        kw = next(w for w in ('POWER', 'HEAD', 'PATT', 'SPEE') if match(t[m - 1], w))
        yield {'PATT': 'PATTERN', 'SPEE': 'SPEED'}.get(kw, kw), t[m]
def _status(net: _Net, ln: Line):
    """EPANET's statusdata()/changestatus(): the initial status and setting each link ends with."""
    t = ln.toks
    n = len(t) - 1
    word = 'OPEN' if match(t[n], 'OPEN') else 'CLOSED' if match(t[n], 'CLOSED') else None
    y = None if word else num(t[n])
    targets = [t[0]] if n == 1 else _range(list(net.links), t[0], t[1])
    if n > 1:
        net.note('[STATUS] link-ID range expanded')
    for link in targets:
        kind = net.links[link]
        if kind == 'PUMP' and (word != 'CLOSED'):
            net.note('[STATUS] on a pump folded into its SPEED (EPANET sets speed 1 for OPEN)')
        if kind in ('PIPE', 'GPV'):
            if word:
                net.status[link] = word
        elif kind == 'PUMP':
            if word == 'OPEN' or (word is None and y > 0.0):
                # EPANET sets the pump speed to the numeric status, or 1.0 for OPEN
                net.speed[link] = 1.0 if word else y
                net.status[link] = 'OPEN'
            else:
                net.status[link] = 'CLOSED'
        elif kind != 'CV':
            if word is None:
                net.setting[link] = y
            net.status[link] = word or 'ACTIVE'


def _emit_network(net: _Net, lines, out: _Out):
    defpat = net.def_pat if net.def_pat in net.patterns else None
    implicit, leakage = set(), []
    kp = net.kp
    for sect, ln in lines:
        t, no = ln.toks, ln.no
        if sect == '[TITLE]':
            out.add(sect, no, ln.raw.strip())
        elif sect == '[PATTERNS]':
            out.add(sect, no, t[0], *map(numtok, t[1:]))
        elif sect == '[CURVES]':
            # EPANET 2.3 allows a 4th (curve type) field that WNTR does not expect
            out.add(sect, no, t[0], *map(numtok, t[1:3]))
        elif sect == '[JUNCTIONS]':
            elev = t[1] if len(t) > 1 else '0'
            dem = t[2] if len(t) > 2 else '0'
            pat = t[3] if len(t) > 3 else defpat
            if pat is None and defpat is None:
                implicit.add(t[0])
            # EPANET allows elevation/demand to be omitted; WNTR requires them
            if len(t) < 2:
                net.note('[JUNCTIONS] entry without elevation given EPANET default 0')
            out.add(sect, no, t[0], numtok(elev), numtok(dem), *([pat] if pat else []))
        elif sect in ('[RESERVOIRS]', '[TANKS]'):
            if net.nodes[t[0]] == 'R':
                # a [TANKS] entry without a diameter is a reservoir for EPANET
                pat = t[2:3] if len(t) == 3 else []
                out.add('[RESERVOIRS]', no, t[0], numtok(t[1]), *pat)
            else:
                minvol = t[6] if len(t) > 6 else '0'
                curve = t[7] if len(t) > 7 and t[7] and not t[7].startswith('*') else '*'
                over = ['YES'] if len(t) > 8 and match(t[8], 'YES') else []
                out.add('[TANKS]', no, t[0], *map(numtok, t[1:6]), numtok(minvol), curve, *over)
        elif sect == '[PIPES]' and len(t) >= 3:
            _emit_pipe(net, ln, out)
        elif sect == '[PUMPS]' and len(t) >= 3:
            pairs = dict(_pump_pairs(t))
            kw = ['HEAD', pairs['HEAD']] if 'HEAD' in pairs else ['POWER', numtok(pairs['POWER'])]
            # EPANET's validatepumps() prefers a head curve when both HEAD and POWER are given
            extra = ['SPEED', fmt(net.speed[t[0]])]
            if 'PATTERN' in pairs:
                extra += ['PATTERN', pairs['PATTERN']]
            out.add(sect, no, *t[:3], *kw, *extra)
        elif sect == '[VALVES]' and len(t) >= 5:
            vt = net.links[t[0]]
            s = net.setting[t[0]]
            if vt in PRESSURE_VALVES:
                s = fmt(s * kp)
            elif vt != 'GPV':
                s = fmt(s)
            if len(t) < 6:
                net.note('[VALVES] entry without setting given EPANET default 0')
            if vt == 'PCV':
                # WNTR 1.5 has no PCV: a TCV has the same topology, diameter and minor loss; the
                # compiler restores the type, percent setting and curve from InpExtras.pcv
                net.note('PCV written as a TCV; its setting and curve are carried beside the model')
                vt = 'TCV'
            out.add(sect, no, *t[:3], numtok(t[3]), vt, s, numtok(t[6]) if len(t) > 6 else '0')
        elif sect == '[DEMANDS]':
            if net.nodes.get(t[0]) != 'J':
                net.dropped.append((no, 'demand on non-junction %s (EPANET ignores it)' % t[0]))
                continue
            pat = t[2] if len(t) > 2 else defpat
            out.add(sect, no, t[0], numtok(t[1]), *([pat] if pat else []),
                    *([';' + ln.comment] if ln.comment.strip() else []))
        elif sect == '[EMITTERS]':
            if net.nodes.get(t[0]) != 'J':
                continue
            ke = num(t[1])
            if net.us and (net.spgrav != 1.0 or net.emit_n != 0.5):
                net.note('US emitter coefficients rescaled for specific gravity/exponent')
            if net.us:
                # EPANET converts psi with the specific gravity and the file's exponent; WNTR
                # assumes SG 1 and exponent 0.5 (wntr.epanet.util to_si EmitterCoeff)
                ke = ke * (PSI_PER_FT * net.spgrav / M_PER_FT) ** net.emit_n \
                    / math.sqrt(PSI_PER_FT / M_PER_FT)
            out.add(sect, no, t[0], fmt(ke))
        elif sect == '[LEAKAGE]':
            if net.links.get(t[0]) in ('PIPE', 'CV'):
                leakage.append((t[0], num(t[1]), num(t[2])))
        elif sect == '[CONTROLS]':
            _emit_control(net, ln, out)
        elif sect == '[ENERGY]':
            _emit_energy(net, ln, out)
        elif sect in ('[QUALITY]', '[SOURCES]', '[REACTIONS]', '[MIXING]'):
            _emit_quality(net, sect, ln, out)
        elif sect in ('[COORDINATES]', '[VERTICES]'):
            # EPANET ignores invalid coordinates (unknown element, too few or bad numbers); WNTR
            # raises.  Numbers are rewritten because C's strtod reads spellings Python's float()
            # refuses (hex floats).
            known = net.nodes if sect == '[COORDINATES]' else net.links
            xy = (num(t[1]), num(t[2])) if len(t) >= 3 and isnum(t[1]) and isnum(t[2]) else None
            if t[0] in known and xy:
                out.add(sect, no, t[0], fmt(xy[0]), fmt(xy[1]))
            else:
                net.note('invalid %s line skipped as EPANET does' % sect)
        elif sect in ('[LABELS]', '[BACKDROP]', '[TAGS]'):
            # Display data that never changes the hydraulics: EPANET ignores [LABELS] and
            # [BACKDROP] whatever they hold and keeps tags as free text; WNTR's reader refuses
            # some of what EPANET accepts (backdrop UNITS words, odd tag lines), so none of it
            # goes to WNTR.
            continue
        elif sect in ('[REPORT]', '[ROUGHNESS]'):
            net.note('%s section dropped (reporting only / ignored by EPANET)' % sect)
    for link, word in net.status.items():
        if word != 'ACTIVE':
            out.add('[STATUS]', 0, link, word)
    for link, kind in net.links.items():
        # EPANET opens a GPV by default; WNTR would start it ACTIVE
        if kind == 'GPV' and link not in net.status:
            out.add('[STATUS]', 0, link, 'OPEN')
    _emit_rules(net, [ln for sect, ln in lines if sect == '[RULES]'], out)
    return implicit, tuple(leakage)


def _emit_pipe(net: _Net, ln: Line, out: _Out):
    """EPANET's pipedata(): defaults for missing fields; status may replace the minor loss."""
    t = ln.toks
    length = t[3] if len(t) > 3 else ('100' if not net.us else '330')
    diam = t[4] if len(t) > 4 else ('254' if not net.us else '10')
    rough = t[5] if len(t) > 5 else {'H-W': '130', 'D-W': '0.0005', 'C-M': '0.01'}[net.headloss]
    minor, status = '0', 'OPEN'
    if len(t) < 6 or (len(t) == 7 and not isnum(t[6])):
        net.note('[PIPES] entry with omitted fields completed with EPANET defaults')
    for tok in t[6:8]:
        if match(tok, 'CV'):
            status = 'CV'
        elif match(tok, 'CLOSED'):
            status = 'CLOSED'
        elif match(tok, 'OPEN'):
            status = 'OPEN'
        else:
            minor = tok
    if net.status.get(t[0]) in ('OPEN', 'CLOSED'):
        status = net.status.pop(t[0])
    out.add('[PIPES]', ln.no, *t[:3], *map(numtok, (length, diam, rough, minor)), status)


def _setting_words(net: _Net, link: str, tok: str, ln: Line) -> list[str]:
    """A control/rule target value in EPANET's meaning, as one or more WNTR-readable values.

    EPANET: a numeric pipe setting means open (>0) or closed; a numeric pump setting is a speed
    that also opens (>0) or closes (0) the pump; OPEN gives a pump speed 1.0."""
    kind = net.links[link]
    word = next((w for w in ('OPEN', 'CLOSED', 'ACTIVE') if match(tok, w)), None)
    if kind == 'PUMP':
        if word == 'OPEN' or (word is None and num(tok) == 1.0):
            # EPANET's setlinkstatus() gives an opened pump speed 1.0; WNTR keeps the last speed
            return ['OPEN'] + (['1.0'] if link in net.varspeed else [])
        if word or num(tok) == 0.0:
            return [word or 'CLOSED']
        return ['OPEN', fmt(num(tok))]
    if word:
        return [word]
    if kind in ('PIPE', 'CV'):
        return ['OPEN' if num(tok) > 0.0 else 'CLOSED']
    return [fmt(num(tok) * (net.kp if kind in PRESSURE_VALVES else 1.0))]


def _emit_control(net: _Net, ln: Line, out: _Out):
    """EPANET's controldata(): one simple control in canonical WNTR form."""
    t = list(ln.toks)
    if match(t[-1], 'DISABLED'):
        # WNTR has no disabled controls; EPANET never applies one, so leaving it out is exact
        net.dropped.append((ln.no, 'disabled control'))
        return
    link = t[1]
    if match(t[4], 'TIME') or match(t[4], 'CLOCKTIME'):
        clock = match(t[4], 'CLOCKTIME')
        h = hours(t[5], t[6] if len(t) >= 7 else '')
        if len(t) >= 7:
            net.note('[CONTROLS] time with units/AM-PM written as H:MM:SS')
        sec = int(3600.0 * h)
        cond = ['AT', 'CLOCKTIME' if clock else 'TIME', hms(sec % 86400 if clock else sec)]
    else:
        node = t[5]
        kind = net.nodes[node]
        if kind == 'R':
            raise NormaliseError(ln.no, 'control on reservoir %s head: WNTR only supports '
                                 'junction pressure and tank level controls' % node)
        level = num(t[7]) * (net.kp if kind == 'J' else 1.0)
        cond = ['IF', 'NODE', node, 'BELOW' if match(t[6], 'BELOW') else 'ABOVE', fmt(level)]
    values = _setting_words(net, link, t[2], ln)
    if len(values) > 1 or (isnum(t[2]) and net.links[link] in ('PUMP', 'PIPE')):
        net.note('[CONTROLS] numeric pump/pipe setting written as WNTR status/speed actions')
    for value in values:
        out.add('[CONTROLS]', ln.no, 'LINK', link, value, *cond)


def _emit_energy(net: _Net, ln: Line, out: _Out):
    t, n = ln.toks, len(ln.toks)
    if match(t[0], 'DEMAN'):
        out.add('[ENERGY]', ln.no, 'DEMAND CHARGE', t[2])
        return
    head = ['GLOBAL'] if match(t[0], 'GLOB') else ['PUMP', t[1]]
    key = next(w for w in ('PRICE', 'PATT', 'EFFI') if match(t[n - 2], w))
    out.add('[ENERGY]', ln.no, *head, {'PATT': 'PATTERN', 'EFFI': 'EFFIC'}.get(key, key), t[n - 1])


def _emit_quality(net: _Net, sect: str, ln: Line, out: _Out):
    """Water-quality data never changes the hydraulics; keep what WNTR can parse."""
    t, n = ln.toks, len(ln.toks)
    if sect == '[QUALITY]' and n >= 2:
        nodes = [t[0]] if n == 2 else _range(list(net.nodes), t[0], t[1])
        for node in nodes:
            out.add(sect, ln.no, node, t[n - 1 if n == 2 else 2])
    elif sect == '[SOURCES]' and n >= 2:
        k = findmatch(t[1], ('CONCEN', 'MASS', 'SETPOINT', 'FLOWPACED'))
        kind = ('CONCEN', 'MASS', 'SETPOINT', 'FLOWPACED')[k] if k >= 0 else 'CONCEN'
        i = 2 if k >= 0 else 1
        pat = t[i + 1:i + 2] if n > i + 1 and t[i + 1] != '*' else []
        out.add(sect, ln.no, t[0], kind, t[i], *pat)
    elif sect == '[REACTIONS]' and n >= 3:
        k0 = t[0]
        if match(k0, 'ORDER') or match(k0, 'GLOB'):
            which = next(w for w in ('BULK', 'WALL', 'TANK') if match(t[1], w))
            out.add(sect, ln.no, 'ORDER' if match(k0, 'ORDER') else 'GLOBAL', which, t[n - 1])
        elif match(k0, 'ROUG') or match(k0, 'LIMIT'):
            out.add(sect, ln.no, 'ROUGHNESS CORRELATION' if match(k0, 'ROUG')
                    else 'LIMITING POTENTIAL', t[n - 1])
        else:
            item = next(w for w in ('BULK', 'WALL', 'TANK') if match(k0, w))
            pool = [x for x, k in net.nodes.items() if k == 'T'] if item == 'TANK' else list(net.links)
            ids = [t[1]] if n == 3 else _range(pool, t[1], t[2])
            for x in ids:
                if x in pool and (item == 'TANK' or net.links[x] in ('PIPE', 'CV')):
                    out.add(sect, ln.no, item, x, t[n - 1])
    elif sect == '[MIXING]' and n >= 2 and net.nodes.get(t[0]) == 'T':
        model = ('MIXED', '2COMP', 'FIFO', 'LIFO')[findmatch(t[1], ('MIXED', '2COMP', 'FIFO', 'LIFO'))]
        frac = num(t[2]) if model == '2COMP' and n == 3 else 1.0
        out.add(sect, ln.no, t[0], model, *([fmt(frac or 1.0)] if model == '2COMP' else []))


_RULEWORDS = ('RULE', 'IF', 'AND', 'OR', 'THEN', 'ELSE', 'PRIO', 'DISABLED')
_OBJECTS = ('JUNC', 'RESER', 'TANK', 'PIPE', 'PUMP', 'VALVE', 'NODE', 'LINK', 'SYSTEM')
_VARS = ('DEMAND', 'HEAD', 'GRADE', 'LEVEL', 'PRESSURE', 'FLOW', 'STATUS', 'SETTING', 'POWER',
         'TIME', 'CLOCKTIME', 'FILLTIME', 'DRAINTIME')
_OPS = ('<=', '>=', '<>', '=', '<', '>', 'IS', 'NOT', 'BELOW', 'ABOVE')
_OPSYM = ('<=', '>=', '<>', '=', '<', '>', '=', '<>', '<', '>')
_NODEWORD = {'J': 'JUNCTION', 'R': 'RESERVOIR', 'T': 'TANK'}


def _premise(net: _Net, ln: Line) -> list[str]:
    t = ln.toks
    op = lambda tok: _OPSYM[findmatch(tok, _OPS)]
    if findmatch(t[1], _OBJECTS) == 8:
        var = _VARS[findmatch(t[2], _VARS)]
        if var == 'DEMAND':
            raise NormaliseError(ln.no, 'rule premise on SYSTEM DEMAND is not supported by WNTR')
        sec = int(hours(t[4], t[5] if len(t) == 6 else '') * 3600.0)
        net.note('[RULES] time values written as H:MM:SS (WNTR misreads AM/PM)')
        # WNTR's rule clock parser mishandles AM/PM and bare hours; H:MM:SS is exact
        return ['SYSTEM', var, op(t[3]), hms(sec)]
    var = _VARS[findmatch(t[3], _VARS)]
    if var in ('FILLTIME', 'DRAINTIME'):
        raise NormaliseError(ln.no, 'rule premise on tank %s is not supported by WNTR' % var)
    ident, value = t[2], t[-1]
    obj = _NODEWORD[net.nodes[ident]] if ident in net.nodes and findmatch(t[1], _OBJECTS) in (
        0, 1, 2, 6) else {'PUMP': 'PUMP', 'PIPE': 'PIPE', 'CV': 'PIPE'}.get(net.links.get(ident), 'VALVE')
    word = next((w for w in ('OPEN', 'CLOSED', 'ACTIVE') if match(value, w)), None)
    if word:
        value = word
    elif var == 'PRESSURE' or (var == 'SETTING' and net.links.get(ident) in PRESSURE_VALVES):
        value = fmt(num(value) * net.kp)
    return [obj, ident, 'HEAD' if var == 'GRADE' else var, op(t[4]), value]


def _emit_rules(net: _Net, rule_lines: list[Line], out: _Out):
    """EPANET's ruledata(): rules in canonical one-clause-per-line form."""
    rules, cur = [], None
    for ln in rule_lines:
        key = _RULEWORDS[findmatch(ln.toks[0], _RULEWORDS)]
        if key == 'RULE':
            cur = {'no': ln.no, 'id': ln.toks[1], 'if': [], 'then': [], 'else': [],
                   'prio': None, 'disabled': False, 'state': 'RULE'}
            rules.append(cur)
        elif key == 'DISABLED':
            cur['disabled'] = True
        elif key == 'PRIO':
            p = num(ln.toks[1])
            if p != int(p):
                raise NormaliseError(ln.no, 'fractional rule priority %s (WNTR keeps integers)'
                                     % ln.toks[1])
            cur['prio'] = int(p)
        elif key in ('IF', 'OR') or (key == 'AND' and cur['state'] == 'IF'):
            cur['state'] = 'IF'
            cur['if'].append((ln.no, [key] + _premise(net, ln)))
        else:
            if key in ('THEN', 'ELSE'):
                cur['state'] = key
            link = ln.toks[2]
            kind = {'PUMP': 'PUMP', 'PIPE': 'PIPE', 'CV': 'PIPE'}.get(net.links[link], 'VALVE')
            for v in _setting_words(net, link, ln.toks[5], ln):
                attr = ('STATUS' if v in ('OPEN', 'CLOSED', 'ACTIVE') else
                        'BASE_SPEED' if kind == 'PUMP' else 'SETTING')
                cur[cur['state'].lower()].append((ln.no, [kind, link, attr, '=', v]))
    for r in rules:
        if r['disabled']:
            net.dropped.append((r['no'], 'disabled rule %s' % r['id']))
            continue
        ids = {r['id']} | {c[2] for _, c in r['if'] if c[1] != 'SYSTEM'} | \
            {c[1] for _, c in r['then'] + r['else']}
        if any(i.upper() in ('RULE', 'IF', 'THEN', 'ELSE', 'AND', 'OR', 'PRIORITY') for i in ids):
            # WNTR splits rule text at these words wherever they appear
            raise NormaliseError(r['no'], 'rule %s uses a rule keyword as an ID' % r['id'])
        out.add('[RULES]', r['no'], 'RULE', r['id'])
        for no, clause in r['if']:
            out.add('[RULES]', no, *clause)
        for part in ('then', 'else'):
            for i, (no, clause) in enumerate(r[part]):
                out.add('[RULES]', no, part.upper() if i == 0 else 'AND', *clause)
        if r['prio'] is not None:
            out.add('[RULES]', r['no'], 'PRIORITY', r['prio'])
