"""`parktwin demo`: the bundled example, end to end.

Until the park twin exists, the example is EPANET's Net3 as shipped with WNTR (a pumped network with
tanks and controls): a 24 h extended-period run of the base case, then a batch of leak scenarios, both
written to HDF5 and summarised.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def bundled_network() -> Path:
    import wntr
    path = Path(wntr.__file__).parent / "library" / "networks" / "Net3.inp"
    if not path.exists():
        raise FileNotFoundError(f"the bundled example network is missing: {path}")
    return path


def run_demo(out_dir: Path, console) -> None:
    from hydraulics.compile import load_network
    from hydraulics.solver import SolverOptions
    from scenarios.perturbations import PerturbationTable, build_batch
    from scenarios.runner import run_batch
    from scenarios.store import read_results

    out_dir.mkdir(parents=True, exist_ok=True)
    path = bundled_network()
    net = load_network(path)
    console.print(f"[bold]ParkTwin demo[/] - network {path.name}: {net.n_junctions} junctions, "
                  f"{len(net.tank_node)} tanks, {len(net.reservoir_node)} reservoirs, {net.n_links} links, "
                  f"{len(net.pump_link)} pumps, {len(net.controls)} controls")
    options = SolverOptions(backend="auto")
    base = build_batch(PerturbationTable.from_rows([]), net, scenario_ids=["base"])
    eps_path = out_dir / "net3-24h.h5"
    summary = run_batch(net, base, options, 24 * 3600, eps_path)
    res, _ = read_results(eps_path)
    pressure = res.pressure_m[0][:, : net.n_junctions]
    served = pressure[:, np.asarray(net.node_kind[: net.n_junctions]) == 0]
    console.print(f"24 h base case: {len(res.time_s)} report times, converged at all: {bool(res.converged.all())}, "
                  f"junction pressure {np.nanmin(served):.1f} to {np.nanmax(served):.1f} m "
                  f"({summary.seconds:.2f} s) -> {eps_path}")

    rng = np.random.default_rng(2024)
    n = 200
    junctions = [j for j, base_d in zip(net.junction_ids, _has_demand(net)) if base_d]
    rows = []
    for i in range(n):
        sid = f"leak-{i:03d}"
        rows.append((sid, junctions[rng.integers(len(junctions))], "leak_area_m2", f"{rng.uniform(2e-5, 5e-4):.6g}"))
        rows.append((sid, "*", "demand_multiplier", f"{rng.uniform(0.7, 1.3):.4f}"))
    table = PerturbationTable.from_rows(rows, source="demo")
    batch = build_batch(table, net)
    leak_path = out_dir / "net3-leaks.h5"
    summary = run_batch(net, batch, options, 0, leak_path)
    res, _ = read_results(leak_path)
    leak_total = res.leak_m3s[:, 0].sum(axis=1) * 1000.0
    worst = int(np.argmax(leak_total))
    console.print(f"{n} leak scenarios: converged {summary.n_converged}/{summary.n_scenarios}, "
                  f"{summary.scenarios_per_second:,.0f} scenarios/s; leak outflow "
                  f"{leak_total.min():.2f} to {leak_total.max():.2f} L/s (largest: {batch.ids[worst]}) -> {leak_path}")
    console.print(f"results written under {out_dir}/")


def _has_demand(net) -> np.ndarray:
    has = np.zeros(net.n_junctions, bool)
    has[net.demand_node[net.demand_base_m3s > 0]] = True
    return has
