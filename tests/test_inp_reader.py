"""read_inp against EPANET 2.3's own reading of every network under shared/networks, plus bad input.

EPANET's view comes from the owa-epanet toolkit with flow units switched to CMS and pressure units
to metres, so both sides are in SI (EPANET reports diameters in mm and D-W roughness in mm).
"""
from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path

import pytest

from parktwin.hydraulics.inp_reader import InpError, InpExtras, read_inp, read_inp_with_extras

en = pytest.importorskip('epanet.toolkit')

ROOT = Path(os.environ.get('PARKTWIN_NETWORKS',
                           Path(__file__).resolve().parents[2] / 'shared' / 'networks'))
NETWORKS = sorted(ROOT.rglob('*.inp')) if ROOT.is_dir() else []
IDS = [str(p.relative_to(ROOT)) for p in NETWORKS]
FLOW_NAMES = ['CFS', 'GPM', 'MGD', 'IMGD', 'AFD', 'LPS', 'LPM', 'MLD', 'CMH', 'CMD', 'CMS']
RTOL = 2e-4     # EPANET's own unit constants (e.g. 448.831 gpm per cfs) are rounded


def close(a, b, rtol=RTOL, atol=1e-9):
    return math.isclose(float(a), float(b), rel_tol=rtol, abs_tol=atol)


class Epanet:
    """EPANET's view of a file, in SI."""

    def __init__(self, path: Path, rpt: Path):
        self.ph = en.createproject()
        en.open(self.ph, str(path), str(rpt), '')
        self.flow_units = FLOW_NAMES[en.getflowunits(self.ph)]
        en.setflowunits(self.ph, en.CMS)
        en.setoption(self.ph, en.PRESS_UNITS, en.METERS)

    def close(self):
        en.close(self.ph)
        en.deleteproject(self.ph)

    def count(self, what):
        return en.getcount(self.ph, what)

    def node(self, i, prop):
        return en.getnodevalue(self.ph, i, prop)

    def link(self, i, prop):
        return en.getlinkvalue(self.ph, i, prop)

    def pattern_id(self, index):
        return en.getpatternid(self.ph, int(index)) if index else None

    def curve(self, index):
        n = en.getcurvelen(self.ph, index)
        return [tuple(en.getcurvevalue(self.ph, index, k)) for k in range(1, n + 1)]


@lru_cache(maxsize=None)
def loaded(rel: str):
    return read_inp_with_extras(ROOT / rel)


@pytest.fixture
def case(request, tmp_path):
    rel = request.param
    wn, extras = loaded(rel)
    ep = Epanet(ROOT / rel, tmp_path / 'x.rpt')
    yield wn, extras, ep
    ep.close()


