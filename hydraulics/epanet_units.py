"""The solver's view of a network: EPANET's internal units (ft, cfs) and EPANET's derived coefficients.

Why not SI inside the solver: EPANET's answers depend on constants written in ft and cfs (the closed-link
conductance 1e-8, the low-flow gradient 1e-7, the status tolerances 0.0005 ft and 0.0001 cfs, the
barrier functions of emitters and pressure-driven demands). Converting every constant is error-prone and
each file's flow unit is converted by EPANET with its own rounded factor (28.317 L/s per cfs). So the
solver converts at its boundary, exactly as EPANET does, and every constant applies verbatim;
`NetworkArrays` and every result stay SI.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parktwin.hydraulics.network import HeadlossFormula, LinkKind, NetworkArrays, PumpCurveKind
from parktwin.hydraulics.units_tables import (EPANET_FLOW_PER_CFS, KW_PER_HP, M_PER_FT, PSI_PER_FT, US_FLOW_UNITS,
                                              VISCOSITY_FT2S)
# EPANET's numerical constants (ft, cfs) live in kernels.epanet_codes; imported here for this layer.
from parktwin.kernels.epanet_codes import BIG, CBIG, CSMALL, HTOL, QTOL, QZERO, RQTOL, TINY  # noqa: F401

MINPDIFF = 0.1


@dataclass(frozen=True)
class SolverNetwork:
    """Arrays in EPANET's internal units. Built once from `NetworkArrays`."""

    n_nodes: int
    n_junctions: int
    n_links: int
    start: np.ndarray
    end: np.ndarray
    kind: np.ndarray
    elevation_ft: np.ndarray
    diameter_ft: np.ndarray
    resistance: np.ndarray          # R: pipes by formula, pumps CBIG, valves CSMALL
    minor_ft_per_cfs2: np.ndarray   # Km = 0.02517 K / d^4
    rel_roughness: np.ndarray       # D-W: Kc / d
    viscosity_diameter: np.ndarray  # D-W: viscosity * d
    headloss: HeadlossFormula
    flow_exponent: float            # Hexp
    # pumps, indexed by pump number
    pump_link: np.ndarray
    pump_type: np.ndarray
    pump_h0: np.ndarray
    pump_r: np.ndarray
    pump_n: np.ndarray
    pump_q0: np.ndarray
    pump_hmax: np.ndarray
    pump_curve: np.ndarray
    pump_of_link: np.ndarray        # [L] pump number or -1
    # curves (x, y) in internal units: pump (cfs, ft), GPV (cfs, ft), volume (ft, ft3), PCV (%, %)
    curve_offset: np.ndarray
    curve_x: np.ndarray
    curve_y: np.ndarray
    valve_curve: np.ndarray
    # emitters: head loss = Ke * q^Qexp
    emitter_ke: np.ndarray
    emitter_qexp: float
    emitter_backflow: bool
    # settings conversion (SI -> internal)
    pressure_si_to_ft: float
    m3s_per_cfs: float
    # tanks
    tank_node: np.ndarray
    tank_area_ft2: np.ndarray
    tank_hmin_ft: np.ndarray
    tank_hmax_ft: np.ndarray
    tank_h0_ft: np.ndarray
    tank_vmin_ft3: np.ndarray
    tank_v0_ft3: np.ndarray
    tank_vmax_ft3: np.ndarray
    tank_vcurve: np.ndarray
    tank_can_overflow: np.ndarray
    # PDA
    pda: bool
    pmin_ft: float
    preq_ft: float
    pexp: float


def _fit_power_pump(h0, h1, h2, q1, q2):
    """EPANET's power-function fit h = a - b q^c; None where EPANET rejects the curve."""
    if h0 < TINY or h0 - h1 < TINY or h1 - h2 < TINY or q1 < TINY or q2 - q1 < TINY:
        return None
    c = np.log((h0 - h2) / (h0 - h1)) / np.log(q2 / q1)
    if c <= 0.0 or c > 20.0:
        return None
    b = -(h0 - h1) / q1 ** c
    return h0, b, c


