"""EPANET 2.3's pipe leakage ([LEAKAGE], FAVAD), batched: src/leakage.c in the solver's units (ft, cfs).

A pipe leaks Q = Co (A + m H) sqrt(H) along its length (Co = 0.6 sqrt(2g), A the leak area, m its
growth per unit of pressure head H). EPANET gives each half of the pipe to a junction end (the whole
pipe to the junction end of a pipe that joins a tank or reservoir) and models a junction's share as two
emitters in inverted form, H = cfa qfa^2 (fixed area) and H = cva qva^(2/3) (variable area), solved
with the network like every emitter. A junction's leakage is qfa + qva (EPANET's EN_LEAKAGEFLOW).

Units, as EPANET keeps them: a file's C1 is mm² of leak area per 100 length units of pipe and C2 mm²
per unit of head per 100 length units; internally both are per 100 ft (times Ucf[LENGTH], 0.3048 for SI
files). The SI values ParkTwin stores and perturbs (`leak_favad_area_m2`, `leak_favad_expansion`) are m²
per 100 m of pipe and m² per m of head per 100 m of pipe: EPANET's EN_LEAK_AREA / EN_LEAK_EXPAN of a
metric project times 1e-6.
"""
from __future__ import annotations

import numpy as np

from parktwin.hydraulics.network import LinkKind
from parktwin.hydraulics.units_tables import M_PER_FT
from parktwin.kernels.epanet_codes import LEAKAGE_QTOL
from parktwin.kernels.powers import pow_nonneg_array

C_ORIFICE = 4.8149766e-6    # 0.6 sqrt(2 g) in ft^0.5/s, times m² per mm² (leakage.c)
Q_START_CFS = 0.001         # init_node_leakage(): the solver needs a nonzero starting flow
MM2_PER_M2 = 1e6


def internal_per_100ft(si_per_100m):
    """SI m² per 100 m -> EPANET's internal LeakArea / LeakExpan (mm² per 100 ft)."""
    return np.asarray(si_per_100m, float) * MM2_PER_M2 * M_PER_FT


def si_from_file(values, us_units: bool):
    """A file's C1 or C2 -> SI m² per 100 m (input1.c converts with Ucf[LENGTH], then EPANET's
    metric getter divides by 0.3048)."""
    ucf_length = 1.0 if us_units else M_PER_FT
    return np.asarray(values, float) * ucf_length / M_PER_FT / MM2_PER_M2


def node_coefficients(sn, net, area_si, expansion_si):
    """convert_pipe_to_node_leakage() + init_node_leakage(): cfa, cva [Nj, B] (0 = no such leak).

    area_si, expansion_si: [L, B] (or [L, 1]) SI values per pipe; links that are not pipes are ignored."""
    nj = sn.n_junctions
    start, end = sn.start, sn.end
    pipe = net.link_kind <= LinkKind.PIPE
    j1, j2 = start < nj, end < nj
    batch = area_si.shape[1]
    c_area = C_ORIFICE * internal_per_100ft(area_si) / M_PER_FT ** 2
    c_expan = C_ORIFICE * internal_per_100ft(expansion_si) / M_PER_FT
    length = (net.length_m / M_PER_FT / 100.0) * np.where(j1 & j2, 0.5, 1.0)
    use = pipe & (j1 | j2)
    c_area = np.where(use[:, None], c_area * length[:, None], 0.0)
    c_expan = np.where(use[:, None], c_expan * length[:, None], 0.0)
    sum_a = np.zeros((nj, batch))
    sum_e = np.zeros((nj, batch))
    # link by link, start end before end end, as EPANET sums them
    for ends, at_junction in ((start, j1), (end, j2)):
        rows = np.flatnonzero(at_junction & use)
        np.add.at(sum_a, ends[rows], c_area[rows])
        np.add.at(sum_e, ends[rows], c_expan[rows])
    with np.errstate(divide="ignore"):
        cfa = np.where(sum_a > 0.0, 1.0 / np.where(sum_a > 0.0, sum_a, 1.0) ** 2, 0.0)
        cva = np.where(sum_e > 0.0, 1.0 / np.where(sum_e > 0.0, sum_e, 1.0) ** (2.0 / 3.0), 0.0)
    return cfa, cva


