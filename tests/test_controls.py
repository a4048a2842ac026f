"""Simple controls and rules: parsing (hydraulics/controls_parse.py, hydraulics/rules_parse.py) and the engines
(hydraulics/controls.py, hydraulics/rules.py).

Parsing is checked against EPANET 2.3's own reading (owa-epanet, switched to CMS and metres so it reports
SI) for every network under shared/networks; evaluation on hand-made batches with known answers, and the
rule engine step by step against EPANET's own extended-period run of the networks that have rules.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from parktwin.hydraulics.control_units import ControlError
from parktwin.hydraulics.controls import (InternalControl, RuleInternal, apply_simple_controls, control_time_step,
                                          to_internal)
from parktwin.hydraulics.controls_parse import SimpleControl, compile_controls, compile_controls_from_file
from parktwin.hydraulics.inp_tokens import getfloat, hour, tokenise
from parktwin.hydraulics.network import LinkKind, NodeKind, PumpCurveKind
from parktwin.hydraulics.rules import RuleEngine
from parktwin.hydraulics.rules_parse import Rule
from parktwin.hydraulics.state import HydraulicState


def _hydraulic_state(**arrays) -> HydraulicState:
    """A HydraulicState with the arrays controls and rules read; fields added to it later stay None."""
    from dataclasses import fields
    return HydraulicState(**{f.name: arrays.get(f.name) for f in fields(HydraulicState) if f.init})

ROOT = Path(os.environ.get("PARKTWIN_NETWORKS", Path(__file__).resolve().parents[2] / "shared" / "networks"))
if not ROOT.is_dir():
    ROOT = Path("/work/shared/networks")
NETWORKS = sorted(ROOT.rglob("*.inp")) if ROOT.is_dir() else []
IDS = [str(p.relative_to(ROOT)) for p in NETWORKS]
FLOW_NAMES = ["CFS", "GPM", "MGD", "IMGD", "AFD", "LPS", "LPM", "MLD", "CMH", "CMD", "CMS"]
CLOSED, OPEN, ACTIVE = 2, 3, 4
GPM_PER_CFS = 448.831
M_PER_FT = 0.3048
PSI_PER_FT = 0.4333


# ----------------------------------------------------------------------------- EPANET's view
def _open(path, tmp_path, si=True):
    en = pytest.importorskip("epanet.toolkit")
    ph = en.createproject()
    en.open(ph, str(path), str(tmp_path / "report.txt"), "")
    flow_units = FLOW_NAMES[en.getflowunits(ph)]
    sg = en.getoption(ph, en.SP_GRAVITY)
    if si:
        en.setflowunits(ph, en.CMS)
        en.setoption(ph, en.PRESS_UNITS, en.METERS)
    return en, ph, flow_units, sg


def _topology(en, ph, elevation_to_m):
    """ParkTwin's indexing (junctions, tanks, reservoirs; links in file order) built from EPANET's."""
    nn = en.getcount(ph, en.NODECOUNT)
    nl = en.getcount(ph, en.LINKCOUNT)
    types = [en.getnodetype(ph, i) for i in range(1, nn + 1)]
    order = [i for t in (en.JUNCTION, en.TANK, en.RESERVOIR) for i in range(1, nn + 1) if types[i - 1] == t]
    node_index = {en.getnodeid(ph, i): j for j, i in enumerate(order)}
    kind_of = {en.JUNCTION: NodeKind.JUNCTION, en.TANK: NodeKind.TANK, en.RESERVOIR: NodeKind.RESERVOIR}
    node_kind = np.array([kind_of[types[i - 1]] for i in order], np.int8)
    elevation = np.array([en.getnodevalue(ph, i, en.ELEVATION) for i in order]) * elevation_to_m
    link_index = {en.getlinkid(ph, k): k - 1 for k in range(1, nl + 1)}
    link_kind = np.array([en.getlinktype(ph, k) for k in range(1, nl + 1)], np.int8)
    return dict(order=order, node_index=node_index, node_kind=node_kind, elevation_m=elevation,
                link_index=link_index, link_kind=link_kind)


def _parse(path, topo, flow_units, sg):
    return compile_controls_from_file(path, topo["node_index"], topo["link_index"], topo["link_kind"],
                                      topo["node_kind"], topo["elevation_m"], flow_units, sg)


@pytest.mark.parametrize("path", NETWORKS, ids=IDS)
def test_parse_matches_epanet(path, tmp_path):
    en, ph, flow_units, sg = _open(path, tmp_path)
    topo = _topology(en, ph, 1.0)
    controls, rules = _parse(path, topo, flow_units, sg)
    assert len(controls) == en.getcount(ph, en.CONTROLCOUNT)
    assert len(rules) == en.getcount(ph, en.RULECOUNT)
    ours = {epanet_i: j for j, epanet_i in enumerate(topo["order"])}
    kinds = ("low", "high", "timer", "timeofday")
    step = max(1, len(controls) // 60)            # bwsn2 has 1067: a sample is enough
    # (owa-epanet's getcontrolenabled/getruleenabled wrappers are unusable: DISABLED is tested by hand below)
    for i in range(1, len(controls) + 1, step):
        c = controls[i - 1]
        typ, link, setting, node, level = en.getcontrol(ph, i)
        assert (kinds[typ], link - 1) == (c.kind, c.link)
        assert c.node == (ours[node] if node > 0 else -1)
        if c.kind in ("low", "high"):
            assert math.isclose(level, c.level_si, rel_tol=1e-6, abs_tol=1e-9)
            assert math.isclose(c.threshold_head_m, topo["elevation_m"][c.node] + c.level_si, rel_tol=1e-12)
        else:
            assert level == c.time_s
        if topo["link_kind"][c.link] == LinkKind.GPV:
            assert math.isnan(c.setting_si)
        elif math.isnan(c.setting_si):      # EPANET reports MISSING as SET_OPEN / SET_CLOSED
            assert setting == (1e10 if c.status == OPEN else -1e10)
        else:
            assert math.isclose(setting, c.setting_si, rel_tol=1e-4)   # EPANET's 0.028317 m3/s per cfs
    for r_i, rule in enumerate(rules, start=1):
        n_p, n_then, n_else, priority = en.getrule(ph, r_i)
        assert (n_p, n_then, n_else, priority) == (len(rule.premises), len(rule.then_actions),
                                                   len(rule.else_actions), rule.priority)
        for p_i, p in enumerate(rule.premises, start=1):
            logop, obj, index, var, rel, status, value = en.getpremise(ph, r_i, p_i)
            assert ("OR" if logop == 3 else "AND")   # EN_R_IF 1, EN_R_AND 2, EN_R_OR 3 == p.logop
            assert {en.R_NODE: "NODE", en.R_LINK: "LINK", en.R_SYSTEM: "SYSTEM"}[obj] == p.object
            if p.object == "NODE":
                assert ours[index] == p.index
            elif p.object == "LINK":
                assert index - 1 == p.index
            assert var == ["DEMAND", "HEAD", "GRADE", "LEVEL", "PRESSURE", "FLOW", "STATUS", "SETTING", "POWER",
                           "TIME", "CLOCKTIME", "FILLTIME", "DRAINTIME"].index(p.variable)
            assert rel == ["=", "<>", "<=", ">=", "<", ">"].index(p.relation)
            if p.status >= 0:
                assert {1: OPEN, 2: CLOSED, 3: ACTIVE}[status] == p.status
            else:
                assert math.isclose(value, p.value_si, rel_tol=1e-4)
        for getter, acts in ((en.getthenaction, rule.then_actions), (en.getelseaction, rule.else_actions)):
            for a_i, a in enumerate(acts, start=1):
                link, status, setting = getter(ph, r_i, a_i)
                assert link - 1 == a.link
                if a.status >= 0:
                    assert {1: OPEN, 2: CLOSED, 3: ACTIVE}[status] == a.status
                else:
                    assert math.isclose(setting, a.setting_si, rel_tol=1e-4)
    en.close(ph)
    en.deleteproject(ph)


# ----------------------------------------------------------------------------- text primitives
def test_text_primitives():
    assert hour("6", "AM") == 6.0 and hour("12", "AM") == 0.0 and hour("12", "PM") == 12.0
    assert hour("8", "pm") == 20.0 and hour("13", "PM") == -1.0 and hour("1:30", "") == 1.5
    assert hour("90", "MIN") == 1.5 and hour("2", "DAYS") == 48.0 and hour("7200", "SEC") == 2.0
    assert hour("1:30:36", "PM") == 13.51 and hour("x", "") == -1.0 and hour("5", "FORTNIGHTS") == -1.0
    assert getfloat("1e3") == 1000.0 and getfloat("-.5") == -0.5 and getfloat("1.5x") is None
    assert getfloat("abc") is None and getfloat("3.") == 3.0
    assert tokenise('  LINK "my pump" OPEN IF ; a comment\n') == (["LINK", "my pump", "OPEN", "IF"], " a comment")
    assert tokenise("\tRULE\t1 \r\n") == (["RULE", "1"], "")


# ----------------------------------------------------------------------------- a hand-made network
# Nodes (ParkTwin order): J0 junction el 10 ft, T1 tank el 100 ft (levels 0..20 ft, 100 ft2), R2 reservoir.
# Links: P0 pipe, PU1 constant-power pump, V2 PRV, V3 FCV, V4 GPV, CV5 check-valve pipe.
NODE_INDEX = {"J0": 0, "T1": 1, "R2": 2}
LINK_INDEX = {"P0": 0, "PU1": 1, "V2": 2, "V3": 3, "V4": 4, "CV5": 5}
LINK_KIND = np.array([LinkKind.PIPE, LinkKind.PUMP, LinkKind.PRV, LinkKind.FCV, LinkKind.GPV, LinkKind.CVPIPE],
                     np.int8)
NODE_KIND = np.array([NodeKind.JUNCTION, NodeKind.TANK, NodeKind.RESERVOIR], np.int8)
ELEV_FT = np.array([10.0, 100.0, 50.0])
M3S_PER_GPM = 6.30901964e-05


def _sn():
    return SimpleNamespace(
        n_nodes=3, n_junctions=1, n_links=6, kind=LINK_KIND, elevation_ft=ELEV_FT,
        tank_node=np.array([1]), tank_area_ft2=np.array([100.0]), tank_hmin_ft=np.array([100.0]),
        tank_hmax_ft=np.array([120.0]), tank_vmin_ft3=np.array([0.0]), tank_vmax_ft3=np.array([2000.0]),
        tank_vcurve=np.array([-1]), curve_offset=np.array([0]), curve_x=np.zeros(0), curve_y=np.zeros(0),
        pump_link=np.array([1]), pump_of_link=np.array([-1, 0, -1, -1, -1, -1]),
        pump_type=np.array([PumpCurveKind.CONST_HP]), pump_q0=np.array([1.0]),
        pressure_si_to_ft=1.0 / M_PER_FT, m3s_per_cfs=M3S_PER_GPM * GPM_PER_CFS)


def _state(batch, tank_level_ft, tank_q=0.0):
    level = np.broadcast_to(np.asarray(tank_level_ft, float), (batch,))
    head = np.zeros((3, batch))
    head[0], head[1], head[2] = 40.0, 100.0 + level, 50.0
    outflow = np.zeros((3, batch))
    outflow[1] = tank_q
    return _hydraulic_state(
        head=head, flow=np.full((6, batch), 0.5),
        status=np.tile(np.array([OPEN, OPEN, ACTIVE, OPEN, OPEN, OPEN], np.int8)[:, None], (1, batch)),
        setting=np.tile(np.array([np.nan, 1.0, 20.0, np.nan, np.nan, np.nan])[:, None], (1, batch)),
        emitter_flow=np.zeros((1, batch)), leak_flow=np.zeros((1, batch)), demand_flow=np.zeros((1, batch)),
        full_demand=np.full((1, batch), 0.2), node_outflow=outflow, resistance=np.ones((6, 1)),
        leak_ke=np.zeros((1, batch)), tank_volume=100.0 * level[None, :].copy())


def _compile(text):
    return compile_controls(text, NODE_INDEX, LINK_INDEX, LINK_KIND, NODE_KIND, ELEV_FT * M_PER_FT, "GPM", 1.0)


CONTROLS = """
[OPTIONS]
 Units GPM
