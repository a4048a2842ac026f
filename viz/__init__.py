"""ParkTwin's 3D views: networks, the park and results as PNG pictures or self-contained HTML pages.

    from parktwin.viz import render_network, render_park, render_file

Importing `viz` is cheap: the renderers (and PyVista, imported only when a picture is made) load on
first use.
"""
from __future__ import annotations

_PUBLIC = {
    "render_network": "parktwin.viz.network_view",
    "render_park": "parktwin.viz.park_scene",
    "render_file": "parktwin.viz.views",
    "ViewOptions": "parktwin.viz.options",
    "ParkViewOptions": "parktwin.viz.options",
    "QUANTITIES": "parktwin.viz.quantities",
    "offscreen_problem": "parktwin.viz.probe",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'viz' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(module), name)
