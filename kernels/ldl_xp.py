"""Batched numeric LDL^T factorisation and solve, array-namespace generic.

Written only with operations numpy and cupy share, so the cupy backend runs the
very same code on the device.  Work is vectorised over every column of one
elimination-tree level at once (columns of a level are independent) and over
all B scenarios; levels are walked leaves-first for the factorisation and the
forward substitution, roots-first for the backward substitution.
"""
from __future__ import annotations

import contextlib
import weakref
from types import SimpleNamespace

import numpy as np

from .symbolic import SymbolicPlan
from .xp import array_namespace, scatter_add

# A pivot within this fraction of its column's diagonal is a cancellation residue, not information. It
# arises where a zone hangs on closed links only (EPANET gives them 1e-8 conductance so that the matrix
# stays regular): the exact pivot is ~1e-8 while the terms that cancel are ~1e7, so round-off decides its
# sign, and with EPANET's own ordering its Cholesky may pass where ours would stop (C-Town, P951 closed).
# Such pivots are taken as this fraction of the diagonal, positive, whatever their sign; a pivot that is
# negative beyond it still fails as EPANET's error 110.
PIVOT_ROUNDOFF = 1e-12

# Bound on the size of the per-chunk product temporaries (elements, i.e. x8 bytes).
_MAX_CHUNK_ELEMENTS = 1 << 22

_DEVICE_INDEX_ARRAYS = ("perm", "edge_slot", "row_idx", "slot_col",
                        "op_target", "op_a", "op_b", "op_pivot")
_device_plans: "weakref.WeakKeyDictionary[SymbolicPlan, dict]" = weakref.WeakKeyDictionary()


def _plan_arrays(plan: SymbolicPlan, xp) -> SimpleNamespace:
    """Index arrays of the plan on xp's device, uploaded once per (plan, namespace)."""
    if xp is np:
        return SimpleNamespace(**{name: getattr(plan, name) for name in _DEVICE_INDEX_ARRAYS})
    per_namespace = _device_plans.setdefault(plan, {})
    key = xp.__name__
    if key not in per_namespace:
        per_namespace[key] = SimpleNamespace(
            **{name: xp.asarray(getattr(plan, name)) for name in _DEVICE_INDEX_ARRAYS})
    return per_namespace[key]


def _check_shapes(plan: SymbolicPlan, diag, offdiag, rhs) -> int:
    if diag.ndim != 2 or diag.shape[0] != plan.n:
        raise ValueError(f"diag must be [n={plan.n}, B], got {diag.shape}")
    batch = diag.shape[1]
    if offdiag.shape != (plan.m, batch):
        raise ValueError(f"offdiag must be [m={plan.m}, B={batch}], got {offdiag.shape}")
    if rhs.shape != (plan.n, batch):
        raise ValueError(f"rhs must be [n={plan.n}, B={batch}], got {rhs.shape}")
    return batch


