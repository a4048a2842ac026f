"""The cupy backend on a device against the numba backend, on every shared network (marker `gpu`).

Runs where the cupy backend is available: on a GPU (bench/gpu_check.sh runs it there), or under numba's
CUDA simulator when NUMBA_ENABLE_CUDASIM=1 is set for the whole run (bench/gpu_check.sh --simulate, with
PARKTWIN_GPU_CHECK_ONLY naming the networks to take: a path under the networks folder, or its start). Elsewhere every test skips with the reason.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from cudasim_compare import QUANTITIES, arrays, libm_powers, solve
from oracle_compare import all_networks, network_id

RTOL = 1e-9
SCENARIOS = 32


def _cupy_state() -> str:
    from parktwin.kernels.registry import available_backends
    return available_backends()["cupy"]


def _networks():
    only = os.environ.get("PARKTWIN_GPU_CHECK_ONLY")
    return [p for p in all_networks() if only is None or network_id(p).startswith(only)]


pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(_cupy_state() != "available", reason=f"cupy backend: {_cupy_state()}")]


@pytest.mark.parametrize("path", _networks(), ids=network_id)
def test_device_equals_cpu_backend(path):
    """32 mixed scenarios (leaks, demands, closures, roughness, tank levels, pump speeds, valve settings),
    snapshot: the device's answers equal the numba backend's to 1e-9 relative, the CPU taking its powers
    from libm as the device does (kernels.powers differs from libm in the last bit or two for 16 % of
    arguments, which the penalties of closed links amplify past 1e-9 on small flows)."""
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        device = arrays(solve(path, "cupy", SCENARIOS, 101, 0))
    with libm_powers():
        cpu = arrays(solve(path, "numba", SCENARIOS, 101, 0))
    fallback = [str(w.message) for w in caught if "cupy backend" in str(w.message)]
    for key in QUANTITIES:
        scale = float(np.nanmax(np.abs(cpu[key]), initial=0.0))
        np.testing.assert_allclose(device[key], cpu[key], rtol=RTOL, atol=RTOL * scale,
                                   err_msg=f"{network_id(path)}: {key} {fallback}")
    for key in ("status", "converged", "iterations"):
        np.testing.assert_array_equal(device[key], cpu[key], err_msg=f"{network_id(path)}: {key} {fallback}")