[CONTROLS]
LINK PU1 CLOSED IF NODE T1 ABOVE 15      ; tank level, ft
LINK PU1 1.25 IF NODE T1 BELOW 5
LINK V2 30 AT TIME 2:00                  ; PRV setting, psi
LINK P0 closed AT CLOCKTIME 6 AM
LINK V3 100 IF NODE J0 BELOW 20 DISABLED ; FCV setting, gpm; junction pressure, psi
LINK V4 OPEN AT TIME 3 HOURS
LINK V2 OPEN AT TIME 90 MIN
[END]
LINK P0 OPEN AT TIME 1
"""


def test_parse_hand_made_controls():
    controls, rules = _compile(CONTROLS)
    assert rules == () and len(controls) == 7
    c = controls[0]
    assert (c.link, c.node, c.kind, c.status, c.setting_si, c.enabled) == (1, 1, "high", CLOSED, 0.0, True)
    assert math.isclose(c.threshold_head_m, 115.0 * M_PER_FT)
    c = controls[1]
    assert (c.kind, c.status, c.setting_si) == ("low", OPEN, 1.25)
    c = controls[2]
    assert (c.kind, c.time_s, c.status, c.node) == ("timer", 7200, ACTIVE, -1)
    assert math.isclose(c.setting_si, 30 * M_PER_FT / PSI_PER_FT)
    c = controls[3]
    assert (c.kind, c.time_s, c.status) == ("timeofday", 21600, CLOSED) and math.isnan(c.setting_si)
    c = controls[4]
    assert (c.kind, c.node, c.enabled, c.status) == ("low", 0, False, ACTIVE)
    assert math.isclose(c.setting_si, 100 * M3S_PER_GPM)
    assert math.isclose(c.threshold_head_m, (10.0 + 20.0 / PSI_PER_FT) * M_PER_FT)
    assert (controls[5].status, controls[5].time_s) == (OPEN, 10800) and math.isnan(controls[5].setting_si)
    assert controls[6].time_s == 5400
    internal = to_internal(controls, _sn())
    assert all(isinstance(c, InternalControl) for c in internal)
    assert math.isclose(internal[0].grade_ft, 115.0) and math.isclose(internal[0].volume_ft3, 1500.0)
    assert math.isclose(internal[2].setting, 30 / PSI_PER_FT)
    assert math.isclose(internal[4].setting, 100 / GPM_PER_CFS)
    assert math.isclose(internal[4].grade_ft, 10.0 + 20.0 / PSI_PER_FT)


@pytest.mark.parametrize("line, code", [
    ("LINK CV5 OPEN AT TIME 1", 207), ("LINK NOPE OPEN AT TIME 1", 204), ("LINK V4 3 AT TIME 1", 207),
    ("LINK PU1 -1 AT TIME 1", 211), ("LINK PU1 OPEN IF NODE XX BELOW 1", 203),
    ("LINK PU1 OPEN IF NODE T1 UNDER 1", 213), ("LINK PU1 OPEN AT TIME 13 PM", 213), ("LINK PU1 OPEN AT", 201),
    ("LINK PU1 fast AT TIME 1", 202),
])
def test_control_errors(line, code):
    with pytest.raises(ControlError) as err:
        _compile("[CONTROLS]\n" + line + "\n")
    assert err.value.code == code


def test_apply_simple_controls_batch():
    sn = _sn()
    controls = to_internal(_compile(CONTROLS)[0], sn)
    # scenario 0: tank at 16 ft (above 15) at t=0; 1: at 10 ft, t = 2 h; 2: at 4 ft, pump closed, 6 AM
    st = _state(3, [16.0, 10.0, 4.0])
    st.status[1, 2], st.setting[1, 2] = CLOSED, 0.0
    changed = apply_simple_controls(controls, sn, st, np.array([0, 7200, 21600]), 0)
    assert changed.tolist() == [True, True, True]
    assert st.status[1].tolist() == [CLOSED, OPEN, OPEN] and st.setting[1].tolist() == [0.0, 1.0, 1.25]
    assert st.flow[1].tolist() == [0.5, 0.5, 1.0]           # re-opened constant-power pump restarts at Q0
    assert st.status[2].tolist() == [ACTIVE, ACTIVE, ACTIVE]
    assert np.allclose(st.setting[2], [20.0, 30 / PSI_PER_FT, 20.0])
    assert st.status[0].tolist() == [OPEN, OPEN, CLOSED]
    assert st.status[3].tolist() == [OPEN] * 3                # the disabled control and junction controls do not act
    # applying again changes nothing, except that EPANET counts a valve control to ACTIVE as a change
    # every time (controls() compares OPEN/CLOSED with the control's ACTIVE)
    assert apply_simple_controls(controls, sn, st, np.array([0, 7200, 21600]), 0).tolist() == [False, True, False]
    assert np.allclose(st.setting[2], [20.0, 30 / PSI_PER_FT, 20.0])
    # the tank's inflow widens the band (vplus): 14.99 ft with 2 ft3/s of inflow counts as "above 15"
    st = _state(2, [14.99, 14.99], tank_q=[0.5, 2.0])
    apply_simple_controls(controls, sn, st, np.array([1, 1]), 0)
    assert st.status[1].tolist() == [OPEN, CLOSED]
    # a clock-time control fires at 6 AM of every day, with the start clock time taken into account
    st = _state(3, 10.0)
    apply_simple_controls(controls, sn, st, np.array([86400 + 3600, 3600, 7200]), 5 * 3600)
    assert st.status[0].tolist() == [CLOSED, CLOSED, OPEN]


def test_control_time_step_batch():
    sn = _sn()
    controls = to_internal(_compile(CONTROLS)[0], sn)
    # filling at 0.5 ft3/s from 10 ft: 15 ft (1500 ft3) in 1000 s; draining at 0.25 from 6 ft: 5 ft in 400 s
    st = _state(3, [10.0, 6.0, 10.0], tank_q=[0.5, -0.25, 0.0])
    st.status[1, 1], st.setting[1, 1] = CLOSED, 0.0
    tstep = control_time_step(controls, sn, st, np.array([0, 0, 0]), np.array([3600, 3600, 3600]), 0)
    assert tstep.tolist() == [1000, 400, 3600]
    # timers: 2 h PRV setting (a change), 90 min open V2; the clock-time control at 6 AM
    st = _state(3, 10.0)
    tstep = control_time_step(controls, sn, st, np.array([3600, 7000, 20000]), np.array([9000, 9000, 9000]), 0)
    assert tstep.tolist() == [1800, 200, 1600]
    # a control that would not change its link does not shorten the step (pump already closed above 15)
    st = _state(1, 10.0, tank_q=0.5)
    st.status[1, 0], st.setting[1, 0] = CLOSED, 0.0
    assert control_time_step(controls[:1], sn, st, np.array([0]), np.array([3600]), 0).tolist() == [3600]


# ----------------------------------------------------------------------------- rules on the hand-made network
RULES = """
[CONTROLS]
[RULES]
RULE a
IF TANK T1 LEVEL ABOVE 10
AND SYSTEM CLOCKTIME >= 6 AM
OR PUMP PU1 STATUS IS CLOSED
THEN PUMP PU1 STATUS IS OPEN
AND VALVE V2 SETTING IS 40
ELSE PUMP PU1 SETTING IS 0.5
PRIORITY 2

