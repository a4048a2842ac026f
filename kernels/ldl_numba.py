"""Batched numeric LDL^T factorisation and solve as one numba kernel.

Same arithmetic as ldl_xp (same slots, same update list) but sequential over
columns in elimination order and parallel over blocks of scenarios: each
thread copies a block of scenario columns into a private [slot, block]
workspace, so the innermost loop runs over contiguous scenarios (SIMD) and
the workspace of a small network stays in cache for the whole solve.

Imported lazily by the registry: importing numba costs ~0.5 s.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from .ldl_xp import PIVOT_ROUNDOFF
from .symbolic import SymbolicPlan

# 64 float64 scenarios = 512 bytes per slot: long enough SIMD runs, and for an
# EPANET-sized network (a few thousand slots) the block workspace fits in L2.
DEFAULT_BLOCK = 64


# Inner loops index 1-D row views (values[t], values[a], ...) rather than
# values[t, lane]: with 2-D indexing LLVM does not vectorise the lane loop
# (measured 5x slower on the block load alone).

@njit(cache=True, fastmath=False, inline="always", error_model="numpy")
def _load_block(perm, edge_slot, diag, offdiag, rhs, s0, values, work):
    n = work.shape[0]
    width = work.shape[1]
    for slot in range(n, values.shape[0]):
        row = values[slot]
        for lane in range(width):
            row[lane] = 0.0
    for j in range(n):
        row = values[j]
        source = diag[perm[j], s0:s0 + width]
        for lane in range(width):
            row[lane] = source[lane]
    for j in range(n):
        row = work[j]
        source = rhs[perm[j], s0:s0 + width]
        for lane in range(width):
            row[lane] = source[lane]
    for e in range(offdiag.shape[0]):
        row = values[edge_slot[e]]
        source = offdiag[e, s0:s0 + width]
        for lane in range(width):
            row[lane] += source[lane]


@njit(cache=True, fastmath=False, inline="always", error_model="numpy")
def _factor_block(col_ptr, op_ptr, op_target, op_a, op_b, op_pivot, values, first):
    """Left-looking LDL^T in place; first[lane] = first bad pivot position (n if none); pivots within
    PIVOT_ROUNDOFF of their diagonal are cancellation residues and taken as that fraction (ldl_xp)."""
    n = op_ptr.shape[0] - 1
    width = values.shape[1]
    first[:] = n
    floor = np.empty(width)
    for j in range(n):
        diag = values[j]
        for lane in range(width):
            floor[lane] = diag[lane] * PIVOT_ROUNDOFF
        for op in range(op_ptr[j], op_ptr[j + 1]):
            target = values[op_target[op]]
            source_a = values[op_a[op]]
            source_b = values[op_b[op]]
            pivot_k = values[op_pivot[op]]
            for lane in range(width):
                target[lane] -= source_a[lane] * source_b[lane] * pivot_k[lane]
        pivot = values[j]
        for lane in range(width):
            d = pivot[lane]
            if abs(d) <= floor[lane]:
                d = floor[lane]
                pivot[lane] = d
            if not (d > 0.0) or d == np.inf:
                if first[lane] == n:
                    first[lane] = j
                pivot[lane] = 1.0  # keep the bad scenario finite; it is reported
        for p in range(col_ptr[j], col_ptr[j + 1]):
            row = values[n + p]
            for lane in range(width):
                row[lane] /= pivot[lane]


@njit(cache=True, fastmath=False, inline="always", error_model="numpy")
def _substitute_block(col_ptr, row_idx, values, work):
    n = work.shape[0]
    width = work.shape[1]
    for j in range(n):
        y_j = work[j]
        for p in range(col_ptr[j], col_ptr[j + 1]):
            y_r = work[row_idx[p]]
            l_rj = values[n + p]
            for lane in range(width):
                y_r[lane] -= l_rj[lane] * y_j[lane]
    for j in range(n):
        y_j = work[j]
        d_j = values[j]
        for lane in range(width):
            y_j[lane] /= d_j[lane]
    for j in range(n - 1, -1, -1):
        x_j = work[j]
        for p in range(col_ptr[j], col_ptr[j + 1]):
            x_r = work[row_idx[p]]
            l_rj = values[n + p]
            for lane in range(width):
                x_j[lane] -= l_rj[lane] * x_r[lane]


@njit(cache=True, parallel=True, fastmath=False, error_model="numpy")
def _factor_solve_kernel(perm, edge_slot, col_ptr, row_idx, op_ptr, op_target, op_a, op_b,
                         op_pivot, nslots, diag, offdiag, rhs, block, n_workers, solution, first_bad):
    n = diag.shape[0]
    batch = diag.shape[1]
    n_blocks = (batch + block - 1) // block
    # One flat workspace per worker, reused for all its blocks (static round-robin):
    # a fresh allocation per block costs page faults that dominate small networks.
    # Reshaping the flat buffer keeps a ragged last block C-contiguous (SIMD-able).
    for worker in prange(n_workers):
        values_buffer = np.empty(nslots * block)
        work_buffer = np.empty(n * block)
        first_buffer = np.empty(block, dtype=np.int64)
        for blk in range(worker, n_blocks, n_workers):
            s0 = blk * block
            width = min(block, batch - s0)
            values = values_buffer[:nslots * width].reshape((nslots, width))
            work = work_buffer[:n * width].reshape((n, width))
            first = first_buffer[:width]
            _load_block(perm, edge_slot, diag, offdiag, rhs, s0, values, work)
            _factor_block(col_ptr, op_ptr, op_target, op_a, op_b, op_pivot, values, first)
            _substitute_block(col_ptr, row_idx, values, work)
            for j in range(n):
                destination = solution[perm[j], s0:s0 + width]
                x_j = work[j]
                for lane in range(width):
                    destination[lane] = x_j[lane]
            for lane in range(width):
                first_bad[s0 + lane] = first[lane]


def _block_width(batch: int, n_threads: int) -> int:
    # Small batches: split evenly over the threads instead of leaving one idle,
    # rounded to whole SIMD registers.
    per_thread = -(-batch // max(n_threads, 1))
    return max(8, min(DEFAULT_BLOCK, -(-per_thread // 8) * 8))


def solve(plan: SymbolicPlan, diag: np.ndarray, offdiag: np.ndarray, rhs: np.ndarray,
          block: int | None = None):
    """Factorise and solve every scenario: returns (x [n, B], bad_node [B]).

    Same contract as ldl_xp.solve; inputs are numpy arrays [slot, B].  `block`
    is the number of scenarios per work item (default: up to 64, chosen to
    keep all threads busy).
    """
    diag = np.ascontiguousarray(diag, dtype=np.float64)
    offdiag = np.ascontiguousarray(offdiag, dtype=np.float64)
    rhs = np.ascontiguousarray(rhs, dtype=np.float64)
    if diag.ndim != 2 or diag.shape[0] != plan.n:
        raise ValueError(f"diag must be [n={plan.n}, B], got {diag.shape}")
    batch = diag.shape[1]
    if offdiag.shape != (plan.m, batch) or rhs.shape != (plan.n, batch):
        raise ValueError(f"offdiag must be [{plan.m}, {batch}] and rhs [{plan.n}, {batch}], "
                         f"got {offdiag.shape} and {rhs.shape}")
    n_threads = numba.get_num_threads()
    if block is None:
        block = _block_width(batch, n_threads)
    if block < 1:
        raise ValueError("block must be >= 1")
    solution = np.empty((plan.n, batch))
    first_bad = np.empty(batch, dtype=np.int64)
    n_blocks = -(-batch // block)
    n_workers = max(1, min(n_blocks, n_threads))
    _factor_solve_kernel(plan.perm, plan.edge_slot, plan.col_ptr, plan.row_idx, plan.op_ptr,
                         plan.op_target, plan.op_a, plan.op_b, plan.op_pivot, plan.nslots,
                         diag, offdiag, rhs, block, n_workers, solution, first_bad)
    if plan.n == 0:
        return solution, np.full(batch, -1, dtype=np.int64)
    bad_node = np.where(first_bad < plan.n, plan.perm[np.minimum(first_bad, plan.n - 1)], -1)
    return solution, bad_node.astype(np.int64)
