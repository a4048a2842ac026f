"""ParkTwin: batched EPANET-compatible hydraulics and the digital twin of an industrial park's water networks.

The public facade. The layers install under this one namespace (``parktwin.kernels``, ``parktwin.hydraulics``,
``parktwin.scenarios``, ``parktwin.twin``, ``parktwin.viz``, ``parktwin.api``) from the folders at the repository
root. The names below load on first use, so that ``import parktwin.kernels`` stays as light as the kernels are.

    from parktwin import load_network, HydraulicSolver, SolverOptions
    net = load_network("net.inp")
    result = HydraulicSolver(net, SolverOptions(backend="numba")).run()
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# name -> the module that defines it (one home per name; nothing here is redefined)
_EXPORTS = {
    "load_network": "parktwin.hydraulics.compile",
    "HydraulicSolver": "parktwin.hydraulics.solver",
    "SolverOptions": "parktwin.hydraulics.solver",
    "read_perturbations": "parktwin.scenarios.perturbation_files",
    "build_batch": "parktwin.scenarios.batch",
    "run_batch": "parktwin.scenarios.runner",
    "load_park": "parktwin.twin.park",
    "run_park": "parktwin.twin.coupled",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:   # for type checkers and IDEs; at run time the names load lazily
    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions
    from parktwin.scenarios.batch import build_batch
    from parktwin.scenarios.perturbation_files import read_perturbations
    from parktwin.scenarios.runner import run_batch
    from parktwin.twin.coupled import run_park
    from parktwin.twin.park import load_park


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'parktwin' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