def attach(solver, st, inputs) -> None:
    """Give a fresh batch state its FAVAD coefficients and starting flows (None where nothing leaks)."""
    net = solver.net
    area, expan = net.pipe_leak_area_m2, net.pipe_leak_expansion
    given_a, given_e = inputs.leak_favad_area_m2, inputs.leak_favad_expansion
    if area is None and given_a is None and given_e is None:
        return
    zeros = np.zeros(net.n_links)
    area = (zeros if area is None else area)[:, None]
    expan = (zeros if expan is None else expan)[:, None]
    if given_a is not None:
        area = np.where(np.isnan(given_a.T), area, given_a.T)
    if given_e is not None:
        expan = np.where(np.isnan(given_e.T), expan, given_e.T)
    if not ((area > 0).any() or (expan > 0).any()):
        return
    batch = st.batch_size
    area = np.broadcast_to(area, (net.n_links, batch))
    expan = np.broadcast_to(expan, (net.n_links, batch))
    cfa, cva = node_coefficients(solver.sn, net, area, expan)
    st.favad_cfa, st.favad_cva = cfa, cva
    st.favad_qfa = np.where(cfa > 0.0, Q_START_CFS, 0.0)
    st.favad_qva = np.where(cva > 0.0, Q_START_CFS, 0.0)


def active(st) -> bool:
    return getattr(st, "favad_cfa", None) is not None


def _headloss(q, c, n_inv):
    """eval_leak_headloss(): hloss = c q^(1/n) and its gradient, with the barrier that keeps q >= 0."""
    grad = n_inv * c * pow_nonneg_array(np.abs(q), n_inv - 1.0)     # as the fused kernel takes it
    loss = grad * q / n_inv
    a = 1e9 * q
    b = np.sqrt(a * a + 1e-6)
    return loss + (a - b) / 2.0, grad + (1e9 / 2.0) * (1.0 - a / b)


def _both(st):
    """leakage_headloss() of every junction, [Nj, B] each: 0 and 0 where the junction has no leak of that
    kind. Evaluated on the leaking entries only: a pipe-leak study leaks at a few junctions per scenario."""
    out = []
    for q, c, n_inv in ((st.favad_qfa, st.favad_cfa, 2.0), (st.favad_qva, st.favad_cva, 2.0 / 3.0)):
        h, g = np.zeros(c.shape), np.zeros(c.shape)
        at = np.nonzero(c)
        h[at], g[at] = _headloss(q[at], c[at], n_inv)
        out += [h, g]
    return out


def add_coeffs(st, el_j, aii, f, xflow) -> None:
    """leakagecoeffs(): diagonal and rhs terms of every leaking junction, and its outflow in Xflow."""
    nj = aii.shape[0]
    hfa, gfa, hva, gva = _both(st)
    for h, g in ((hfa, gfa), (hva, gva)):
        pos = g > 0.0
        safe = np.where(pos, g, 1.0)
        aii += np.where(pos, 1.0 / safe, 0.0)
        f += np.where(pos, (h + el_j) / safe, 0.0)
    xflow[:nj] -= st.favad_qfa + st.favad_qva


def new_flows(st, pj, relax):
    """newleakageflows(): update qfa and qva from the new pressure heads pj [Nj, B].

    Returns (qsum, dqsum, max change) per scenario, over the junctions whose leakage changed."""
    hfa, gfa, hva, gva = _both(st)
    r = np.asarray(relax)[None, :]
    dqfa = np.where(gfa > 0.0, (hfa - pj) / np.where(gfa > 0.0, gfa, 1.0) * r, 0.0)
    dqva = np.where(gva > 0.0, (hva - pj) / np.where(gva > 0.0, gva, 1.0) * r, 0.0)
    st.favad_qfa -= dqfa
    st.favad_qva -= dqva
    dq = dqfa + dqva
    moved = dq != 0.0
    qsum = np.where(moved, np.abs(st.favad_qfa + st.favad_qva), 0.0).sum(axis=0)
    adq = np.abs(dq)
    return qsum, adq.sum(axis=0), adq.max(axis=0) if adq.size else np.zeros(adq.shape[1])


def converged(st, pj) -> np.ndarray:
    """leakagehasconverged(): the leakage at each junction's pressure head within 1e-4 cfs [B]."""
    cfa, cva = st.favad_cfa, st.favad_cva
    h = np.maximum(pj, 0.0)
    qref = np.zeros(cfa.shape)
    at = np.nonzero(cfa)
    qref[at] = np.sqrt(h[at] / cfa[at])
    at = np.nonzero(cva)
    qref[at] += (h[at] / cva[at]) ** 1.5
    qref = np.where(pj > 0.0, qref, 0.0)
    leaks = (cfa != 0.0) | (cva != 0.0)
    bad = leaks & (np.abs(qref - (st.favad_qfa + st.favad_qva)) > LEAKAGE_QTOL)
    return ~bad.any(axis=0)


def node_leakage(st):
    """EPANET's LeakageFlow [Nj, B] in cfs, or None where nothing leaks this way."""
    return st.favad_qfa + st.favad_qva if active(st) else None