def build_solver_network(net: NetworkArrays) -> SolverNetwork:
    cfs = net.m3s_per_cfs
    opts = net.options
    us = net.flow_units in US_FLOW_UNITS
    sg = opts.specific_gravity
    kind = net.link_kind
    el = net.elevation_m / M_PER_FT
    d = net.diameter_m / M_PER_FT
    length = net.length_m / M_PER_FT
    is_pipe = kind <= LinkKind.PIPE
    resistance = np.full(net.n_links, CSMALL)
    rel_rough = np.zeros(net.n_links)
    visc_d = np.zeros(net.n_links)
    e = net.roughness
    with np.errstate(divide="ignore", invalid="ignore"):
        if opts.headloss == HeadlossFormula.HW:
            hexp = 1.852
            r = 4.727 * length / e ** hexp / d ** 4.871
        elif opts.headloss == HeadlossFormula.DW:
            hexp = 2.0
            r = length / 2.0 / 32.2 / d / (np.pi * d ** 2 / 4.0) ** 2
            rel_rough = np.where(is_pipe, (e / M_PER_FT) / d, 0.0)
            visc = opts.viscosity_ratio * VISCOSITY_FT2S if opts.viscosity_ratio > 1e-3 else (
                opts.viscosity_ratio / (1.0 if us else M_PER_FT ** 2))
            visc_d = np.where(is_pipe, visc * d, 0.0)
        else:
            hexp = 2.0
            r = (4.0 * e / (1.49 * np.pi * d ** 2)) ** 2 * (d / 4.0) ** -1.333 * length
        resistance = np.where(is_pipe, r, resistance)
        resistance[kind == LinkKind.PUMP] = CBIG
        minor = np.where(d > 0, 0.02517 * net.minor_loss / d ** 4, 0.0)

    # Curves to internal units; which conversion depends on the curve's use.
    cx = net.curves.x.copy()
    cy = net.curves.y.copy()
    off = net.curves.offset
    vol_curves = set(int(c) for c in net.tank_volume_curve if c >= 0)
    # A PCV curve maps percent open to percent of the fully open Kv: unit-less, kept as written.
    pcv_curves = set(int(c) for c in net.valve_curve[kind == LinkKind.PCV] if c >= 0)
    for c in range(len(net.curves.ids)):
        sl = slice(off[c], off[c + 1])
        if c in pcv_curves:
            continue
        if c in vol_curves:
            cx[sl] = net.curves.x[sl] / M_PER_FT
            cy[sl] = net.curves.y[sl] / M_PER_FT ** 3
        else:
            cx[sl] = net.curves.x[sl] / cfs
            cy[sl] = net.curves.y[sl] / M_PER_FT

    n_pumps = len(net.pump_link)
    ptype = np.full(n_pumps, PumpCurveKind.NOCURVE, np.int8)
    h0 = np.zeros(n_pumps)
    pr = np.zeros(n_pumps)
    pn = np.ones(n_pumps)
    q0 = np.ones(n_pumps)
    hmax = np.full(n_pumps, BIG)
    for p, k in enumerate(net.pump_link):
        c = net.pump_curve[p]
        if c < 0:
            ptype[p] = PumpCurveKind.CONST_HP
            hp = net.pump_power_kw[p] / KW_PER_HP
            pr[p], pn[p], q0[p] = -8.814 * hp, -1.0, 1.0
            continue
        x, y = cx[off[c]:off[c + 1]], cy[off[c]:off[c + 1]]
        fit = None
        if len(x) == 1:
            fit = _fit_power_pump(1.33334 * y[0], y[0], 0.0, x[0], 2.0 * x[0])
            hmax_c = 1.33334 * y[0]
        elif len(x) == 3 and x[0] == 0.0:
            fit = _fit_power_pump(y[0], y[1], y[2], x[1], x[2])
            hmax_c = y[0]
        if fit is not None:
            a, b, cexp = fit
            ptype[p] = PumpCurveKind.POWER_FUNC
            h0[p], pr[p], pn[p] = -a, -b, cexp
            q0[p] = x[0] if len(x) == 1 else x[1]
            hmax[p] = hmax_c
        else:
            if len(x) in (1, 3) and (len(x) == 1 or x[0] == 0.0):
                raise ValueError(f"pump {net.link_ids[k]}: its curve has no valid power-function fit (EPANET error 227)")
            if np.any(np.diff(y) >= 0):
                raise ValueError(f"pump {net.link_ids[k]}: pump curve head must decrease with flow (EPANET error 227)")
            ptype[p] = PumpCurveKind.CUSTOM
            q0[p] = (x[0] + x[-1]) / 2.0
            hmax[p] = y[0]
    pump_of_link = np.full(net.n_links, -1, np.int64)
    pump_of_link[net.pump_link] = np.arange(n_pumps)

    qexp = 1.0 / opts.emitter_exponent
    ecf = PSI_PER_FT * sg if us else M_PER_FT
    flow_factor = net.m3s_per_cfs / EPANET_FLOW_PER_CFS[net.flow_units]   # m3/s per file unit
    c_user = net.emitter_coeff / flow_factor
    if us:
        c_user = c_user / np.sqrt(PSI_PER_FT / M_PER_FT)   # undo WNTR's psi -> m conversion
    ucf_flow = EPANET_FLOW_PER_CFS[net.flow_units]
    with np.errstate(divide="ignore"):
        ke = np.where(c_user > 0, ucf_flow ** qexp / ecf / np.power(np.where(c_user > 0, c_user, 1.0), qexp), 0.0)

    tn = net.tank_node
    tel = el[tn]
    area = np.pi * (net.tank_diameter_m / M_PER_FT) ** 2 / 4.0
    hmin = tel + net.tank_min_level_m / M_PER_FT
    hmax_t = tel + net.tank_max_level_m / M_PER_FT
    h0_t = tel + net.tank_init_level_m / M_PER_FT
    sn = SolverNetwork(
        n_nodes=net.n_nodes, n_junctions=net.n_junctions, n_links=net.n_links,
        start=net.link_start, end=net.link_end, kind=kind, elevation_ft=el, diameter_ft=d,
        resistance=resistance, minor_ft_per_cfs2=minor, rel_roughness=rel_rough,
        viscosity_diameter=visc_d, headloss=opts.headloss, flow_exponent=hexp,
        pump_link=net.pump_link, pump_type=ptype, pump_h0=h0, pump_r=pr, pump_n=pn, pump_q0=q0,
        pump_hmax=hmax, pump_curve=net.pump_curve, pump_of_link=pump_of_link,
        curve_offset=off, curve_x=cx, curve_y=cy, valve_curve=net.valve_curve,
        emitter_ke=ke, emitter_qexp=qexp, emitter_backflow=opts.emitter_backflow,
        pressure_si_to_ft=(1.0 / (M_PER_FT * sg)) if us else 1.0 / M_PER_FT, m3s_per_cfs=cfs,
        tank_node=tn, tank_area_ft2=area, tank_hmin_ft=hmin, tank_hmax_ft=hmax_t, tank_h0_ft=h0_t,
        tank_vmin_ft3=np.zeros(len(tn)), tank_v0_ft3=np.zeros(len(tn)), tank_vmax_ft3=np.zeros(len(tn)),
        tank_vcurve=net.tank_volume_curve, tank_can_overflow=net.tank_can_overflow,
        pda=opts.demand_model_pda,
        pmin_ft=opts.pda_min_pressure_m * ((1.0 / (M_PER_FT * sg)) if us else 1.0 / M_PER_FT),
        preq_ft=opts.pda_required_pressure_m * ((1.0 / (M_PER_FT * sg)) if us else 1.0 / M_PER_FT),
        pexp=opts.pda_pressure_exponent,
    )
    return _with_tank_volumes(sn, net)


