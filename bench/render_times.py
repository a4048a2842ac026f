"""Time the 3D views (issue 6): L-Town and Pacific City, base-case pressure, to PNG and to HTML.

    .venv/bin/python -m bench.render_times [--repeats 3]

Each timing is the whole figure: tubes, junctions, glyphs, labels, scalar bar, camera, render and file
written (the network is compiled and solved beforehand, untimed: that is the solver's benchmark). The
first render of the process also pays for importing PyVista/VTK and creating the EGL context; it is
reported apart ("cold"). Targets: L-Town < 5 s, Pacific City < 20 s.
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "networks" / "benchmarks"
NETWORKS = {"L-Town": SHARED / "l-town.inp", "Pacific City": SHARED / "pacific-city.inp"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions
    from parktwin.viz import render_network
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
    first = True
    with tempfile.TemporaryDirectory() as folder:
        for name, path in NETWORKS.items():
            if not path.is_file():
                print(f"{name}: {path} not found, skipped")
                continue
            net = load_network(path)
            pressure = HydraulicSolver(net, SolverOptions()).run(None, 0).pressure_m[0, 0]
            for suffix in (".png", ".html"):
                times = []
                for _ in range(args.repeats + (1 if first else 0)):
                    out = Path(folder) / f"{path.stem}{suffix}"
                    started = time.perf_counter()
                    render_network(net, pressure, "pressure", f"{name}: pressure, base case", out)
                    times.append(time.perf_counter() - started)
                if first:
                    print(f"{name} {suffix}: cold (imports + EGL context) {times.pop(0):.2f} s")
                    first = False
                size = out.stat().st_size / 1e6
                print(f"{name} {suffix}: {net.n_junctions} junctions, {net.n_links} links: best {min(times):.2f} s, "
                      f"median {sorted(times)[len(times) // 2]:.2f} s over {len(times)} ({size:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
