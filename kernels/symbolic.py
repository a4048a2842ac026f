"""Symbolic analysis for the batched LDL^T solve (done once per network).

The sparsity pattern of the head matrix is fixed per network, so everything
that depends only on the pattern (ordering, fill, elimination tree, the flat
list of numeric update operations, the level schedule) is computed here once
with numpy/scipy and reused for every scenario, Newton iteration and time step.

Slot numbering used by the numeric kernels (a "slot" is one row of the
[slot, B] value array):
  * slots 0 .. n-1        : diagonal of column j (holds A_jj, then the pivot d_j);
  * slots n .. n+fill-1   : strictly-lower entries of L, column by column in the
                            permuted order, rows ascending within a column.
"""
from __future__ import annotations

import hashlib
import heapq
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import reverse_cuthill_mckee


@dataclass(frozen=True, eq=False)  # eq=False: identity hash, so device caches can key on a plan
class SymbolicPlan:
    n: int
    m: int
    fill_nnz: int           # nonzeros of L strictly below the diagonal
    nslots: int             # n + fill_nnz
    ordering: str           # which fill-reducing ordering won
    perm: np.ndarray        # [n] new -> old
    iperm: np.ndarray       # [n] old -> new (== diagonal slot of each original node)
    parent: np.ndarray      # [n] elimination tree in permuted numbering, -1 for roots
    col_ptr: np.ndarray     # [n+1] off-diagonal slot ranges per column (add n for the slot)
    row_idx: np.ndarray     # [fill_nnz] permuted row of each off-diagonal slot
    slot_col: np.ndarray    # [fill_nnz] permuted column of each off-diagonal slot
    edge_slot: np.ndarray   # [m] slot receiving each input edge (duplicates share a slot)
    node_diag_slot: np.ndarray  # [n] diagonal slot of each original node
    # Left-looking update list: vals[op_target] -= vals[op_a] * vals[op_b] * vals[op_pivot],
    # sorted by target column; ops of column j are op_ptr[j]:op_ptr[j+1].
    op_target: np.ndarray
    op_a: np.ndarray
    op_b: np.ndarray
    op_pivot: np.ndarray
    op_ptr: np.ndarray      # [n+1]
    # Columns are numbered so that each elimination-tree level (height, leaves first)
    # is a contiguous column range level_ptr[l]:level_ptr[l+1]; columns in one level
    # never depend on each other, in the factorisation nor in either substitution.
    level_ptr: np.ndarray

    @property
    def n_levels(self) -> int:
        return len(self.level_ptr) - 1

    @property
    def n_ops(self) -> int:
        return len(self.op_target)


def _adjacency_sets(n: int, edge_row: np.ndarray, edge_col: np.ndarray) -> list[set[int]]:
    adjacency: list[set[int]] = [set() for _ in range(n)]
    for r, c in zip(edge_row.tolist(), edge_col.tolist()):
        adjacency[r].add(c)
        adjacency[c].add(r)
    return adjacency


def minimum_degree_order(n: int, adjacency: list[set[int]]) -> np.ndarray:
    """Plain minimum-degree elimination on the explicit filled graph.

    Ties go to the lowest node index so the ordering is deterministic.  A lazy
    heap keeps selection O(log n); stale entries are skipped on pop.
    """
    graph = [set(neighbours) for neighbours in adjacency]
    heap = [(len(graph[v]), v) for v in range(n)]
    heapq.heapify(heap)
    eliminated = np.zeros(n, dtype=bool)
    order = []
    while heap:
        degree, v = heapq.heappop(heap)
        if eliminated[v] or degree != len(graph[v]):
            continue
        eliminated[v] = True
        order.append(v)
        clique = graph[v]
        for u in clique:
            neighbours = graph[u]
            neighbours.discard(v)
            neighbours |= clique
            neighbours.discard(u)
            heapq.heappush(heap, (len(neighbours), u))
        graph[v] = set()
    return np.asarray(order, dtype=np.int64)


