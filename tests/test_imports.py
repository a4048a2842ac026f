"""Importing the lower layers must not pull in GPU, cluster, 3D or web stacks (DESIGN.md)."""
import subprocess
import sys

HEAVY = ("cupy", "ray", "pyvista", "fastapi", "numba.cuda", "numba_cuda")


def test_lower_layers_import_light():
    code = (
        "import sys, parktwin.kernels, parktwin.kernels.registry, parktwin.kernels.symbolic, parktwin.kernels.ldl_xp, "
        "parktwin.hydraulics, parktwin.hydraulics.compile, parktwin.hydraulics.solver, parktwin.hydraulics.extended, "
        "parktwin.hydraulics.oracle, parktwin.hydraulics.device, parktwin.scenarios, parktwin.scenarios.perturbations, parktwin.scenarios.store, "
        "parktwin.scenarios.runner\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"loaded at import: {out.stdout.strip()}"
