"""Before timing: EPANET's answers and `parktwin run`'s agree on the first scenarios of the bench's table.

EPANET solves them with the loop the bench times (bench.toolkit_loop, same EN_initH flag, same accuracy),
keeping every head and flow (snapshot: t = 0; extended period: every report time). ParkTwin solves them
with `parktwin run ... --precision double`, the command the bench times. Heads and flows are matched by
node and link ID. A scenario either side left unconverged (EPANET warning 1, ParkTwin's
solver/converged false) is left out of the comparison and counted. As DESIGN's validation rule has it,
where EPANET's own answer moves between ACCURACY and a tenth of it (valve-heavy networks such as Pacific
City), either of its answers counts: each head and flow is compared with the nearer of the two.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def check_agreement(network: Path, junction, area, mult, duration_s: int, accuracy: float, init_flag: int,
                    run_parktwin, folder: Path) -> dict:
    """run_parktwin(table, out, extra_args) runs `parktwin run`; returns max |dh| (m), max |dq| (m³/s),
    the scenarios compared, those left out (each side's unconverged; ``parktwin_only``: unconverged by
    ParkTwin where EPANET converged, a mismatch) and the report times."""
    import h5py

    from bench.run_leak_benchmark import write_table
    from bench.toolkit_loop import junction_ids_of, run_toolkit_eps_loop, run_toolkit_loop
    from parktwin.hydraulics.oracle import EpanetProject

    n = len(junction)

    def epanet(acc):
        with EpanetProject(network, accuracy=acc) as ep:
            ids = junction_ids_of(ep), list(ep.node_ids), list(ep.link_ids)
            if duration_s:
                ref = run_toolkit_eps_loop(ep, junction, area, mult, duration_s, keep_results=True,
                                           init_flag=init_flag)
            else:
                ref = run_toolkit_loop(ep, junction, area, mult, keep_results=True, init_flag=init_flag)
                ref["head_m"], ref["flow_m3s"] = ref["head_m"][:, None], ref["flow_m3s"][:, None]
                ref["time_s"] = np.zeros(1, dtype=np.int64)
        return ids, ref

    (junction_ids, node_ids, link_ids), ref = epanet(accuracy)
    _, tight = epanet(accuracy / 10.0)
    ref_times = ref["time_s"]
    ep_ok = ref["converged"]

    table, out = folder / "check.csv", folder / "check.h5"
    write_table(table, junction_ids, junction, area, mult)
    run_parktwin(table, out, ["--precision", "double"])
    with h5py.File(out, "r") as f:
        times = f["time_s"][:]
        pt_nodes = [x.decode() if isinstance(x, bytes) else str(x) for x in f["node/ids"][:]]
        pt_links = [x.decode() if isinstance(x, bytes) else str(x) for x in f["link/ids"][:]]
        head = f["node/head"][:].reshape(n, len(times), -1)
        flow = f["link/flow"][:].reshape(n, len(times), -1)
        pt_ok = f["solver/converged"][:].reshape(n, -1).all(axis=1)
    out.unlink()
    if not np.array_equal(times, ref_times):
        raise SystemExit(f"report times differ: parktwin {times[:3]}... ({len(times)}), "
                         f"EPANET {ref_times[:3]}... ({len(ref_times)})")
    node_pos = {nid: i for i, nid in enumerate(pt_nodes)}
    link_pos = {lid: i for i, lid in enumerate(pt_links)}
    head = head[:, :, [node_pos[i] for i in node_ids]]
    flow = flow[:, :, [link_pos[i] for i in link_ids]]
    both = ep_ok & pt_ok
    # the nearer of EPANET's two answers (ACCURACY and a tenth of it); NaN where the tighter one failed
    dh = np.fmin(np.abs(head[both] - ref["head_m"][both]), np.abs(head[both] - tight["head_m"][both]))
    dq = np.fmin(np.abs(flow[both] - ref["flow_m3s"][both]), np.abs(flow[both] - tight["flow_m3s"][both]))
    return {"head_m": float(dh.max()) if dh.size else float("nan"),
            "flow_m3s": float(dq.max()) if dq.size else float("nan"),
            "compared": int(both.sum()), "epanet_unconverged": int((~ep_ok).sum()),
            "parktwin_unconverged": int((~pt_ok).sum()), "parktwin_only": int((ep_ok & ~pt_ok).sum()),
            "times": len(times)}