def check_general(wn, extras, ep):
    assert isinstance(extras, InpExtras)
    ntanks = sum(ep.node(i, en.TANKDIAM) > 0 for i in range(1, ep.count(en.NODECOUNT) + 1)
                 if en.getnodetype(ep.ph, i) != en.JUNCTION)
    types = [en.getlinktype(ep.ph, i) for i in range(1, ep.count(en.LINKCOUNT) + 1)]
    assert wn.num_junctions == ep.count(en.NODECOUNT) - ep.count(en.TANKCOUNT)
    assert (wn.num_tanks, wn.num_reservoirs) == (ntanks, ep.count(en.TANKCOUNT) - ntanks)
    assert wn.num_pipes == sum(t in (en.PIPE, en.CVPIPE) for t in types)
    assert wn.num_pumps == types.count(en.PUMP)
    assert wn.num_valves == len(types) - wn.num_pipes - wn.num_pumps
    assert extras.flow_units == ep.flow_units
    t = wn.options.time
    for param, mine in (('DURATION', t.duration), ('HYDSTEP', t.hydraulic_timestep),
                        ('QUALSTEP', t.quality_timestep), ('PATTERNSTEP', t.pattern_timestep),
                        ('PATTERNSTART', t.pattern_start), ('REPORTSTEP', t.report_timestep),
                        ('REPORTSTART', t.report_start), ('RULESTEP', t.rule_timestep),
                        ('STARTTIME', t.start_clocktime)):
        assert mine == en.gettimeparam(ep.ph, getattr(en, param)), param
    h = wn.options.hydraulic
    opt = lambda name: en.getoption(ep.ph, getattr(en, name))
    assert h.headloss == ['H-W', 'D-W', 'C-M'][int(opt('HEADLOSSFORM'))]
    for name, mine in (('TRIALS', h.trials), ('ACCURACY', h.accuracy),
                       ('EMITEXPON', h.emitter_exponent), ('DEMANDMULT', h.demand_multiplier),
                       ('SP_GRAVITY', h.specific_gravity), ('SP_VISCOS', h.viscosity),
                       ('CHECKFREQ', h.checkfreq), ('MAXCHECK', h.maxcheck),
                       ('DAMPLIMIT', h.damplimit), ('HEADERROR', h.headerror),
                       ('FLOWCHANGE', h.flowchange)):
        assert close(mine, opt(name)), name
    extra = int(opt('UNBALANCED'))
    assert (h.unbalanced, extras.unbalanced) == (('STOP', ('STOP', 0)) if extra < 0 else
                                                 ('CONTINUE', ('CONTINUE', extra)))
    assert extras.emitter_backflow == bool(opt('EMITBACKFLOW'))
    model, pmin, preq, pexp = en.getdemandmodel(ep.ph)
    assert h.demand_model in (('DDA', 'DD') if model == 0 else ('PDA', 'PDD'))
    assert close(h.minimum_pressure, pmin) and close(h.required_pressure, preq)
    assert close(h.pressure_exponent, pexp)
    assert h.pattern == ep.pattern_id(opt('DEMANDPATTERN'))


def check_nodes(wn, extras, ep):
    default = wn.options.hydraulic.pattern
    for i in range(1, ep.count(en.NODECOUNT) + 1):
        name = en.getnodeid(ep.ph, i)
        node = wn.get_node(name)
        elev = node.base_head if node.node_type == 'Reservoir' else node.elevation
        assert close(elev, ep.node(i, en.ELEVATION), atol=1e-6), name
        kind = en.getnodetype(ep.ph, i)
        if kind == en.JUNCTION:
            demands = node.demand_timeseries_list
            assert len(demands) == en.getnumdemands(ep.ph, i), name
            for d, demand in enumerate(demands, start=1):
                assert close(demand.base_value, en.getbasedemand(ep.ph, i, d)), name
                want = ep.pattern_id(en.getdemandpattern(ep.ph, i, d)) or default
                assert (demand.pattern_name or default) == want, name
            assert close(node.emitter_coefficient or 0.0, ep.node(i, en.EMITTER)), name
        elif ep.node(i, en.TANKDIAM) > 0:
            for attr, prop in (('init_level', en.TANKLEVEL), ('min_level', en.MINLEVEL),
                               ('max_level', en.MAXLEVEL), ('diameter', en.TANKDIAM)):
                assert close(getattr(node, attr), ep.node(i, prop), atol=1e-6), (name, attr)
            vc = int(ep.node(i, en.VOLCURVE))
            assert node.vol_curve_name == (en.getcurveid(ep.ph, vc) if vc else None)
            assert bool(node.overflow) == bool(ep.node(i, en.CANOVERFLOW))
        else:
            pat = node.head_timeseries.pattern_name
            assert pat == ep.pattern_id(ep.node(i, en.PATTERN)), name