def _column_structure(n: int, adjacency: list[set[int]], perm: np.ndarray):
    """Row structure of every column of L and the elimination tree, for a given order.

    Uses struct(L_j) = adj_upper(j) U (struct(L_c) for children c) minus {j}.
    """
    iperm = np.empty(n, dtype=np.int64)
    iperm[perm] = np.arange(n)
    iperm_list = iperm.tolist()
    structure: list[list[int]] = [[] for _ in range(n)]
    children: list[list[int]] = [[] for _ in range(n)]
    parent = np.full(n, -1, dtype=np.int64)
    for j, old in enumerate(perm.tolist()):
        rows = {iperm_list[u] for u in adjacency[old]}
        for c in children[j]:
            rows.update(structure[c])
        rows = sorted(r for r in rows if r > j)
        structure[j] = rows
        if rows:
            parent[j] = rows[0]
            children[rows[0]].append(j)
    return structure, parent


def _fill_count(structure: list[list[int]]) -> int:
    return sum(len(rows) for rows in structure)


def _heights(parent: np.ndarray) -> np.ndarray:
    height = [0] * len(parent)
    for j, p in enumerate(parent.tolist()):  # children always precede parents
        if p >= 0 and height[p] < height[j] + 1:
            height[p] = height[j] + 1
    return np.asarray(height, dtype=np.int64)


_PLAN_CACHE: "OrderedDict[tuple, SymbolicPlan]" = OrderedDict()
_PLAN_LOCK = threading.Lock()      # the API solves what-ifs on several threads
_PLAN_CACHE_SIZE = 16


def plan_symbolic_cached(n: int, edge_row: np.ndarray, edge_col: np.ndarray) -> SymbolicPlan:
    """`plan_symbolic`, remembered by graph: a park run builds a solver per network per call (each what-if
    is a new copy of the network with new patterns, same pipes), and the plan is most of that cost."""
    edge_row = np.ascontiguousarray(edge_row, dtype=np.int64)
    edge_col = np.ascontiguousarray(edge_col, dtype=np.int64)
    key = (int(n), len(edge_row), hashlib.sha1(edge_row.tobytes() + b"|" + edge_col.tobytes()).hexdigest())
    with _PLAN_LOCK:
        plan = _PLAN_CACHE.get(key)
        if plan is not None:
            _PLAN_CACHE.move_to_end(key)
            return plan
    plan = plan_symbolic(n, edge_row, edge_col)
    with _PLAN_LOCK:
        _PLAN_CACHE[key] = plan
        while len(_PLAN_CACHE) > _PLAN_CACHE_SIZE:
            _PLAN_CACHE.popitem(last=False)
    return plan