def tank_volume(sn: SolverNetwork, t: int, head_ft):
    """Volume (ft3) of tank t at head h (EPANET's tankvolume)."""
    c = sn.tank_vcurve[t]
    el = sn.elevation_ft[sn.tank_node[t]]
    if c < 0:
        return sn.tank_vmin_ft3[t] + (head_ft - sn.tank_hmin_ft[t]) * sn.tank_area_ft2[t]
    x = sn.curve_x[sn.curve_offset[c]:sn.curve_offset[c + 1]]
    y = sn.curve_y[sn.curve_offset[c]:sn.curve_offset[c + 1]]
    return _interp_extrapolate(x, y, head_ft - el)


def tank_grade(sn: SolverNetwork, t: int, volume_ft3):
    """Head (ft) of tank t holding volume v (EPANET's tankgrade)."""
    c = sn.tank_vcurve[t]
    el = sn.elevation_ft[sn.tank_node[t]]
    if c < 0:
        return sn.tank_hmin_ft[t] + (volume_ft3 - sn.tank_vmin_ft3[t]) / sn.tank_area_ft2[t]
    x = sn.curve_x[sn.curve_offset[c]:sn.curve_offset[c + 1]]
    y = sn.curve_y[sn.curve_offset[c]:sn.curve_offset[c + 1]]
    return el + _interp_extrapolate(y, x, volume_ft3)


def _interp_extrapolate(x, y, v):
    """EPANET's interp(): linear, extrapolated from the end segments."""
    v = np.asarray(v, dtype=float)
    if len(x) == 1:
        return np.full_like(v, y[0])
    k2 = np.clip(np.searchsorted(x, v, side="left"), 1, len(x) - 1)
    k1 = k2 - 1
    dx = x[k2] - x[k1]
    return y[k1] + (v - x[k1]) * (y[k2] - y[k1]) / np.where(dx == 0, 1.0, dx)


def _with_tank_volumes(sn: SolverNetwork, net: NetworkArrays) -> SolverNetwork:
    from dataclasses import replace
    vmin = np.zeros(len(sn.tank_node))
    v0 = np.zeros(len(sn.tank_node))
    vmax = np.zeros(len(sn.tank_node))
    for t in range(len(sn.tank_node)):
        c = sn.tank_vcurve[t]
        if c < 0:
            vmin[t] = net.tank_min_volume_m3[t] / M_PER_FT ** 3
            if vmin[t] == 0.0:
                vmin[t] = (sn.tank_hmin_ft[t] - sn.elevation_ft[sn.tank_node[t]]) * sn.tank_area_ft2[t]
    sn = replace(sn, tank_vmin_ft3=vmin)
    for t in range(len(sn.tank_node)):
        if sn.tank_vcurve[t] >= 0:
            vmin[t] = tank_volume(sn, t, sn.tank_hmin_ft[t])
    sn = replace(sn, tank_vmin_ft3=vmin)
    for t in range(len(sn.tank_node)):
        v0[t] = tank_volume(sn, t, sn.tank_h0_ft[t])
        vmax[t] = tank_volume(sn, t, sn.tank_hmax_ft[t])
    return replace(sn, tank_v0_ft3=v0, tank_vmax_ft3=vmax)
