"""EPANET's unit tables: the conversion factors and flow-unit names EPANET 2.3 (types.h, input1.c) and WNTR
use, each written once.

A leaf module: it imports nothing from `hydraulics`, so the .inp reader, the compiler, the controls
parser and the solver's conversion to internal units all read this one copy without importing each other.
"""
from __future__ import annotations

M_PER_FT = 0.3048
PSI_PER_FT = 0.4333               # EPANET's PSIperFT: psi of water per foot of head
KPA_PER_PSI = 6.895               # EPANET's KPAperPSI
BAR_PER_PSI = 0.068948            # EPANET's BARperPSI
KW_PER_HP = 0.7457
VISCOSITY_FT2S = 1.1e-5           # EPANET's VISCOS: kinematic viscosity of water at 20 C
DIFFUSIVITY_FT2S = 1.3e-8         # EPANET's DIFFUS: molecular diffusivity of chlorine at 20 C

# EPANET's flow-unit keywords in its own order (input2.c matches them by prefix in this order).
FLOW_UNITS = ("CFS", "GPM", "MGD", "IMGD", "AFD", "LPS", "LPM", "MLD", "CMH", "CMD", "CMS")
US_FLOW_UNITS = frozenset(("CFS", "GPM", "MGD", "IMGD", "AFD"))     # the file is in US units (ft, psi)
SI_FLOW_UNITS = ("LPS", "LPM", "MLD", "CMH", "CMD", "CMS")

# EPANET's own factors, flow unit -> (that unit per cfs); see EPANET's types.h.
EPANET_FLOW_PER_CFS = {
    "CFS": 1.0, "GPM": 448.831, "MGD": 0.64632, "IMGD": 0.5382, "AFD": 1.9837,
    "LPS": 28.317, "LPM": 1699.0, "MLD": 2.4466, "CMH": 101.94, "CMD": 2446.6, "CMS": 0.028317,
}
# Exact SI size of each flow unit, as WNTR converts them (m3/s per unit).
SI_PER_FLOW_UNIT = {
    "CFS": 0.028316846592, "GPM": 6.30901964e-05, "MGD": 0.0438126364, "IMGD": 0.05261678,
    "AFD": 0.01427641, "LPS": 0.001, "LPM": 1.0 / 60000.0, "MLD": 1000.0 / 86400.0,
    "CMH": 1.0 / 3600.0, "CMD": 1.0 / 86400.0, "CMS": 1.0,
}


def wntr_flow_unit_factor(flow_units: str) -> float:
    """m3/s per unit, as WNTR converted the file (read from wntr itself where possible)."""
    try:
        # wntr is imported here, not above, so that this leaf stays cheap to import
        from wntr.epanet.util import FlowUnits
        return float(FlowUnits[flow_units].factor)
    except (ImportError, KeyError, AttributeError):
        return SI_PER_FLOW_UNIT[flow_units]