RULE b   ; higher priority on the same pump
IF SYSTEM TIME >= 10:00
THEN PUMP PU1 STATUS IS CLOSED
PRIORITY 5

RULE c
IF JUNCTION J0 PRESSURE < 10
THEN VALVE V3 SETTING IS 100
AND PIPE P0 SETTING IS 0

RULE d
IF NODE T1 FILLTIME <= 0.5
THEN VALVE V4 STATUS IS CLOSED
DISABLED
"""


def test_parse_hand_made_rules():
    controls, rules = _compile(RULES)
    assert controls == () and [r.label for r in rules] == ["a", "b", "c", "d"]
    a, b, c, d = rules
    assert [p.logop for p in a.premises] == ["AND", "AND", "OR"] and a.priority == 2.0
    p = a.premises[0]
    assert (p.object, p.object_type, p.index, p.variable, p.relation) == ("NODE", "TANK", 1, "LEVEL", ">")
    assert math.isclose(p.value_si, 10 * M_PER_FT) and p.value_file == 10.0 and p.ucf == 1.0
    assert (a.premises[1].object, a.premises[1].value_si) == ("SYSTEM", 21600.0)
    assert (a.premises[2].variable, a.premises[2].status, a.premises[2].relation) == ("STATUS", CLOSED, "=")
    assert a.then_actions[0].status == OPEN and math.isclose(a.then_actions[1].setting_si, 40 * M_PER_FT / PSI_PER_FT)
    assert a.else_actions[0].setting_si == 0.5 and a.else_actions[0].status == -1
    assert b.premises[0].value_si == 36000.0 and b.priority == 5.0
    assert math.isclose(c.premises[0].value_si, 10 * M_PER_FT / PSI_PER_FT) and c.premises[0].ucf == PSI_PER_FT
    assert math.isclose(c.then_actions[0].setting_si, 100 * M3S_PER_GPM)
    assert (c.then_actions[1].status, math.isnan(c.then_actions[1].setting_si)) == (CLOSED, True)  # pipe: 0 = closed
    assert d.premises[0].value_si == 1800.0 and not d.enabled
    internal = to_internal(rules, _sn())
    assert all(isinstance(r, RuleInternal) for r in internal)
    assert math.isclose(internal[2].then_actions[0].setting, 100 / GPM_PER_CFS)


@pytest.mark.parametrize("text, code", [
    ("IF SYSTEM TIME > 1\n", 221), ("RULE 1\nTHEN PUMP PU1 STATUS IS OPEN\n", 221),
    ("RULE 1\nIF TANK T1 LEVEL > 1\nTHEN PUMP PU1 SETTING IS -1\n", 202),
    ("RULE 1\nIF TANK T1 LEVEL > 1\nTHEN VALVE V4 SETTING IS 1\n", 202),
    ("RULE 1\nIF TANK T1 LEVEL > 1\nTHEN PIPE CV5 STATUS IS OPEN\n", 207),
    ("RULE 1\nIF JUNCTION J0 FILLTIME > 1\nTHEN PUMP PU1 STATUS IS OPEN\n", 201),
    ("RULE 1\nIF PUMP PU1 LEVEL > 1\nTHEN PUMP PU1 STATUS IS OPEN\n", 201),
    ("RULE 1\nIF TANK XX LEVEL > 1\nTHEN PUMP PU1 STATUS IS OPEN\n", 203),
    ("RULE 1\nIF SYSTEM FLOW > 1\nTHEN PUMP PU1 STATUS IS OPEN\n", 201),
    ("RULE 1 2\n", 201), ("WHEN\n", 201),
])
def test_rule_errors(text, code):
    with pytest.raises(ControlError) as err:
        _compile("[RULES]\n" + text)
    assert err.value.code == code


def _tank_levels(sn, st):
    """EPANET's tanklevels(), for the hand-made network; leaves dt == 0 scenarios alone."""
    def update(dt):
        for t, n in enumerate(sn.tank_node):
            q = st.node_outflow[n]
            move = (np.abs(q) > 1e-6) & (dt > 0)
            v = st.tank_volume[t] + np.where(move, q * dt, 0.0)
            v = np.where(move & (v + q >= sn.tank_vmax_ft3[t]), sn.tank_vmax_ft3[t], v)
            v = np.where(move & (v + q < sn.tank_vmax_ft3[t]) & (v - q <= sn.tank_vmin_ft3[t]), sn.tank_vmin_ft3[t], v)
            st.tank_volume[t] = v
            st.head[n] = np.where(move, sn.tank_hmin_ft[t] + (v - sn.tank_vmin_ft3[t]) / sn.tank_area_ft2[t], st.head[n])
    return update


