"""Assembly of the linearised network equations and the flow update (EPANET's matrixcoeffs/newflows).

The sparsity pattern is fixed per network: every link joining two junctions owns one off-diagonal
entry, whatever its status, so the symbolic factorisation is done once (kernels.symbolic) and reused by
every scenario, iteration and time step.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parktwin.hydraulics import coefficients as co
from parktwin.hydraulics import leakage
from parktwin.hydraulics.coefficients import ACTIVE, CLOSED
from parktwin.hydraulics.epanet_units import CBIG, MINPDIFF, SolverNetwork
from parktwin.hydraulics.network import HeadlossFormula, LinkKind, PumpCurveKind

PDA_QTOL = 0.0001


@dataclass
class IterationData:
    """P and Y of every link for one iteration, kept for the flow update."""

    p: np.ndarray
    y: np.ndarray
    max_flow_change: np.ndarray | None = None

    def subset(self, mask):
        return IterationData(self.p[:, mask], self.y[:, mask])


class Assembler:
    def __init__(self, sn: SolverNetwork, backend):
        from parktwin.kernels.symbolic import plan_symbolic_cached
        self.sn = sn
        self.backend = backend
        nj = sn.n_junctions
        n1, n2 = sn.start, sn.end
        j1, j2 = n1 < nj, n2 < nj
        self.edge_links = np.flatnonzero(j1 & j2)
        self.edge_of_link = np.full(sn.n_links, -1, np.int64)
        self.edge_of_link[self.edge_links] = np.arange(len(self.edge_links))
        self.plan = plan_symbolic_cached(nj, n1[self.edge_links], n2[self.edge_links])
        self.j1, self.j2 = j1, j2
        self.groups = co.link_groups(sn)
        self.ctl_valves = self.groups["ctl"]
        self.const_hp = np.array([k for p, k in enumerate(sn.pump_link) if sn.pump_type[p] == PumpCurveKind.CONST_HP],
                                 dtype=np.int64)
        self.el_j = sn.elevation_ft[:nj, None]
        self.diameter4 = sn.diameter_ft ** 4
        self.has_emitter = bool((sn.emitter_ke[:nj] > 0).any())
        self.is_const_hp = np.zeros(sn.n_links, np.bool_)
        self.is_const_hp[self.const_hp] = True
        # Compiled loops for the numba backend; the numpy code below is the reference they must match.
        self.fast = None
        if getattr(backend, "name", "") == "numba":
            from parktwin.kernels import hydraulic_numba
            self.fast = hydraulic_numba
        self._leak_cache = (None, None)
        self._work = {}
        # Scatter plans of the reference path: entry 2k is link k's start node, 2k+1 its end node.
        self._pair_nodes = np.stack([n1, n2], axis=1).reshape(-1)
        self._pair_rows = self._pair_nodes
        self._pair_is_junction = self._pair_nodes < nj
        # The rhs term of a link end goes to that end if it is a junction, else to the other end.
        self._pair_f_rows = np.stack([np.where(j1, n1, n2), np.where(j2, n2, n1)], axis=1).reshape(-1)

    def _buffer(self, name, shape):
        """Reused work arrays: fresh allocations page-fault on first touch, which costs more than the math."""
        buf = self._work.get(name)
        if buf is None or buf.shape != shape:
            buf = np.empty(shape)
            self._work[name] = buf
        return buf

    def _zeros(self, name, shape):
        buf = self._buffer(name, shape)
        buf.fill(0.0)
        return buf

    # ------------------------------------------------------------------ coefficients
    def head_loss_coeffs(self, st):
        sn, xp = self.sn, np
        q, status, setting = st.flow, st.status, st.setting
        p = self._zeros("p", q.shape)
        y = self._zeros("y", q.shape)
        km = sn.minor_ft_per_cfs2[:, None]
        g = self.groups
        rows = g["pipe"]
        if len(rows) and self.fast is not None and sn.headloss != HeadlossFormula.DW:
            r = st.resistance
            q_pow = co.power(np, np.abs(q), sn.flow_exponent - 1.0)
            self.fast.pipe_coeffs_power_law(rows, q, q_pow, status, r, r.shape[1] != 1, sn.minor_ft_per_cfs2,
                                            sn.flow_exponent, p, y)
        elif len(rows):
            p[rows], y[rows] = co.pipe_coeffs(xp, sn, q[rows], status[rows], st.resistance[rows], km[rows],
                                              st.rel_roughness[rows], sn.viscosity_diameter[rows, None])
        for pnum, k in enumerate(sn.pump_link):
            p[k], y[k] = co.pump_coeffs(xp, sn, pnum, q[k], status[k], setting[k])
        rows = g["pbv"]
        if len(rows):
            pv, yv = co.valve_coeffs(xp, q[rows], status[rows], km[rows])
            sv = setting[rows]
            active = ~np.isnan(sv) & (sv != 0.0) & ~(km[rows] * q[rows] ** 2 > sv)
            p[rows] = np.where(active, CBIG, pv)
            y[rows] = np.where(active, np.nan_to_num(sv) * CBIG, yv)
        rows = g["tcv"]
        if len(rows):
            sv = setting[rows]
            km_t = np.where(np.isnan(sv), km[rows], 0.02517 * np.nan_to_num(sv) / self.diameter4[rows, None])
            p[rows], y[rows] = co.valve_coeffs(xp, q[rows], status[rows], km_t)
        rows = g["pcv"]
        if len(rows):
            # pcvcoeff(): a PCV with a setting is a valve whose minor loss is its R at that setting
            km_p = np.where(np.isnan(setting[rows]), km[rows], st.pcv_r)
            p[rows], y[rows] = co.valve_coeffs(xp, q[rows], status[rows], km_p)
        for k in g["gpv"]:
            pv, yv = co.valve_coeffs(xp, q[k], status[k], km[k])
            c = sn.valve_curve[k]
            lo, hi = sn.curve_offset[c], sn.curve_offset[c + 1]
            qa = np.maximum(np.abs(q[k]), co.TINY)
            h0, r = co.curve_segment(xp, sn.curve_x[lo:hi], sn.curve_y[lo:hi], qa)
            r = np.maximum(r, co.TINY)
            closed = status[k] == CLOSED
            p[k] = np.where(closed, pv, 1.0 / r)
            y[k] = np.where(closed, yv, (h0 / r + qa) * co.sgn(xp, q[k]))
        rows = self.ctl_valves
        if len(rows):
            pv, yv = co.valve_coeffs(xp, q[rows], status[rows], km[rows])
            missing = np.isnan(setting[rows])
            p[rows] = np.where(missing, pv, 0.0)
            y[rows] = np.where(missing, yv, 0.0)
        return p, y

    # ------------------------------------------------------------------ assembly and solve
    def build_and_solve(self, st):
        sn = self.sn
        nj = sn.n_junctions
        p, y = self.head_loss_coeffs(st)
        aii, aij, f, xflow = self._link_terms(st, p, y)
        if self.has_emitter:
            hl, hg = co.emitter_headloss(np, sn.emitter_ke[:nj, None], sn.emitter_qexp, st.emitter_flow, sn.emitter_backflow)
            has = sn.emitter_ke[:nj, None] > 0
            aii += np.where(has, 1.0 / hg, 0.0)
            f += np.where(has, (hl + self.el_j) / hg, 0.0)
            xflow[:nj] -= np.where(has, st.emitter_flow, 0.0)
        # Leaks are few per scenario: work on the nonzero entries only.
        li, lb = self._leak_entries(st)
        if len(li):
            q = st.leak_flow[li, lb]
            hl, hg = co.emitter_headloss(np, st.leak_ke[li, lb], 2.0, q, False)
            np.add.at(aii, (li, lb), 1.0 / hg)
            np.add.at(f, (li, lb), (hl + sn.elevation_ft[li]) / hg)
            np.add.at(xflow, (li, lb), -q)
        if sn.pda:
            self._demand_coeffs(st, aii, f)
        if st.favad_cfa is not None:
            leakage.add_coeffs(st, self.el_j, aii, f, xflow)
        xflow[:nj] -= st.demand_flow
        f += xflow[:nj]
        self._valve_coeffs(st, p, y, xflow, aii, aij, f)
        x, bad = self.backend.solve(self.plan, aii, aij, f)
        return self.backend.to_numpy(x), self.backend.to_numpy(bad), IterationData(p, y)

    def _link_terms(self, st, p, y):
        """linkcoeffs(): diagonal, off-diagonal, rhs and nodal flow excess from every link with P != 0."""
        sn = self.sn
        nj = sn.n_junctions
        q, h = st.flow, st.head
        batch = q.shape[1]
        if self.fast is not None:
            aii = self._zeros("aii", (nj, batch))
            aij = self._zeros("aij", (len(self.edge_links), batch))
            f = self._zeros("f", (nj, batch))
            xflow = self._zeros("xflow", (sn.n_nodes, batch))
            self.fast.assemble_links(nj, sn.start, sn.end, self.edge_of_link, q, p, y, h, aii, aij, f, xflow)
            return aii, aij, f, xflow
        # Reference path: the same additions, in the same order, as the compiled loop (link by link,
        # start node before end node), so that both backends agree to the last bit.
        live = p != 0.0
        pl = np.where(live, p, 0.0)
        yl = np.where(live, y, 0.0)
        ql = np.where(live, q, 0.0)
        n1, n2 = sn.start, sn.end
        xflow = np.zeros((sn.n_nodes, batch))
        np.add.at(xflow, self._pair_nodes, np.stack([-ql, ql], axis=1).reshape(-1, batch))
        aij = -pl[self.edge_links]
        aii = np.zeros((nj, batch))
        f = np.zeros((nj, batch))
        f_terms = np.stack([np.where(self.j1[:, None], yl, pl * h[n1]),
                            np.where(self.j2[:, None], -yl, pl * h[n2])], axis=1).reshape(-1, batch)
        aii_terms = np.stack([pl, pl], axis=1).reshape(-1, batch)
        np.add.at(aii, self._pair_rows[self._pair_is_junction], aii_terms[self._pair_is_junction])
        to_junction = self._pair_f_rows < nj
        np.add.at(f, self._pair_f_rows[to_junction], f_terms[to_junction])
        return aii, aij, f, xflow

    def _leak_entries(self, st):
        """(junction, scenario) pairs that carry a leak; cached while the working set is unchanged."""
        key, value = self._leak_cache
        if key is not st.leak_ke:
            value = np.nonzero(st.leak_ke)
            self._leak_cache = (st.leak_ke, value)
        return value

    def _demand_coeffs(self, st, aii, f):
        sn = self.sn
        dp = sn.preq_ft - sn.pmin_ft
        n = 1.0 / sn.pexp
        full = st.full_demand
        has = full > 0.0
        hl, hg = co.demand_headloss(np, st.demand_flow, full, dp, n)
        use = has & (hg > 0.0)
        safe = np.where(use, hg, 1.0)
        aii += np.where(use, 1.0 / safe, 0.0)
        f += np.where(use, (hl + self.el_j + sn.pmin_ft) / safe, 0.0)

    def _valve_coeffs(self, st, p, y, xflow, aii, aij, f):
        """PRV/PSV/FCV with a setting, in EPANET's valve order (each may change Xflow for the next)."""
        sn = self.sn
        nj = sn.n_junctions
        km = sn.minor_ft_per_cfs2
        for k in self.ctl_valves:
            has_setting = ~np.isnan(st.setting[k])
            if not has_setting.any():
                continue
            n1, n2 = sn.start[k], sn.end[k]
            e = self.edge_of_link[k]
            q = st.flow[k]
            setting = np.nan_to_num(st.setting[k])
            active = has_setting & (st.status[k] == ACTIVE)
            passive = has_setting & ~active
            kind = sn.kind[k]
            pv, yv = co.valve_coeffs(np, q, st.status[k], np.full(q.shape, km[k]))
            if kind == LinkKind.FCV:
                xflow[n1] -= np.where(active, setting, 0.0)
                xflow[n2] += np.where(active, setting, 0.0)
                if n1 < nj:
                    f[n1] -= np.where(active, setting, 0.0)
                if n2 < nj:
                    f[n2] += np.where(active, setting, 0.0)
                pa = 1.0 / CBIG
                ya = q - setting
                p[k] = np.where(active, pa, np.where(passive, pv, p[k]))
                y[k] = np.where(active, ya, np.where(passive, yv, y[k]))
                self._add_link(k, e, n1, n2, np.where(has_setting, p[k], 0.0), np.where(passive, yv - q, 0.0), aii, aij, f)
                continue
            if kind == LinkKind.PRV:
                hset = sn.elevation_ft[n2] + setting
                ya = q + xflow[n2]
                row_fix, row_other, xf = n2, n1, xflow[n2]
                spill = np.where(active & (xf < 0.0), xf, 0.0)
            else:
                hset = sn.elevation_ft[n1] + setting
                ya = q - xflow[n1]
                row_fix, row_other, xf = n1, n2, xflow[n1]
                spill = np.where(active & (xf > 0.0), xf, 0.0)
            if row_fix < nj:
                f[row_fix] += np.where(active, hset * CBIG, 0.0)
                aii[row_fix] += np.where(active, CBIG, 0.0)
            if row_other < nj:
                f[row_other] += spill
            p[k] = np.where(active, 0.0, np.where(passive, pv, p[k]))
            y[k] = np.where(active, ya, np.where(passive, yv, y[k]))
            link_p = np.where(passive, pv, 0.0)
            if kind == LinkKind.PSV:
                link_p = np.where(active, 1.0 / CBIG, link_p)
                # EPANET adds the connectivity term to the downstream diagonal only.
                if n2 < nj:
                    aii[n2] += np.where(active, 1.0 / CBIG, 0.0)
                if e >= 0:
                    aij[e] -= np.where(active, 1.0 / CBIG, 0.0)
                self._add_link(k, e, n1, n2, np.where(passive, pv, 0.0), np.where(passive, yv - q, 0.0), aii, aij, f)
            else:
                self._add_link(k, e, n1, n2, link_p, np.where(passive, yv - q, 0.0), aii, aij, f)

    def _add_link(self, k, e, n1, n2, pk, rhs, aii, aij, f):
        nj = self.sn.n_junctions
        if e >= 0:
            aij[e] -= pk
        if n1 < nj:
            aii[n1] += pk
            f[n1] += rhs
        if n2 < nj:
            aii[n2] += pk
            f[n2] -= rhs

    # ------------------------------------------------------------------ flow update
    def new_flows(self, st, it: IterationData, relax, accuracy: float):
        sn = self.sn
        nj = sn.n_junctions
        h = st.head
        batch = h.shape[1]
        if self.fast is not None:
            qsum, dqsum, maxchange = np.zeros(batch), np.zeros(batch), np.zeros(batch)
            inflow = self._zeros("inflow", (sn.n_nodes, batch))
            self.fast.update_link_flows(sn.start, sn.end, self.is_const_hp, st.flow, it.p, it.y, h,
                                        np.ascontiguousarray(relax, dtype=float), st.status, nj,
                                        qsum, dqsum, maxchange, inflow)
            st.node_outflow[nj:] = inflow[nj:]
        else:
            dh = h[sn.start] - h[sn.end]
            dq = (it.y - it.p * dh) * relax
            if len(self.const_hp):
                rows = self.const_hp
                dq[rows] = np.where(dq[rows] > st.flow[rows], st.flow[rows] / 2.0, dq[rows])
            st.flow -= dq
            qsum = np.abs(st.flow).sum(axis=0)
            dqsum = np.abs(dq).sum(axis=0)
            maxchange = np.abs(dq).max(axis=0) if dq.size else np.zeros(batch)
            qo = np.where(st.status > CLOSED, st.flow, 0.0)
            inflow = np.zeros((sn.n_nodes, batch))
            np.add.at(inflow, self._pair_nodes, np.stack([-qo, qo], axis=1).reshape(-1, batch))
            st.node_outflow[nj:] = inflow[nj:]
        pj = h[:nj] - self.el_j
        if self.has_emitter:
            has = sn.emitter_ke[:nj, None] > 0
            hl, hg = co.emitter_headloss(np, sn.emitter_ke[:nj, None], sn.emitter_qexp, st.emitter_flow, sn.emitter_backflow)
            de = np.where(has, (hl - pj) / hg * relax, 0.0)
            st.emitter_flow -= de
            qsum += np.abs(np.where(has, st.emitter_flow, 0.0)).sum(axis=0)
            dqsum += np.abs(de).sum(axis=0)
            maxchange = np.maximum(maxchange, np.abs(de).max(axis=0))
        li, lb = self._leak_entries(st)
        if len(li):
            q = st.leak_flow[li, lb]
            hl, hg = co.emitter_headloss(np, st.leak_ke[li, lb], 2.0, q, False)
            dl = (hl - pj[li, lb]) / hg * relax[lb]
            st.leak_flow[li, lb] = q - dl
            np.add.at(qsum, lb, np.abs(q - dl))
            np.add.at(dqsum, lb, np.abs(dl))
            np.maximum.at(maxchange, lb, np.abs(dl))
        if sn.pda:
            dd = self._new_demand_flows(st, pj, relax)
            qsum += np.abs(np.where(st.full_demand > 0, st.demand_flow, 0.0)).sum(axis=0)
            dqsum += np.abs(dd).sum(axis=0)
            maxchange = np.maximum(maxchange, np.abs(dd).max(axis=0))
        if st.favad_cfa is not None:
            lq, ldq, lmax = leakage.new_flows(st, pj, relax)
            qsum += lq
            dqsum += ldq
            maxchange = np.maximum(maxchange, lmax)
        it.max_flow_change = maxchange
        return np.where(qsum > accuracy, dqsum / np.where(qsum > 0, qsum, 1.0), dqsum)

    def _new_demand_flows(self, st, pj, relax):
        sn = self.sn
        dp = max(sn.preq_ft - sn.pmin_ft, MINPDIFF)
        n = 1.0 / sn.pexp
        full = st.full_demand
        has = full > 0.0
        hl, hg = co.demand_headloss(np, st.demand_flow, full, dp, n)
        dq = np.where(has, (hl - (pj - sn.pmin_ft)) / hg * relax, 0.0)
        cap = 0.4 * np.abs(full)
        dq = np.where(np.abs(dq) > cap, 0.4 * co.sgn(np, dq) * full, dq)
        dq = np.where(has, dq, 0.0)
        st.demand_flow -= dq
        return dq

    def pda_converged(self, st) -> np.ndarray:
        sn = self.sn
        nj = sn.n_junctions
        dp = sn.preq_ft - sn.pmin_ft
        p = st.head[:nj] - self.el_j
        full = st.full_demand
        r = np.clip((p - sn.pmin_ft) / (dp if dp > 0 else 1.0), 0.0, None)
        q = np.where(p <= sn.pmin_ft, 0.0, np.where(p >= sn.preq_ft, full, full * r ** sn.pexp))
        bad = (full > 0.0) & (np.abs(q - st.demand_flow) > PDA_QTOL)
        return ~bad.any(axis=0)

    def leakage_converged(self, st) -> np.ndarray:
        return leakage.converged(st, st.head[: self.sn.n_junctions] - self.el_j)

    def max_head_error(self, st) -> np.ndarray:
        p, y = self.head_loss_coeffs(st)
        h = st.head
        dh = h[self.sn.start] - h[self.sn.end]
        use = (st.status > CLOSED) & (p != 0.0)
        err = np.where(use, np.abs(dh - y / np.where(p != 0.0, p, 1.0)), 0.0)
        return err.max(axis=0)
