"""A PyVista scene as one self-contained HTML page that opens offline (vtk.js, no server).

PyVista's own `Plotter.export_html` (0.49: `plotter.trame.export_html`) starts a trame web server only to
ask it to serialise the scene, and needs nest_asyncio2 for that. The serialisation itself is trame-vtk's
plain function `serialize` plus its SynchronizationContext, so we call those directly, the way
trame-vtk's `viewport.geometry.view.get.export` handler does, and embed the zipped scene in trame-vtk's
static vtk.js viewer page (`trame_vtk/tools/static_viewer.html`: vtk.js inlined, no external script).

vtk.js draws the geometry, colours and a scalar bar (titled with the scalar array's name, which is why the
arrays are named like 'pressure [m]'); it does not draw VTK text actors, so the title is added to the page
as an HTML overlay.
"""
from __future__ import annotations

import html
import io
import json
import re
import zipfile
from pathlib import Path


def scene_zip(plotter) -> bytes:
    """The plotter's render window serialised for vtk.js' OfflineLocalView (a zip holding index.json)."""
    from trame_vtk.modules.vtk.serializers import (SynchronizationContext, extract_array_hash,
                                                   initialize_serializers, reference_id, serialize)
    initialize_serializers()
    context = SynchronizationContext()
    # New subscription: serialise every dependency, not only those changed since a previous call.
    context.set_ignore_last_dependencies(True)
    render_window = plotter.render_window
    camera = plotter.renderer.GetActiveCamera()
    view = serialize(None, render_window, "1", context, 1)
    if not view:
        raise RuntimeError("vtk.js serialisation of the scene produced nothing")
    view["extra"] = {"vtkRefId": reference_id(render_window), "centerOfRotation": camera.GetFocalPoint(),
                     "camera": reference_id(camera)}
    hashes = {}
    for entry in extract_array_hash(view):
        key = entry["hash"]
        hashes[key] = dict(**entry, content=context.get_cached_data_array(key, False))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.json", json.dumps({"hashes": hashes, "scene": view}),
                         compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def _overlay(title: str, subtitle: str) -> str:
    """A script that adds the title box once the page has loaded. The viewer empties <body> when it
    starts, so the box is attached to <html> itself, after that; textContent keeps the text plain."""
    style = ("position:fixed;top:8px;left:12px;z-index:10;font:16px sans-serif;color:#222;"
             "background:rgba(255,255,255,0.75);padding:4px 8px;border-radius:4px;pointer-events:none")
    return ("<script>\nwindow.addEventListener('load', function () {\n"
            "  var box = document.createElement('div'); box.id = 'parktwin-title';\n"
            f"  box.setAttribute('style', {json.dumps(style)});\n"
            "  var head = document.createElement('b');"
            f" head.textContent = {_js(title)}; box.appendChild(head);\n"
            "  var sub = document.createElement('div'); sub.style.fontSize = '12px';"
            f" sub.textContent = {_js(subtitle)}; box.appendChild(sub);\n"
            "  document.documentElement.appendChild(box);\n});\n</script>\n")


def _js(text: str) -> str:
    """A JavaScript string literal safe inside <script> (no '</' can close the element)."""
    return json.dumps(text).replace("</", "<\\/")


def write_html(plotter, out: Path, title: str, subtitle: str = "") -> Path:
    """Write the plotter's scene to `out` as a self-contained HTML page with the title overlaid."""
    from trame_vtk.tools.vtksz2html import write_html as embed

    page = io.StringIO()
    embed(scene_zip(plotter), page)
    text = page.getvalue()
    marker = "</body>"
    at = text.rfind(marker)
    if at < 0:
        raise RuntimeError("trame-vtk's viewer page has no </body>; cannot add the title")
    text = text[:at] + _overlay(title, subtitle) + text[at:]
    # The page's own <title> too, so a browser tab or a link preview names the scenario.
    text = re.sub(r"<title>.*?</title>", lambda _: f"<title>{html.escape(title)}</title>", text, count=1,
                  flags=re.S)
    out.write_text(text, encoding="utf-8")
    return out
