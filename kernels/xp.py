"""Array-namespace dispatch: the same kernel code runs on numpy and cupy arrays."""
from __future__ import annotations

import numpy as np


def _is_cupy_array(array) -> bool:
    # Checked by module name so that cupy is never imported just to dispatch.
    return type(array).__module__.startswith("cupy")


def array_namespace(*arrays):
    """cupy if any argument is a cupy ndarray, else numpy."""
    for array in arrays:
        if _is_cupy_array(array):
            import cupy

            return cupy
    return np


def scatter_add(xp, target, index, values) -> None:
    """target[index[i]] += values[i] with repeated indices accumulated (in place)."""
    if xp is np:
        np.add.at(target, index, values)
    else:
        import cupyx

        cupyx.scatter_add(target, index, values)