def _chunks(start: int, stop: int, batch: int):
    step = max(1, _MAX_CHUNK_ELEMENTS // max(batch, 1))
    for lo in range(start, stop, step):
        yield lo, min(lo + step, stop)


def factorize(plan: SymbolicPlan, diag, offdiag):
    """Return (values [nslots, B], first_bad_position [B]) with L and D in place.

    first_bad_position is the permuted index of the first pivot that is negative
    (beyond PIVOT_ROUNDOFF of its diagonal) or non-finite (n where none).  Bad
    pivots are replaced by 1 so that the scenario keeps running on finite numbers
    without touching the others.
    """
    xp = array_namespace(diag, offdiag)
    idx = _plan_arrays(plan, xp)
    n, batch = plan.n, diag.shape[1]
    values = xp.zeros((plan.nslots, batch), dtype=xp.float64)
    values[:n] = xp.take(xp.asarray(diag, dtype=xp.float64), idx.perm, axis=0)
    if plan.m:
        scatter_add(xp, values, idx.edge_slot, xp.asarray(offdiag, dtype=xp.float64))
    floor = values[:n] * PIVOT_ROUNDOFF
    first_bad = xp.full(batch, n, dtype=xp.int64)
    level_ptr, op_ptr, col_ptr = plan.level_ptr.tolist(), plan.op_ptr.tolist(), plan.col_ptr.tolist()
    for level in range(plan.n_levels):
        c0, c1 = level_ptr[level], level_ptr[level + 1]
        for o0, o1 in _chunks(op_ptr[c0], op_ptr[c1], batch):
            update = values[idx.op_a[o0:o1]] * values[idx.op_b[o0:o1]] * values[idx.op_pivot[o0:o1]]
            scatter_add(xp, values, idx.op_target[o0:o1], -update)
        pivots = values[c0:c1]
        residue = xp.abs(pivots) <= floor[c0:c1]
        pivots = xp.where(residue, floor[c0:c1], pivots)
        bad = xp.logical_not(xp.isfinite(pivots)) | (pivots <= 0)
        positions = xp.arange(c0, c1, dtype=xp.int64)[:, None]
        first_bad = xp.minimum(first_bad, xp.where(bad, positions, n).min(axis=0))
        values[c0:c1] = xp.where(bad, 1.0, pivots)
        s0, s1 = col_ptr[c0], col_ptr[c1]
        if s1 > s0:
            values[n + s0:n + s1] /= values[idx.slot_col[s0:s1]]
    return values, first_bad


def substitute(plan: SymbolicPlan, values, rhs):
    """Solve L D L^T x = rhs with factorised values; x in original node order."""
    xp = array_namespace(values, rhs)
    idx = _plan_arrays(plan, xp)
    n, batch = plan.n, rhs.shape[1]
    work = xp.take(xp.asarray(rhs, dtype=xp.float64), idx.perm, axis=0)
    level_ptr, col_ptr = plan.level_ptr.tolist(), plan.col_ptr.tolist()
    level_slots = [(col_ptr[level_ptr[lv]], col_ptr[level_ptr[lv + 1]]) for lv in range(plan.n_levels)]
    for s_start, s_stop in level_slots:  # forward: L y = b, push column updates to rows
        for s0, s1 in _chunks(s_start, s_stop, batch):
            update = values[n + s0:n + s1] * work[idx.slot_col[s0:s1]]
            scatter_add(xp, work, idx.row_idx[s0:s1], -update)
    work /= values[:n]
    for s_start, s_stop in reversed(level_slots):  # backward: L^T x = z, pull from ancestors
        for s0, s1 in _chunks(s_start, s_stop, batch):
            update = values[n + s0:n + s1] * work[idx.row_idx[s0:s1]]
            scatter_add(xp, work, idx.slot_col[s0:s1], -update)
    solution = xp.empty_like(work)
    solution[idx.perm] = work
    return solution


def solve(plan: SymbolicPlan, diag, offdiag, rhs):
    """Factorise and solve every scenario: returns (x [n, B], bad_node [B]).

    bad_node is -1 where all pivots were positive and finite, else the original
    index of the first (in elimination order) node with a bad pivot.
    """
    xp = array_namespace(diag, offdiag, rhs)
    _check_shapes(plan, diag, offdiag, rhs)
    # Bad scenarios may overflow or produce NaN on purpose; that is reported via
    # bad_node, not via floating-point warnings.
    guard = np.errstate(all="ignore") if xp is np else contextlib.nullcontext()
    with guard:
        values, first_bad = factorize(plan, diag, offdiag)
        solution = substitute(plan, values, rhs)
    idx = _plan_arrays(plan, xp)
    if plan.n == 0:
        return solution, xp.full(diag.shape[1], -1, dtype=xp.int64)
    bad_node = xp.where(first_bad < plan.n, idx.perm[xp.minimum(first_bad, plan.n - 1)], -1)
    return solution, bad_node.astype(xp.int64)