def test_rule_check_priority_and_else():
    sn = _sn()
    engine = RuleEngine(_compile(RULES)[1], sn, rule_step_s=360, clock_start_s=0)
    # 0: level 12, 7 AM (rule a THEN, rule b at >= 10 h loses to nothing: 7 h < 10 h)
    # 1: level 12, 11 AM: a (priority 2) and b (priority 5) both act on PU1 -> b wins; V2 still set by a
    # 2: level 8, 3 AM, pump open: a's premises false -> ELSE: PU1 speed 0.5; J0 pressure 30 ft < 10 psi? no
    st = _state(3, [12.0, 12.0, 8.0])
    st.head[0, 2] = 10.0 + 20.0   # 20 ft = 8.67 psi < 10 psi -> rule c acts in scenario 2
    n = engine.check(st, np.array([7 * 3600, 11 * 3600, 3 * 3600]), np.array([360, 360, 360]))
    assert st.status[1].tolist() == [OPEN, CLOSED, OPEN]
    assert st.setting[1].tolist() == [1.0, 0.0, 0.5]
    assert np.allclose(st.setting[2], [40 / PSI_PER_FT, 40 / PSI_PER_FT, 20.0])
    assert st.status[3].tolist() == [OPEN, OPEN, ACTIVE] and math.isclose(st.setting[3, 2], 100 / GPM_PER_CFS)
    assert st.status[0].tolist() == [OPEN, OPEN, CLOSED]
    # 0: PU1 already open at speed 1 -> no action counted; V2 20 -> 40 counted
    assert n.tolist() == [1, 2, 3]
    # again: everything is settled
    assert engine.check(st, np.array([7 * 3600, 11 * 3600, 3 * 3600]), np.array([360, 360, 360])).tolist() == [0, 0, 0]