def check_links(wn, extras, ep):
    dw = wn.options.hydraulic.headloss == 'D-W'
    valve_names = {en.PRV: 'PRV', en.PSV: 'PSV', en.PBV: 'PBV', en.FCV: 'FCV', en.TCV: 'TCV',
                   en.GPV: 'GPV'}
    for i in range(1, ep.count(en.LINKCOUNT) + 1):
        name = en.getlinkid(ep.ph, i)
        link = wn.get_link(name)
        kind = en.getlinktype(ep.ph, i)
        n1, n2 = en.getlinknodes(ep.ph, i)
        assert (link.start_node_name, link.end_node_name) == (en.getnodeid(ep.ph, n1),
                                                              en.getnodeid(ep.ph, n2))
        closed = ep.link(i, en.INITSTATUS) == 0
        assert (str(link.initial_status).upper() == 'CLOSED') == closed, name
        if kind in (en.PIPE, en.CVPIPE):
            assert link.check_valve == (kind == en.CVPIPE), name
            assert close(link.length, ep.link(i, en.LENGTH)), name
            assert close(link.diameter, ep.link(i, en.DIAMETER) / 1000.0), name
            rough = ep.link(i, en.ROUGHNESS) / (1000.0 if dw else 1.0)
            assert close(link.roughness, rough, atol=1e-12), name
            assert close(link.minor_loss, ep.link(i, en.MINORLOSS)), name
        elif kind == en.PUMP:
            ptype = en.getpumptype(ep.ph, i)
            assert link.pump_type == ('POWER' if ptype == en.CONST_HP else 'HEAD'), name
            if ptype == en.CONST_HP:
                # the toolkit reports pump power in its internal unit, hp, whatever the units
                assert close(link.power, ep.link(i, en.PUMP_POWER) * 745.7), name
            else:
                c = en.getheadcurveindex(ep.ph, i)
                assert link.pump_curve_name == en.getcurveid(ep.ph, c)
                pts = ep.curve(c)
                assert len(link.get_pump_curve().points) == len(pts)
                for mine, theirs in zip(link.get_pump_curve().points, pts):
                    assert close(mine[0], theirs[0]) and close(mine[1], theirs[1]), name
            if not closed:
                assert close(link.base_speed, ep.link(i, en.INITSETTING)), name
            assert link.speed_pattern_name == ep.pattern_id(ep.link(i, en.LINKPATTERN))
        else:
            assert link.valve_type == valve_names[kind], name
            assert close(link.diameter, ep.link(i, en.DIAMETER) / 1000.0), name
            assert close(link.minor_loss, ep.link(i, en.MINORLOSS)), name
            setting = ep.link(i, en.INITSETTING)
            if kind == en.GPV:
                assert link.headloss_curve_name == en.getcurveid(ep.ph, int(setting)), name
            else:
                assert close(link.initial_setting, setting, atol=1e-9), name


def check_patterns_controls(wn, extras, ep):
    for p in range(1, ep.count(en.PATCOUNT) + 1):
        pat = wn.get_pattern(en.getpatternid(ep.ph, p))
        values = [en.getpatternvalue(ep.ph, p, k) for k in
                  range(1, en.getpatternlen(ep.ph, p) + 1)]
        assert len(pat.multipliers) == len(values)
        assert all(close(a, b, rtol=1e-12) for a, b in zip(pat.multipliers, values))
    rules = [c for _, c in wn.controls() if type(c).__name__ == 'Rule']
    simple = {n: c for n, c in wn.controls() if type(c).__name__ != 'Rule'}
    disabled = sum('disabled control' in what for _, what in extras.dropped)
    assert len(rules) + sum('disabled rule' in w for _, w in extras.dropped) == \
        ep.count(en.RULECOUNT)
    # one EPANET control may become two WNTR controls (pump status plus speed)
    assert len(simple) >= ep.count(en.CONTROLCOUNT) - disabled
    thresholds = {}
    for c in simple.values():
        link = c._then_actions[0].target()[0].name
        thresholds.setdefault(link, []).append(c._condition._threshold)
    for k in range(1, ep.count(en.CONTROLCOUNT) + 1 if not disabled else 1):
        _, link, _, _, level = en.getcontrol(ep.ph, k)   # level: m of head/pressure, or s
        name = en.getlinkid(ep.ph, link)
        assert any(close(t, level, atol=1e-6) for t in thresholds.get(name, [])), (name, level)


def _leaves(cond):
    if hasattr(cond, '_condition_1'):
        return _leaves(cond._condition_1) + _leaves(cond._condition_2)
    return [cond]


