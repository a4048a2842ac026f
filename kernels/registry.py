"""Backend registry for the batched LDL^T solve (in the style of xarray's).

Each backend has a cheap availability probe and a builder; numba and cupy are
imported only when their backend is probed or built, so importing this module
stays light.  "auto" picks cupy (importable and a CUDA device present), else
numba, else numpy.  With NUMBA_ENABLE_CUDASIM=1 "cupy" is numba's CUDA simulator on the CPU (slow; for
tests of the device kernels), never picked by "auto".
"""
from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

AVAILABLE = "available"


@dataclass(frozen=True)
class Backend:
    """A way to run `solve(plan, diag, offdiag, rhs) -> (x, bad_node)`.

    Inputs may be numpy arrays or arrays of `xp`; results are arrays of `xp`
    (use `to_numpy` to bring them back to the host).
    """

    name: str
    xp: Any
    asarray: Callable[[np.ndarray], Any]
    to_numpy: Callable[[Any], np.ndarray]
    solve: Callable[..., tuple]


def _probe_numpy() -> str:
    return AVAILABLE


def _probe_numba() -> str:
    # find_spec rather than import: probing must not pay numba's import cost.
    if importlib.util.find_spec("numba") is None:
        return "numba not installed"
    return AVAILABLE


def cuda_simulated() -> bool:
    """NUMBA_ENABLE_CUDASIM set (as numba reads it): the cupy backend's kernels run in numba's CUDA
    simulator on NumPy arrays, on the CPU. For CI and for checking the device code without a GPU."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0").strip() not in ("", "0")


def _probe_cupy() -> str:
    if cuda_simulated():
        if importlib.util.find_spec("numba") is None or importlib.util.find_spec("numba.cuda") is None:
            return "NUMBA_ENABLE_CUDASIM is set but numba's CUDA target is not installed"
        return AVAILABLE
    if importlib.util.find_spec("cupy") is None:
        return "cupy not installed"
    try:
        import cupy
    except ImportError as error:
        return f"cupy import failed: {error}"
    try:
        device_count = cupy.cuda.runtime.getDeviceCount()
    except (cupy.cuda.runtime.CUDARuntimeError, RuntimeError, OSError) as error:
        return f"no CUDA device ({error})"
    if device_count < 1:
        return "no CUDA device"
    return AVAILABLE


def _build_numpy() -> Backend:
    from . import ldl_xp

    return Backend(name="numpy", xp=np, asarray=np.asarray, to_numpy=np.asarray,
                   solve=_with_inputs_on(np.asarray, ldl_xp.solve))


def _build_numba() -> Backend:
    # numba's OpenMP workers otherwise spin between kernel calls, taking the core that the Python side
    # (and the background result writer) needs; an explicit user setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        from . import ldl_numba
    except ImportError as error:
        raise RuntimeError(f"numba backend unavailable: numba import failed: {error}") from error
    return Backend(name="numba", xp=np, asarray=np.asarray, to_numpy=np.asarray,
                   solve=_with_inputs_on(np.asarray, ldl_numba.solve))


def _build_cupy() -> Backend:
    if cuda_simulated():
        # The simulated device: the kernels get NumPy arrays; the reference path's LDL^T stays in NumPy.
        from . import ldl_xp
        return Backend(name="cupy", xp=np, asarray=np.asarray, to_numpy=np.asarray,
                       solve=_with_inputs_on(np.asarray, ldl_xp.solve))
    import cupy

    from . import ldl_xp

    return Backend(name="cupy", xp=cupy, asarray=cupy.asarray, to_numpy=cupy.asnumpy,
                   solve=_with_inputs_on(cupy.asarray, ldl_xp.solve))


def _with_inputs_on(asarray, solve):
    @functools.wraps(solve)
    def solve_on_backend(plan, diag, offdiag, rhs):
        return solve(plan, asarray(diag), asarray(offdiag), asarray(rhs))

    return solve_on_backend


# name -> (availability probe, builder); order is the "auto" preference.
_BACKENDS: dict[str, tuple[Callable[[], str], Callable[[], Backend]]] = {
    "cupy": (_probe_cupy, _build_cupy),
    "numba": (_probe_numba, _build_numba),
    "numpy": (_probe_numpy, _build_numpy),
}


def backend_names() -> list[str]:
    return [*_BACKENDS, "auto"]


def available_backends() -> dict[str, str]:
    """name -> "available" or the reason the backend cannot be used here."""
    return {name: probe() for name, (probe, _) in _BACKENDS.items()}


@functools.lru_cache(maxsize=None)
def get_backend(name: str = "auto") -> Backend:
    if name == "auto":
        for candidate, (probe, _) in _BACKENDS.items():
            if candidate == "cupy" and cuda_simulated():
                continue    # the simulator is for testing the kernels, never a default
            if probe() == AVAILABLE:
                return get_backend(candidate)
        raise RuntimeError("no backend available")  # numpy always is; kept for clarity
    if name not in _BACKENDS:
        raise ValueError(f"unknown backend {name!r}; valid names: {', '.join(backend_names())}")
    probe, build = _BACKENDS[name]
    reason = probe()
    if reason != AVAILABLE:
        raise RuntimeError(f"backend {name!r} unavailable: {reason}")
    return build()
