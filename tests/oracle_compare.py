"""Comparison of ParkTwin results with EPANET 2.3 under DESIGN.md's validation rules."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HEAD_TOL_M = 1e-3
FLOW_ABS_TOL_M3S = 1e-5
FLOW_REL_TOL = 1e-3
EPANET_ACCURACY = 1e-5

SHARED = Path(__file__).resolve().parents[2] / "shared"
# PARKTWIN_NETWORKS: the networks elsewhere (a device machine, where ../shared is not beside the checkout).
NETWORKS = Path(os.environ.get("PARKTWIN_NETWORKS", SHARED / "networks"))


def all_networks() -> list[Path]:
    return sorted(NETWORKS.rglob("*.inp"))


def network_id(path: Path) -> str:
    return str(path.relative_to(NETWORKS))


def compared_nodes(node_types, link_nodes, link_types, status) -> np.ndarray:
    """Nodes joined to a tank or reservoir through open links; elsewhere EPANET's head is arbitrary.

    An active FCV fixes a flow, not a head, and EPANET gives it a conductance of 1e-8: a zone fed only
    through one has no defined head, so it does not join its nodes to a source.
    """
    from parktwin.hydraulics.oracle import source_connected_nodes
    fcv = np.asarray(link_types) == 6   # EN_FCV
    joining = np.where(fcv[None, :] & (np.atleast_2d(status) == 2), 0, np.atleast_2d(status))
    mask = source_connected_nodes((np.asarray(node_types), np.asarray(link_nodes)), joining)
    return mask if np.ndim(status) == 2 else mask[0]


@dataclass
class Mismatch:
    head: np.ndarray    # bool, same shape as the compared heads
    flow: np.ndarray

    @property
    def any(self) -> bool:
        return bool(self.head.any() or self.flow.any())


def mismatch(ours_head, ours_flow, ref_head, ref_flow, node_mask, scale: float = 1.0) -> Mismatch:
    """Where heads and flows differ by more than DESIGN.md's tolerances (times `scale`)."""
    head_bad = node_mask & ~(np.abs(ours_head - ref_head) <= scale * HEAD_TOL_M)
    flow_tol = scale * np.maximum(FLOW_ABS_TOL_M3S, FLOW_REL_TOL * np.abs(ref_flow))
    flow_bad = ~(np.abs(ours_flow - ref_flow) <= flow_tol)
    return Mismatch(head_bad, flow_bad)


def describe(name, ids_n, ids_l, ours_h, ours_q, ref_h, ref_q, mm: Mismatch, times=None) -> str:
    lines = [f"{name}: {int(mm.head.sum())} heads and {int(mm.flow.sum())} flows outside tolerance"]
    for kind, bad, ours, ref, ids in (("head", mm.head, ours_h, ref_h, ids_n), ("flow", mm.flow, ours_q, ref_q, ids_l)):
        for idx in np.argwhere(bad)[:5]:
            idx = tuple(idx)
            where = ids[idx[-1]] + (f" at t={times[idx[0]]}" if times is not None and len(idx) > 1 else "")
            lines.append(f"  {kind} {where}: ours {ours[idx]:.9g} epanet {ref[idx]:.9g}")
    return "\n".join(lines)