def check_rules(wn, extras, ep):
    rules = {c.name: c for _, c in wn.controls() if type(c).__name__ == 'Rule'}
    for r in range(1, ep.count(en.RULECOUNT) + 1):
        label = en.getruleID(ep.ph, r)
        if (0, 'disabled rule %s' % label) in [(0, w) for _, w in extras.dropped]:
            continue     # EPANET never fires it; it is left out of the WNTR model
        npremises, nthen, nelse, priority = en.getrule(ep.ph, r)
        rule = rules[label]
        assert rule._priority == priority
        assert len(rule._then_actions) >= nthen and len(rule._else_actions) >= nelse
        leaves = _leaves(rule._condition)
        assert len(leaves) == npremises
        for p, leaf in enumerate(leaves, start=1):
            _, obj, index, variable, _, status, value = en.getpremise(ep.ph, r, p)
            if status:      # OPEN/CLOSED/ACTIVE premise
                continue
            assert close(leaf._threshold, value, atol=1e-6), (label, p)


CHECKS = (check_general, check_nodes, check_links, check_patterns_controls, check_rules)


@pytest.mark.parametrize('check', CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize('case', IDS, indirect=True, ids=IDS)
def test_network_matches_epanet(case, check):
    check(*case)


def check_against_epanet(path: Path, tmp_path: Path):
    wn, extras = read_inp_with_extras(path)
    ep = Epanet(path, tmp_path / 'check.rpt')
    try:
        for check in CHECKS:
            check(wn, extras, ep)
    finally:
        ep.close()
    return wn, extras


# An EPANET 2.3 file using spellings and features WNTR 1.5 rejects or misreads.
KITCHEN_SINK_SI = """[TITLE]
Kitchen sink ; SI units, kPa pressures, clock times, ranges
[OPTIONS]
 Units  CMH
 Pressure KPA
 Specific Gravity 0.98
 Viscosity 1.3e-6
 Headloss D-W
 Accuracy 1e-8
 Trials 77
 Unbalanced Continue 5
 Pattern PAT1
 Demand Model PDA
 Minimum Pressure 10
 Required Pressure 200
 Pressure Exponent 0.6
 Emitter Exponent 0.7
 BACKFLOW ALLOWED NO
 HTOL 0.001
 SEGMENTS 100
 CHECKFREQ 3
 MAXCHECK 12
 DAMPLIMIT 0.05
 HEADERROR 0.02
 FLOWCHANGE 0.5
 Quality Chemical ppm
[TIMES]
 Duration 2 days
 Hydraulic Timestep 900 SEC
 Pattern Timestep 30 min
 Report Timestep 1:00
 Start ClockTime 1:30 PM
 Rule Timestep 0:01
[JUNCTIONS]
 J1 10 5
 J2 12
 J3 9.5 2 PAT2
 J4 11 1 ; a comment
 J5 10
 J6 10
 J7 10
 J8 10
[RESERVOIRS]
 R1 60 RPAT
[TANKS]
 T1 40 3 1 6 12 0 * YES
 T2 35
 T3 30 1 0 5 0
[PIPES]
 P1 R1 J1 500 300 0.1
 P2 J1 J2 400 250 0.1 2.5
 P3 J2 J3 300 200 0.1 CV
 P4 J3 J4 200 150 0.1 0 Closed
 P5 J4 "T1"
 P6 T2 J2 100 100 0.1
 P7 T3 J3 100 100 0.1
 P8 J1 J3 100 100 0.1 0 Open
[PUMPS]
 PU1 J2 J4 HEAD C1 SPEED 1.2
 PU2 J1 J4 POWER 5
[VALVES]
 V1 J2 J5 150 PRV 300
 V2 J5 J6 150 GPV GC1
 V3 J6 J7 150 FCV 20
 V4 J7 J8 150 TCV 5
 V5 J8 J3 100 PBV 50
 V6 J5 J8 100 GPV GC1
[DEMANDS]
 J1 3 PAT2 ;dom
 J1 1 ;ind
 R1 5
[EMITTERS]
 J3 0.5
[LEAKAGE]
 P1 0.1 0.01
[STATUS]
 PU1 1.1
 V4 CLOSED
 V3 25
[PATTERNS]
 PAT1 1 1.2 0.8
 PAT2 0.5 1.5
 RPAT 1 1.01
[CURVES]
 C1 50 40
 GC1 0 0
 GC1 10 2
 GC1 20 6
[CONTROLS]
 LINK P8 CLOSED AT TIME 3:30
 LINK P8 OPEN AT CLOCKTIME 6 PM
 LINK PU2 1.3 IF NODE T1 BELOW 2
 LINK PU2 0 IF NODE T1 ABOVE 5
 LINK V1 250 IF NODE J3 BELOW 150
 LINK P2 0 AT TIME 30 MIN
 LINK P2 1 AT TIME 40 MIN DISABLED
[RULES]
RULE 1
IF SYSTEM CLOCKTIME >= 12 AM
AND SYSTEM CLOCKTIME < 12:30 PM
AND JUNCTION J1 PRESSURE ABOVE 100
OR TANK T1 GRADE BELOW 42
THEN PUMP PU1 STATUS IS OPEN
AND VALVE V1 SETTING = 280
ELSE PIPE P2 STATUS IS 0
PRIORITY 3

RULE 2
IF SYSTEM TIME > 2:00
THEN PUMP PU2 SETTING = 0.9
DISABLED
[COORDINATES]
 J1 1 2
 ZZ 3 4
[TAGS]
 node J1 zoneA
[QUALITY]
 J1 J3 0.5
[SOURCES]
 R1 1.0
[REACTIONS]
 Bulk P1 P3 -0.5
 Global Wall -1
[MIXING]
 T1 2COMP 0.4
 T2 MIXED
[REPORT]
 Nodes All
 Elevation Precision 3
[END]
"""

# US units with a specific gravity, an emitter exponent and psi settings that WNTR converts
# without the specific gravity (EPANET's Ucf[PRESSURE] includes it).
US_SPECIFIC_GRAVITY = """[OPTIONS]
 UNITS GPM
 SPECIFIC GRAVITY 0.9
 EMITTER EXPONENT 0.6
 VISCOSITY 2.0e-5
 PATTERN NOSUCH
[JUNCTIONS]
 J1 100 50
 J2 90 20
 J3 95 10
[RESERVOIRS]
 R1 300
[PIPES]
 P1 R1 J1 1000 12 120
 P2 J2 J3 1000 8 120
[VALVES]
 V1 J1 J2 8 PRV 40
[EMITTERS]
 J3 2.5
[STATUS]
 P1 P2 OPEN
[PATTERNS]
 1 1.5 0.5
[CONTROLS]
 LINK V1 35 IF NODE J3 ABOVE 60
[END]
"""


@pytest.mark.parametrize('text', [KITCHEN_SINK_SI, US_SPECIFIC_GRAVITY], ids=['si', 'us'])
def test_awkward_files_match_epanet(text, tmp_path):
    path = tmp_path / 'net.inp'
    path.write_text(text)
    wn, extras = check_against_epanet(path, tmp_path)
    if text is KITCHEN_SINK_SI:
        assert extras.flow_units == 'CMH' and extras.pressure_units == 'KPA'
        assert extras.emitter_backflow is False
        assert extras.leakage == (('P1', 0.1, 0.01),)
        assert extras.htol == 0.001 and extras.unbalanced == ('CONTINUE', 5)
        assert [what for _, what in extras.dropped] == ['demand on non-junction R1 (EPANET '
                                                        'ignores it)', 'disabled control',
                                                        'disabled rule 2']
        assert wn.get_link('V4').initial_status.name == 'Closed'
        assert wn.get_link('V2').initial_status.name == 'Open'
        assert wn.get_node('T1').overflow is True
        assert (wn.get_node('T2').node_type, wn.get_node('T3').node_type) == ('Reservoir',) * 2
        actions = {str(c._then_actions[0]) for _, c in wn.controls()}
        # EPANET opens a pump given a speed > 0 and gives an opened pump speed 1.0
        assert {'PUMP PU2 STATUS IS OPEN', 'PUMP PU2 BASE_SPEED IS 1.3',
                'PUMP PU2 STATUS IS CLOSED', 'PIPE P2 STATUS IS CLOSED'} <= actions
        rule = next(c for _, c in wn.controls() if c.name == '1')
        assert 'PUMP PU1 BASE_SPEED IS 1.0' in {str(a) for a in rule._then_actions}
    else:
        assert wn.options.hydraulic.pattern is None    # PATTERN names a missing pattern
        assert wn.get_node('J1').demand_timeseries_list[0].pattern_name is None


def test_latin1_bytes_are_read(tmp_path):
    path = tmp_path / 'latin1.inp'
    path.write_bytes(US_SPECIFIC_GRAVITY.replace('[OPTIONS]', '[TITLE]\nR\xe9seau d\'essai\n'
                                                 '[OPTIONS]').encode('latin-1'))
    wn, extras = read_inp_with_extras(path)
    assert extras.encoding == 'latin-1' and wn.num_junctions == 3


def test_read_inp_returns_model(tmp_path):
    path = tmp_path / 'net.inp'
    path.write_text(US_SPECIFIC_GRAVITY)
    assert read_inp(path).num_valves == 1


MINIMAL = """[JUNCTIONS]
 J1 10 1
 J2 10 1
[RESERVOIRS]
 R1 100
[PIPES]
 P1 R1 J1 100 12 100
 P2 J1 J2 100 12 100
[END]
"""


def _error(tmp_path, content, name='bad.inp') -> InpError:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(InpError) as info:
        read_inp(path)
    assert str(path) in str(info.value)
    return info.value


def test_minimal_file_reads(tmp_path):
    path = tmp_path / 'ok.inp'
    path.write_text(MINIMAL)
    assert read_inp(path).num_pipes == 2


@pytest.mark.parametrize('old, new, line, words', [
    (' P2 J1 J2 100 12 100', ' P2 J1 J9 100 12 100', 8, ['203', 'J9']),
    (' P2 J1 J2 100 12 100', ' P2 J1 J2 100 -12 100', 8, ['202', '-12']),
    (' P2 J1 J2 100 12 100', ' P2 J1 J2 100 0 100', 8, ['202']),
    (' J2 10 1', ' J2 1O 1', 3, ['202', '1O']),
    ('[RESERVOIRS]', '[RESERVOIR-S]', 4, ['299']),
    ('[END]', '[PATTERNS]\n PAT 1 x2 3\n[END]', 10, ['202', 'x2']),
    (' P2 J1 J2 100 12 100', ' P2 J1 J2 100 12 100\n[VALVES]\n V1 J1 J2 100 PCV 50 0 C', 10,
     ['PCV']),
])
def test_bad_input_names_file_line_and_problem(tmp_path, old, new, line, words):
    err = _error(tmp_path, MINIMAL.replace(old, new))
    assert err.line == line, str(err)
    assert 'line %d' % line in str(err)
    for word in words:
        assert word in str(err)


def test_unrepresentable_rule_is_an_error(tmp_path):
    text = MINIMAL.replace('[END]', '[TANKS]\n T1 50 1 0 5 10\n[PIPES]\n P3 J2 T1 10 12 100\n'
                           '[RULES]\nRULE A\nIF TANK T1 FILLTIME > 2\nTHEN PIPE P1 STATUS IS '
                           'CLOSED\n[END]')
    err = _error(tmp_path, text)
    assert err.line == 15 and 'FILLTIME' in str(err)


def test_missing_empty_and_binary_files(tmp_path):
    assert 'file not found' in str(_error(tmp_path, None, 'missing.inp'))
    assert 'empty file' in str(_error(tmp_path, '  \n\n', 'empty.inp'))
    # EPANET reads a line up to its first NUL byte: binary data reads as no network at all
    err = _error(tmp_path, b'\x7fELF\x02\x01\x01\x00\x00garbage\n', 'elf.inp')
    assert 'no nodes' in str(err) and 'NUL bytes' in str(err)
    err = _error(tmp_path, bytes(range(128, 256)) * 4, 'noise.inp')
    assert 'no nodes' in str(err)


def test_byte_order_mark_is_explained(tmp_path):
    err = _error(tmp_path, '\ufeff' + MINIMAL, 'bom.inp')
    assert 'byte-order mark' in str(err) and err.line == 7   # P1 names the skipped J1


def test_error_is_value_error():
    assert issubclass(InpError, ValueError)
