"""Can this machine render off screen? Asked in a subprocess, once per process.

VTK aborts the whole process (not an exception) where EGL or the GL drivers are missing or broken, so a
long-running process (the API server, the demo) asks a child first and, where it cannot render, says why
instead of dying.
"""
from __future__ import annotations

import subprocess
import sys
from functools import lru_cache

PROBE = ("import os; os.environ.setdefault('VTK_DEFAULT_OPENGL_WINDOW', 'vtkEGLRenderWindow'); "
         "import pyvista as pv; p = pv.Plotter(off_screen=True, window_size=(64, 48)); "
         "p.add_mesh(pv.Sphere(), color='red'); img = p.screenshot(return_img=True); "
         "assert img.shape == (48, 64, 3) and img.std() > 0, 'blank'")


@lru_cache(maxsize=1)
def offscreen_problem() -> str:
    """'' if VTK can render off screen here, else one line saying why not and what to install."""
    try:
        done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return "off-screen rendering probe timed out"
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return (f"off-screen rendering unavailable ({tail}); install libegl1 and libgl1-mesa-dri "
                "(make demo and make test do so as root)")
    return ""