def test_rule_time_step_and_tank_updates():
    sn = _sn()
    text = "[RULES]\nRULE up\nIF TANK T1 LEVEL ABOVE 12\nTHEN PUMP PU1 STATUS IS CLOSED\n"
    engine = RuleEngine(_compile(text)[1], sn, rule_step_s=360, clock_start_s=0)
    # tank at 10 ft filling at 1 ft3/s = 0.01 ft/s reaches 11.999 ft after ~200 s
    st = _state(4, 10.0, tank_q=[1.0, 1.0, 0.0, 1.0])
    st.status[1, 3], st.setting[1, 3] = CLOSED, 0.0     # already closed: the rule fires without acting
    res = engine.advance(st, np.array([0, 100, 0, 0]), np.array([3600, 3600, 3600, 3600]), _tank_levels(sn, st))
    assert res.tstep.tolist() == [360, 260, 3600, 3600]
    assert res.fired.tolist() == [True, True, False, False]
    assert np.allclose(st.head[1], [113.6, 112.6, 110.0, 120.0 - 0.0])   # scenario 3 filled to the top
    assert st.status[1].tolist() == [CLOSED, CLOSED, OPEN, CLOSED]
    # a scenario with no time step is left alone
    st = _state(2, 10.0, tank_q=1.0)
    res = engine.advance(st, np.array([0, 0]), np.array([0, 1000]), _tank_levels(sn, st))
    assert res.tstep.tolist() == [0, 360] and np.allclose(st.head[1], [110.0, 113.6])


