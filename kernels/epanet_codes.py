"""EPANET 2.3's numerical constants and integer codes, in one place for the numpy, numba and device code.

Names and values as in EPANET's source (types.h, hydcoeffs.c, hydstatus.c); internal units are ft and cfs.
Plain module-level numbers: numba compiles them into the kernels as constants, and importing this module
loads nothing. `hydraulics.network`'s enums (LinkKind, PumpCurveKind) take their values from here.
"""

# hydcoeffs.c / hydraul.c
CSMALL = 1.0e-6      # smallest conductance of a link
CBIG = 1.0e8         # 1 / the conductance of a closed link; penalty of an active valve
QZERO = 1.0e-6       # flow (cfs) below which a link's flow is re-initialised
TINY = 1.0e-6
BIG = 1.0e10
HTOL = 0.0005        # head tolerance of the status checks (ft)
QTOL = 0.0001        # flow tolerance of the status checks (cfs)
RQTOL = 1.0e-7       # smallest head-loss gradient (low-flow linearisation)

# leakage.c
LEAKAGE_QTOL = 0.0001   # leakagehasconverged(): a junction's pipe leakage within this of its law (cfs)

# StatusType
XHEAD, TEMPCLOSED, CLOSED, OPEN, ACTIVE, XFLOW, XFCV, XPRESSURE = range(8)

# LinkType
CVPIPE, PIPE, PUMP, PRV, PSV, PBV, FCV, TCV, GPV, PCV = range(10)

# PumpType
CONST_HP, POWER_FUNC, CUSTOM, NOCURVE = range(4)
