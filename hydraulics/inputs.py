"""Per-scenario inputs of a batch, as arrays with the scenario axis first (SI units).

`None` means "as in the network". The scenarios layer turns perturbation tables into these; the solver
never sees perturbation rows.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from parktwin.hydraulics.network import NetworkArrays

LEAK_DISCHARGE_COEFF = 0.75
GRAVITY_MS2 = 9.81


@dataclass(frozen=True)
class BatchInputs:
    batch_size: int
    demand_multiplier: np.ndarray | None = None    # [B, Nj], or [B, 1] for all junctions alike
    base_demand_m3s: np.ndarray | None = None      # [B, Nj] replaces the first category (nan = keep)
    leak_area_m2: np.ndarray | None = None         # [B, Nj], dense or scipy.sparse CSR (leaks are few)
    leak_cd: np.ndarray | None = None              # [B, Nj] like leak_area_m2; 0 or absent = 0.75
    roughness: np.ndarray | None = None            # [B, L] (nan = keep)
    link_status: np.ndarray | None = None          # [B, L] int8: -1 keep, 0 closed, 1 open
    tank_level_m: np.ndarray | None = None         # [B, Tk] (nan = keep)
    reservoir_head_m: np.ndarray | None = None     # [B, R] (nan = keep)
    pump_speed: np.ndarray | None = None           # [B, P] (nan = keep)
    valve_setting: np.ndarray | None = None        # [B, L] SI (nan = keep)
    source_quality: np.ndarray | None = None       # [B, N] quality source strength as the file gives it (nan = keep)
    bulk_coeff: np.ndarray | None = None           # [B, L] pipe bulk reaction coefficient, 1/day (nan = keep)
    leak_favad_area_m2: np.ndarray | None = None   # [B, L] pipe leak area, m² per 100 m (nan = keep)
    leak_favad_expansion: np.ndarray | None = None # [B, L] its growth, m² per m of head per 100 m (nan = keep)

    @staticmethod
    def base(batch_size: int = 1) -> "BatchInputs":
        return BatchInputs(batch_size=batch_size)

    def subset(self, rows: np.ndarray) -> "BatchInputs":
        values = {}
        for name in self.__dataclass_fields__:
            v = getattr(self, name)
            values[name] = v[rows] if isinstance(v, np.ndarray) or sp.issparse(v) else v
        values["batch_size"] = len(rows)
        return BatchInputs(**values)

    @staticmethod
    def concatenate(parts: list["BatchInputs"], net: NetworkArrays) -> "BatchInputs":
        total = sum(p.batch_size for p in parts)
        values = {"batch_size": total}
        for name in BatchInputs.__dataclass_fields__:
            if name == "batch_size":
                continue
            if all(getattr(p, name) is None for p in parts):
                values[name] = None
                continue
            filled = [p.filled(name, net) for p in parts]
            if any(sp.issparse(a) for a in filled):
                values[name] = sp.vstack([sp.csr_matrix(a) for a in filled], format="csr")
                continue
            width = max(a.shape[1] for a in filled)
            values[name] = np.concatenate([np.broadcast_to(a, (a.shape[0], width)) for a in filled], axis=0)
        return BatchInputs(**values)

    def filled(self, name: str, net: NetworkArrays) -> np.ndarray:
        """The field as a full array, defaults where it was None."""
        v = getattr(self, name)
        if v is not None:
            return v
        b, nj, nl = self.batch_size, net.n_junctions, net.n_links
        defaults = {
            "demand_multiplier": lambda: np.ones((b, nj)),
            "base_demand_m3s": lambda: np.full((b, nj), np.nan),
            "leak_area_m2": lambda: np.zeros((b, nj)),
            "leak_cd": lambda: np.full((b, nj), LEAK_DISCHARGE_COEFF),
            "roughness": lambda: np.full((b, nl), np.nan),
            "link_status": lambda: np.full((b, nl), -1, np.int8),
            "tank_level_m": lambda: np.full((b, len(net.tank_node)), np.nan),
            "reservoir_head_m": lambda: np.full((b, len(net.reservoir_node)), np.nan),
            "pump_speed": lambda: np.full((b, len(net.pump_link)), np.nan),
            "valve_setting": lambda: np.full((b, nl), np.nan),
            "source_quality": lambda: np.full((b, net.n_nodes), np.nan),
            "bulk_coeff": lambda: np.full((b, nl), np.nan),
            "leak_favad_area_m2": lambda: np.full((b, nl), np.nan),
            "leak_favad_expansion": lambda: np.full((b, nl), np.nan),
        }
        return defaults[name]()