def plan_symbolic(n: int, edge_row: np.ndarray, edge_col: np.ndarray) -> SymbolicPlan:
    """Ordering, fill pattern, update list and level schedule for an n-node graph.

    Edge e couples nodes edge_row[e] != edge_col[e]; parallel edges are allowed
    (their values are summed into one slot).  Isolated nodes and several
    components are fine: they just become separate elimination trees.
    """
    edge_row = np.asarray(edge_row, dtype=np.int64).ravel()
    edge_col = np.asarray(edge_col, dtype=np.int64).ravel()
    m = len(edge_row)
    if len(edge_col) != m:
        raise ValueError("edge_row and edge_col must have the same length")
    if m and (edge_row.min() < 0 or edge_col.min() < 0 or max(edge_row.max(), edge_col.max()) >= n):
        raise ValueError("edge endpoints must lie in [0, n)")
    if np.any(edge_row == edge_col):
        raise ValueError("self-loop edges are not allowed (put them in diag)")

    adjacency = _adjacency_sets(n, edge_row, edge_col)
    candidates = {"minimum_degree": minimum_degree_order(n, adjacency)}
    if m:
        pattern = sp.coo_matrix((np.ones(m), (edge_row, edge_col)), shape=(n, n)).tocsr()
        candidates["reverse_cuthill_mckee"] = np.asarray(
            reverse_cuthill_mckee(pattern + pattern.T, symmetric_mode=True), dtype=np.int64)
    best = None
    for name, order in candidates.items():
        structure, parent = _column_structure(n, adjacency, order)
        fill = _fill_count(structure)
        if best is None or fill < best[0]:
            best = (fill, name, order, structure, parent)
    fill_nnz, ordering, order, structure, parent = best

    # Renumber by elimination-tree height: a topological order of the tree, so the
    # filled graph (and every numeric operation) is unchanged, but each level
    # becomes a contiguous column range.
    height = _heights(parent)
    by_level = np.argsort(height, kind="stable")           # new position -> old position
    position = np.empty(n, dtype=np.int64)
    position[by_level] = np.arange(n)
    perm = order[by_level]
    iperm = np.empty(n, dtype=np.int64)
    iperm[perm] = np.arange(n)
    position_list = position.tolist()
    structure = [sorted(position_list[r] for r in structure[old]) for old in by_level.tolist()]
    parent = np.where(parent[by_level] >= 0, position[np.maximum(parent[by_level], 0)], -1)
    level_ptr = np.searchsorted(height[by_level], np.arange(height.max(initial=-1) + 2))

    counts = np.fromiter((len(rows) for rows in structure), dtype=np.int64, count=n)
    col_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=col_ptr[1:])
    row_idx = np.fromiter((r for rows in structure for r in rows), dtype=np.int64, count=fill_nnz)
    slot_col = np.repeat(np.arange(n, dtype=np.int64), counts)
    slot_key = slot_col * n + row_idx  # sorted: column-major, rows ascending

    def slot_of(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Slot of L entry (row > col), or the diagonal slot when row == col."""
        keys = cols * n + rows
        found = np.searchsorted(slot_key, keys)
        off = rows != cols
        if np.any(slot_key[np.minimum(found[off], max(fill_nnz - 1, 0))] != keys[off]):
            raise AssertionError("symbolic pattern misses an entry; ordering bug")
        return np.where(off, n + found, cols)

    new_row, new_col = iperm[edge_row], iperm[edge_col]
    edge_slot = slot_of(np.maximum(new_row, new_col), np.minimum(new_row, new_col))

    op_target, op_a, op_b, op_pivot, op_col = _update_operations(n, col_ptr, row_idx, counts, slot_of)
    op_ptr = np.searchsorted(op_col, np.arange(n + 1))

    return SymbolicPlan(
        n=n, m=m, fill_nnz=int(fill_nnz), nslots=n + int(fill_nnz), ordering=ordering,
        perm=perm, iperm=iperm, parent=parent, col_ptr=col_ptr, row_idx=row_idx,
        slot_col=slot_col, edge_slot=edge_slot, node_diag_slot=iperm.copy(),
        op_target=op_target, op_a=op_a, op_b=op_b, op_pivot=op_pivot, op_ptr=op_ptr,
        level_ptr=level_ptr.astype(np.int64),
    )


def _update_operations(n, col_ptr, row_idx, counts, slot_of):
    """Every (i >= j) update that column k pushes onto column j, for all k.

    For rows r_p <= r_q of struct(L_k): A[r_q, r_p] -= L[r_q,k] * L[r_p,k] * d_k.
    Sorted by (target column, source column, target row) so that the ops of one
    column are contiguous and those of one level are too.
    """
    pair_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    pieces = []
    for k in np.flatnonzero(counts).tolist():
        length = int(counts[k])
        if length not in pair_cache:
            pair_cache[length] = np.triu_indices(length)
        p, q = pair_cache[length]
        base = n + col_ptr[k]
        pieces.append((row_idx[col_ptr[k] + q], row_idx[col_ptr[k] + p], base + q, base + p,
                       np.full(len(p), k, dtype=np.int64)))
    if not pieces:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty, empty
    target_row, target_col, a, b, pivot = (np.concatenate(parts) for parts in zip(*pieces))
    order = np.lexsort((target_row, pivot, target_col))
    target_row, target_col = target_row[order], target_col[order]
    target = slot_of(target_row, target_col)
    return target, a[order], b[order], pivot[order], target_col