# ----------------------------------------------------------------------------- rules against EPANET's run
RULE_NETWORKS = [p for p in NETWORKS if p.name in ("micropolis.inp", "bwsn1.inp")]


@pytest.mark.parametrize("path", RULE_NETWORKS, ids=[p.name for p in RULE_NETWORKS])
def test_rule_engine_follows_epanet(path, tmp_path):
    """Step EPANET; at every step give our engine EPANET's solution and compare the next step's length,
    the tank levels and the link statuses and settings after the rules (US files: internal = file units)."""
    en, ph, flow_units, sg = _open(path, tmp_path, si=False)
    assert flow_units == "GPM"
    en.settimeparam(ph, en.DURATION, 48 * 3600)
    topo = _topology(en, ph, M_PER_FT)
    controls, rules = _parse(path, topo, flow_units, sg)
    order = topo["order"]
    n_nodes, nj = len(order), int((topo["node_kind"] == NodeKind.JUNCTION).sum())
    tanks = [j for j in range(n_nodes) if topo["node_kind"][j] == NodeKind.TANK]
    tv = lambda name, t: np.array([en.getnodevalue(ph, order[j], name) for j in t])   # noqa: E731
    el = np.array([en.getnodevalue(ph, i, en.ELEVATION) for i in order])
    area = np.pi * tv(en.TANKDIAM, tanks) ** 2 / 4.0
    sn = SimpleNamespace(
        n_nodes=n_nodes, n_junctions=nj, kind=topo["link_kind"], elevation_ft=el, tank_node=np.array(tanks),
        tank_area_ft2=area, tank_hmin_ft=el[tanks] + tv(en.MINLEVEL, tanks),
        tank_hmax_ft=el[tanks] + tv(en.MAXLEVEL, tanks), tank_vmin_ft3=tv(en.MINVOLUME, tanks),
        tank_vmax_ft3=tv(en.MAXVOLUME, tanks), tank_vcurve=np.full(len(tanks), -1),
        curve_offset=np.array([0]), curve_x=np.zeros(0), curve_y=np.zeros(0),
        pump_of_link=np.full(len(topo["link_kind"]), -1), pump_type=np.zeros(0), pump_q0=np.zeros(0),
        pressure_si_to_ft=1.0 / (M_PER_FT * sg), m3s_per_cfs=M3S_PER_GPM * GPM_PER_CFS)
    assert np.all(tv(en.VOLCURVE, tanks) == 0)
    engine = RuleEngine(rules, sn, rule_step_s=en.gettimeparam(ph, en.RULESTEP),
                        clock_start_s=en.gettimeparam(ph, en.STARTTIME))
    controls = to_internal(controls, sn)
    hstep, pstep = en.gettimeparam(ph, en.HYDSTEP), en.gettimeparam(ph, en.PATTERNSTEP)
    pstart, rstep = en.gettimeparam(ph, en.PATTERNSTART), en.gettimeparam(ph, en.REPORTSTEP)
    n_links, batch = len(topo["link_kind"]), 2
    en.openH(ph)
    en.initH(ph, 0)
    rtime, steps, fired = rstep, 0, 0
    while True:
        t = en.runH(ph)
        st = _epanet_state(en, ph, sn, order, tanks, n_links, batch)
        proposed = _proposed_step(sn, st, t, hstep, pstep, pstart, rtime)
        proposed = control_time_step(controls, sn, st, np.full(batch, t), proposed, engine.clock_start_s)
        res = engine.advance(st, np.full(batch, t), proposed, _tank_levels(sn, st))
        tstep = en.nextH(ph)
        if tstep == 0:
            break
        assert res.tstep.tolist() == [tstep] * batch, f"t={t}"
        fired += int(res.fired[0])
        for k in range(n_links):
            s = en.getlinkvalue(ph, k + 1, en.STATUS)
            assert ((st.status[k] > CLOSED) == (s > 0)).all(), f"t={t} link {k}"
            if topo["link_kind"][k] == LinkKind.PUMP:
                assert np.allclose(np.nan_to_num(st.setting[k]), en.getlinkvalue(ph, k + 1, en.SETTING))
        assert np.allclose(st.head[tanks], tv(en.HEAD, tanks)[:, None], rtol=0, atol=1e-9)
        t_next = t + tstep
        if t_next >= rtime:
            rtime += rstep
        steps += 1
    assert steps > 40 and fired > 0
    en.closeH(ph)
    en.close(ph)
    en.deleteproject(ph)


