"""The HTML export opens offline in headless Chromium without errors (issue 6).

L-Town is exported to one HTML page; Chromium loads it from file:// with every network request made to
fail (a proxy that does not exist, names that do not resolve), so anything the page would fetch from the
web shows up as an error. A small harness script, put at the top of a copy of the page, records script
errors, console errors and failed resource loads, and after load writes them, with the canvases the
viewer created, into the DOM that `--dump-dom` prints. A screenshot must show a drawing, not a blank page.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
LTOWN = SHARED / "networks" / "benchmarks" / "l-town.inp"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
CHROMIUM = next((found for found in map(shutil.which, BROWSERS) if found), None)

pytestmark = [
    pytest.mark.skipif(not LTOWN.is_file(), reason=f"L-Town not found under {SHARED} (../shared is missing)"),
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (make test installs Debian's chromium as root)"),
]

OFFLINE = ["--headless", "--disable-gpu", "--no-sandbox", "--enable-unsafe-swiftshader",
           "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND", "--no-first-run",
           "--disable-extensions", "--disable-background-networking", "--virtual-time-budget=8000"]

HARNESS = """<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  window.__errors.push('error: ' + (e.message || (e.target && (e.target.src || e.target.href)) || 'resource'));
}, true);
window.addEventListener('unhandledrejection', function (e) { window.__errors.push('rejection: ' + e.reason); });
var __consoleError = console.error;
console.error = function () { window.__errors.push('console: ' + Array.from(arguments).join(' '));
                              __consoleError.apply(console, arguments); };
window.addEventListener('load', function () {
  setTimeout(function () {
    var canvases = Array.from(document.querySelectorAll('canvas')).map(function (c) {
      return [c.width, c.height]; });
    var title = document.getElementById('parktwin-title');
    var out = document.createElement('pre'); out.id = 'harness';
    out.textContent = JSON.stringify({errors: window.__errors, canvases: canvases,
                                      title: title ? title.textContent : null});
    document.documentElement.appendChild(out);
  }, 1500);
});
</script>
"""


@pytest.fixture(scope="module")
def ltown_html(tmp_path_factory) -> Path:
    from parktwin.viz import render_network
    out = tmp_path_factory.mktemp("html") / "l-town.html"
    return render_network(LTOWN, None, "elevation", "L-Town, offline page check", out)


def _chromium(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *OFFLINE, *args], capture_output=True, text=True, timeout=timeout)


def test_ltown_html_is_self_contained(ltown_html):
    text = ltown_html.read_text(encoding="utf-8")
    external = re.findall(r"""<(?:script|link|img|iframe)[^>]+(?:src|href)\s*=\s*["']?(?:https?:)?//""", text)
    assert external == [], f"the page loads from the web: {external[:3]}"
    assert "OfflineLocalView.load" in text


def test_ltown_html_opens_offline_without_errors(ltown_html, tmp_path):
    page = tmp_path / "checked.html"
    text = ltown_html.read_text(encoding="utf-8")
    page.write_text(text.replace("<head>", "<head>\n" + HARNESS, 1), encoding="utf-8")
    done = _chromium("--dump-dom", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<pre id="harness">(.*?)</pre>', done.stdout, re.S)
    assert found, "the page never finished loading (no harness report in the DOM)"
    report = json.loads(found.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
                        .replace("&amp;", "&"))
    assert report["errors"] == [], report["errors"]
    assert report["canvases"] and all(w > 0 and h > 0 for w, h in report["canvases"]), report["canvases"]
    assert report["title"] and "L-Town, offline page check" in report["title"]
    uncaught = [line for line in done.stderr.splitlines() if "CONSOLE" in line and "Uncaught" in line]
    assert uncaught == [], uncaught


def test_ltown_html_draws_the_network(ltown_html, tmp_path):
    from PIL import Image
    shot = tmp_path / "shot.png"
    done = _chromium("--window-size=900,700", f"--screenshot={shot}", ltown_html.as_uri())
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    with Image.open(shot) as picture:
        pixels = np.asarray(picture.convert("RGB"))
    colours = np.unique(pixels.reshape(-1, 3), axis=0)
    assert len(colours) > 50, f"only {len(colours)} colours in the browser's rendering: nothing drawn"
