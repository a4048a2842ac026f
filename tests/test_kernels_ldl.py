"""Batched LDL^T kernels: symbolic plan, numpy/numba/cupy backends, registry."""
from __future__ import annotations

import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from parktwin.kernels import ldl_xp
from parktwin.kernels.registry import available_backends, get_backend
from parktwin.kernels.symbolic import plan_symbolic

REPO_ROOT = Path(__file__).resolve().parents[1]
BATCH = 7


def random_tree_edges(rng, nodes):
    """Random spanning tree over `nodes` (each node links to an earlier one)."""
    order = rng.permutation(nodes)
    return [(order[i], order[rng.integers(0, i)]) for i in range(1, len(order))]


def network_edges(rng, n, n_extra, components=1, n_isolated=0, n_duplicates=0):
    """Edge list of a sparse graph with the requested awkward features.

    The last n_isolated nodes have no edges; the rest are split into
    `components` connected pieces, each a random tree plus extra loop edges.
    """
    connected = np.arange(n - n_isolated)
    edges = []
    for part in np.array_split(connected, components):
        edges += random_tree_edges(rng, part)
        for _ in range(n_extra // components):
            a, b = rng.choice(part, size=2, replace=False)
            edges.append((a, b))
    for index in rng.choice(len(edges), size=n_duplicates, replace=False):
        a, b = edges[index]
        edges.append((b, a))  # parallel edge, stored in the other orientation
    edge_array = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    return edge_array[:, 0], edge_array[:, 1]


def laplacian_batch(rng, n, edge_row, edge_col, batch=BATCH, boundary_fraction=0.1):
    """Weighted graph Laplacians + positive boundary terms: SPD, scenario-varying."""
    m = len(edge_row)
    weights = rng.uniform(0.1, 10.0, size=(m, batch))
    diag = np.zeros((n, batch))
    np.add.at(diag, edge_row, weights)
    np.add.at(diag, edge_col, weights)
    degree = np.bincount(np.r_[edge_row, edge_col], minlength=n)
    # Every component needs a boundary node to be non-singular; isolated nodes too.
    boundary = rng.random(n) < boundary_fraction
    boundary[degree == 0] = True
    boundary[0] = True
    boundary[rng.integers(n // 2, n)] = True
    diag += boundary[:, None] * rng.uniform(0.5, 5.0, size=(n, batch))
    rhs = rng.standard_normal((n, batch))
    return diag, -weights, rhs


def reference_solution(n, edge_row, edge_col, diag, offdiag, rhs):
    solution = np.empty_like(rhs)
    rows = np.r_[edge_row, edge_col, np.arange(n)]
    cols = np.r_[edge_col, edge_row, np.arange(n)]
    for s in range(rhs.shape[1]):
        values = np.r_[offdiag[:, s], offdiag[:, s], diag[:, s]]
        matrix = sp.coo_matrix((values, (rows, cols)), shape=(n, n)).tocsc()  # sums duplicates
        solution[:, s] = spla.spsolve(matrix, rhs[:, s])
    return solution


def assert_matches_reference(n, edge_row, edge_col, diag, offdiag, rhs, solution):
    expected = reference_solution(n, edge_row, edge_col, diag, offdiag, rhs)
    # atol only guards components that happen to be ~0; the bound is rtol 1e-10.
    np.testing.assert_allclose(solution, expected, rtol=1e-10, atol=1e-13 * np.abs(expected).max())


CASES = {
    "connected": dict(n=60, n_extra=25),
    "duplicates_isolated_two_components": dict(n=80, n_extra=30, components=2, n_isolated=3,
                                               n_duplicates=10),
    "tree": dict(n=40, n_extra=0),
    "dense_loops": dict(n=50, n_extra=150, n_duplicates=20),
}


@pytest.fixture(params=sorted(CASES), name="system")
def fixture_system(request):
    rng = np.random.default_rng(zlib.crc32(request.param.encode()))
    case = CASES[request.param]
    edge_row, edge_col = network_edges(rng, **case)
    diag, offdiag, rhs = laplacian_batch(rng, case["n"], edge_row, edge_col)
    return case["n"], edge_row, edge_col, diag, offdiag, rhs


def test_plan_is_consistent(system):
    n, edge_row, edge_col, *_ = system
    plan = plan_symbolic(n, edge_row, edge_col)
    assert sorted(plan.perm.tolist()) == list(range(n))
    assert np.array_equal(plan.perm[plan.iperm], np.arange(n))
    assert plan.nslots == n + plan.fill_nnz
    assert np.all(plan.edge_slot >= n) and np.all(plan.edge_slot < plan.nslots)
    # A level never depends on itself: every parent sits in a strictly later level.
    level_of = np.repeat(np.arange(plan.n_levels), np.diff(plan.level_ptr))
    has_parent = plan.parent >= 0
    assert np.all(level_of[plan.parent[has_parent]] > level_of[has_parent])
    assert np.all(plan.row_idx > plan.slot_col)


def test_tree_has_no_fill():
    rng = np.random.default_rng(3)
    edge_row, edge_col = network_edges(rng, 200, 0)
    plan = plan_symbolic(200, edge_row, edge_col)
    assert plan.fill_nnz == 199 and plan.ordering == "minimum_degree"


def test_minimum_degree_beats_rcm_on_grid():
    side = 30
    index = np.arange(side * side).reshape(side, side)
    edge_row = np.r_[index[:, :-1].ravel(), index[:-1, :].ravel()]
    edge_col = np.r_[index[:, 1:].ravel(), index[1:, :].ravel()]
    plan = plan_symbolic(side * side, edge_row, edge_col)
    assert plan.ordering == "minimum_degree"
    assert plan.fill_nnz < 12 * side * side  # RCM gives ~side^3 = 27,000


def test_rejects_bad_edges():
    with pytest.raises(ValueError, match="self-loop"):
        plan_symbolic(3, np.array([0, 1]), np.array([1, 1]))
    with pytest.raises(ValueError, match=r"\[0, n\)"):
        plan_symbolic(3, np.array([0]), np.array([3]))


def test_numpy_backend_matches_spsolve(system):
    n, edge_row, edge_col, diag, offdiag, rhs = system
    plan = plan_symbolic(n, edge_row, edge_col)
    solution, bad_node = ldl_xp.solve(plan, diag, offdiag, rhs)
    assert bad_node.dtype == np.int64 and np.all(bad_node == -1)
    assert_matches_reference(n, edge_row, edge_col, diag, offdiag, rhs, solution)


@pytest.mark.parametrize("block", [None, 3, 64])
def test_numba_backend_matches_spsolve_and_numpy(system, block):
    from parktwin.kernels import ldl_numba

    n, edge_row, edge_col, diag, offdiag, rhs = system
    plan = plan_symbolic(n, edge_row, edge_col)
    solution, bad_node = ldl_numba.solve(plan, diag, offdiag, rhs, block=block)
    assert np.all(bad_node == -1)
    assert_matches_reference(n, edge_row, edge_col, diag, offdiag, rhs, solution)
    numpy_solution, _ = ldl_xp.solve(plan, diag, offdiag, rhs)
    np.testing.assert_allclose(solution, numpy_solution, rtol=1e-12, atol=0)


def test_no_edges_and_single_scenario():
    plan = plan_symbolic(4, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    diag = np.array([[1.0], [2.0], [4.0], [8.0]])
    rhs = np.ones((4, 1))
    for backend in ("numpy", "numba"):
        solution, bad_node = get_backend(backend).solve(plan, diag, np.zeros((0, 1)), rhs)
        np.testing.assert_allclose(solution[:, 0], [1.0, 0.5, 0.25, 0.125], rtol=1e-15)
        assert bad_node.tolist() == [-1]


def make_bad_scenarios(system):
    """Scenario 2: a connected node with a hugely negative diagonal; scenario 4:
    an isolated node with a zero diagonal; scenario 5: NaN.  Nodes eliminated
    before the broken one never see it, so it is the first bad pivot."""
    n, edge_row, edge_col, diag, offdiag, rhs = system
    diag = diag.copy()
    offdiag = offdiag.copy()
    degree = np.bincount(np.r_[edge_row, edge_col], minlength=n)
    negative_node = int(np.argmax(degree))
    diag[negative_node, 2] = -1e6
    isolated_node = n  # appended below
    diag = np.vstack([diag, np.ones((1, BATCH))])
    diag[isolated_node, 4] = 0.0
    rhs = np.vstack([rhs, np.ones((1, BATCH))])
    offdiag[0, 5] = np.nan
    expected = {2: negative_node, 4: isolated_node}
    return n + 1, edge_row, edge_col, diag, offdiag, rhs, expected


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_bad_pivot_is_reported_and_isolated(system, backend):
    n, edge_row, edge_col, diag, offdiag, rhs, expected = make_bad_scenarios(system)
    plan = plan_symbolic(n, edge_row, edge_col)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # bad scenarios must not even warn
        solution, bad_node = get_backend(backend).solve(plan, diag, offdiag, rhs)
    for scenario, node in expected.items():
        assert bad_node[scenario] == node
    assert bad_node[5] != -1  # NaN: some pivot is non-finite
    good = [s for s in range(BATCH) if s not in (2, 4, 5)]
    assert np.all(bad_node[good] == -1)
    assert_matches_reference(n, edge_row, edge_col, diag[:, good], offdiag[:, good],
                             rhs[:, good], solution[:, good])


def test_bad_node_agrees_between_backends(system):
    n, edge_row, edge_col, diag, offdiag, rhs, _ = make_bad_scenarios(system)
    diag[:, 6] = 0.0  # every pivot bad: the very first column reports
    plan = plan_symbolic(n, edge_row, edge_col)
    _, numpy_bad = get_backend("numpy").solve(plan, diag, offdiag, rhs)
    _, numba_bad = get_backend("numba").solve(plan, diag, offdiag, rhs)
    assert numpy_bad.tolist() == numba_bad.tolist()
    assert numpy_bad[6] == plan.perm[0]


def test_shape_errors_are_clear(system):
    n, edge_row, edge_col, diag, offdiag, rhs = system
    plan = plan_symbolic(n, edge_row, edge_col)
    for backend in ("numpy", "numba"):
        with pytest.raises(ValueError, match="offdiag"):
            get_backend(backend).solve(plan, diag, offdiag[:, :3], rhs)


def cupy_unavailable_reason():
    return available_backends()["cupy"]


def test_registry_reports_cupy_and_names():
    status = available_backends()
    assert set(status) == {"numpy", "numba", "cupy"}
    assert status["numpy"] == "available"
    assert status["numba"] == "available"
    if status["cupy"] != "available":
        assert status["cupy"]  # a human-readable reason
        with pytest.raises(RuntimeError, match="cupy"):
            get_backend("cupy")
        assert get_backend("auto").name == "numba"
    with pytest.raises(ValueError, match="numpy.*numba|numba.*numpy"):
        get_backend("nope")


def test_backend_objects():
    backend = get_backend("numpy")
    assert backend.name == "numpy" and backend.xp is np
    array = np.arange(3.0)
    np.testing.assert_array_equal(backend.to_numpy(backend.asarray(array)), array)
    assert get_backend("numba").name == "numba"


def test_light_imports_do_not_load_heavy_modules():
    heavy = ["cupy", "numba", "ray", "pyvista", "fastapi"]
    code = (
        "import sys\n"
        "import parktwin.kernels.registry, parktwin.kernels.symbolic, parktwin.kernels.ldl_xp, parktwin.kernels.xp\n"
        f"print(','.join(name for name in {heavy!r} if name in sys.modules))\n"
        "parktwin.kernels.registry.available_backends()  # may import cupy to look for a device\n"
        "print('numba' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                            text=True, check=True)
    assert result.stdout.splitlines() == ["", "False"]


@pytest.mark.gpu
@pytest.mark.skipif(cupy_unavailable_reason() != "available",
                    reason=f"cupy backend unavailable: {cupy_unavailable_reason()}")
def test_cupy_matches_numpy(system):
    n, edge_row, edge_col, diag, offdiag, rhs, _ = make_bad_scenarios(system)
    plan = plan_symbolic(n, edge_row, edge_col)
    gpu = get_backend("cupy")
    gpu_solution, gpu_bad = gpu.solve(plan, gpu.asarray(diag), gpu.asarray(offdiag), gpu.asarray(rhs))
    cpu_solution, cpu_bad = get_backend("numpy").solve(plan, diag, offdiag, rhs)
    assert gpu.to_numpy(gpu_bad).tolist() == cpu_bad.tolist()
    good = cpu_bad == -1
    np.testing.assert_allclose(gpu.to_numpy(gpu_solution)[:, good], cpu_solution[:, good],
                               rtol=1e-12, atol=0)