def _epanet_state(en, ph, sn, order, tanks, n_links, batch):
    rows = lambda f: np.tile(np.asarray(f, float)[:, None], (1, batch))   # noqa: E731
    head = rows([en.getnodevalue(ph, i, en.HEAD) for i in order])
    outflow = rows([en.getnodevalue(ph, i, en.DEMAND) / GPM_PER_CFS for i in order])
    flow = rows([en.getlinkvalue(ph, k, en.FLOW) / GPM_PER_CFS for k in range(1, n_links + 1)])
    status = np.zeros((n_links, batch), np.int8)
    setting = np.full((n_links, batch), np.nan)
    for k in range(n_links):
        s = en.getlinkvalue(ph, k + 1, en.STATUS)
        status[k] = CLOSED if s == 0 else (ACTIVE if s == 2 else OPEN)
        if sn.kind[k] == LinkKind.PUMP:
            setting[k] = en.getlinkvalue(ph, k + 1, en.SETTING)
    volume = rows([en.getnodevalue(ph, order[j], en.TANKVOLUME) for j in tanks])
    nj = sn.n_junctions
    z = np.zeros((nj, batch))
    return _hydraulic_state(head=head, flow=flow, status=status, setting=setting, emitter_flow=z, leak_flow=z,
                          demand_flow=z, full_demand=z, node_outflow=outflow, resistance=np.ones((n_links, 1)),
                          leak_ke=z, tank_volume=volume)


