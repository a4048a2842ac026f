"""Importing the lower layers must not pull in GPU, cluster, 3D or web stacks (DESIGN.md)."""
import subprocess
import sys

HEAVY = ("cupy", "ray", "pyvista", "fastapi")


def test_lower_layers_import_light():
    code = (
        "import sys, kernels, kernels.registry, kernels.symbolic, kernels.ldl_xp, hydraulics, "
        "hydraulics.compile, hydraulics.solver, hydraulics.extended, hydraulics.oracle, scenarios, "
        "scenarios.perturbations, scenarios.store, scenarios.runner\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"loaded at import: {out.stdout.strip()}"
