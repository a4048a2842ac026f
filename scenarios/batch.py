"""A batch of scenarios: ids, per-scenario solver inputs and the perturbation rows that made them."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from typing import TYPE_CHECKING

from parktwin.hydraulics.inputs import BatchInputs

if TYPE_CHECKING:   # scenarios.perturbations imports this module
    from parktwin.scenarios.perturbations import PerturbationTable


@dataclass(frozen=True)
class ScenarioBatch:
    ids: tuple[str, ...]
    inputs: BatchInputs
    perturbations: "PerturbationTable"
    seed: int | None = None

    @property
    def size(self) -> int:
        return len(self.ids)

    def subset(self, rows: np.ndarray | slice) -> "ScenarioBatch":
        idx = np.arange(self.size)[rows]
        ids = tuple(self.ids[i] for i in idx)
        return ScenarioBatch(ids=ids, inputs=self.inputs.subset(idx),
                             perturbations=self.perturbations.for_scenarios(ids), seed=self.seed)