def _proposed_step(sn, st, t, hstep, pstep, pstart, rtime):
    """timestep() before the rules: hydraulic step, next pattern period, next report, tanktimestep()."""
    tstep = hstep
    dt = ((t + pstart) // pstep + 1) * pstep - t
    tstep = dt if 0 < dt < tstep else tstep
    dt = rtime - t
    tstep = dt if 0 < dt < tstep else tstep
    for i, n in enumerate(sn.tank_node):
        h, q, v = st.head[n, 0], st.node_outflow[n, 0], st.tank_volume[i, 0]
        if abs(q) <= 1e-6:
            continue
        if q > 0 and h < sn.tank_hmax_ft[i]:
            vol = sn.tank_vmax_ft3[i] - v
        elif q < 0 and h > sn.tank_hmin_ft[i]:
            vol = sn.tank_vmin_ft3[i] - v
        else:
            continue
        xt = vol / q
        if abs(xt) > tstep + 1:
            continue
        tt = int(math.floor(xt + 0.5)) if xt >= 0 else int(math.ceil(xt - 0.5))
        tstep = tt if 0 < tt < tstep else tstep
    return np.full(st.batch_size, tstep, np.int64)


def test_rule_and_control_types_survive_to_internal_twice():
    controls, rules = _compile(CONTROLS)[0], _compile(RULES)[1]
    sn = _sn()
    once = to_internal(controls + rules, sn)
    assert to_internal(once, sn) == once
    assert isinstance(controls[0], SimpleControl) and isinstance(rules[0], Rule)
