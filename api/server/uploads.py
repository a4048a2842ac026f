"""What the upload and picture workers run (api.server.sandbox), never the server process itself.

An uploaded .inp is first counted line by line against the upload limits (elements, pattern values,
control lines), so that a file too big to compile is refused in the time it takes to read it, then
read and compiled, then its time steps are checked; a park folder is the same for each of its three
networks, then the park loader. Nothing here solves a network, except the picture of a park's base case.
"""
from __future__ import annotations

import math
import tempfile
from pathlib import Path

from parktwin.api.server.errors import ApiError, scrub
from parktwin.api.server.settings import UploadLimits, env_name
from parktwin.hydraulics.inp_tokens import epanet_rows, section_lines

# .inp section -> the count it adds to (pattern lines add their multipliers, the others one per line)
_COUNTED = {"[JUNCTIONS]": "nodes", "[RESERVOIRS]": "nodes", "[TANKS]": "nodes", "[PIPES]": "links",
            "[PUMPS]": "links", "[VALVES]": "links", "[PATTERNS]": "pattern_values", "[CONTROLS]": "control_lines",
            "[RULES]": "control_lines"}
_CAPS = {"nodes": ("max_nodes", "nodes (junctions, reservoirs and tanks)"),
         "links": ("max_links", "links (pipes, pumps and valves)"),
         "pattern_values": ("max_pattern_values", "pattern multipliers"),
         "control_lines": ("max_control_lines", "lines of controls and rules")}


def scan_counts(path: Path) -> dict[str, int]:
    """Data lines per kind of the .inp at `path`, comments and blank lines left out. A count, not a
    parse: the reader proper comes after, on a file known to be within the limits. Lines and sections
    are told apart by EPANET's own rules (hydraulics.inp_tokens), so a header EPANET reads as a section
    ('[junctions]', '[JUNCTIONS]x') is counted as one, and the file is read a line at a time."""
    counts = dict.fromkeys(_CAPS, 0)
    with open(path, "rb") as fh:
        for sect, line in section_lines(epanet_rows(fh)):
            kind = _COUNTED.get(sect)
            if kind == "pattern_values":
                counts[kind] += max(len(line.toks) - 1, 0)
            elif kind is not None:
                counts[kind] += 1
    return counts


def check_counts(counts: dict[str, int], limits: UploadLimits, filename: str) -> None:
    for kind, n in counts.items():
        setting, words = _CAPS[kind]
        cap = getattr(limits, setting)
        if n > cap:
            raise ApiError(413, f"{filename}: {n} {words}, more than this server's cap of {cap} "
                                f"({env_name(setting)})", "file")


def check_times(net, limits: UploadLimits, filename: str) -> None:
    """The hydraulic, pattern and report steps must share a grid of at least `min_time_step_s` (a solver
    in lockstep stops at every one of them: 3600 s and 3601 s meet every second), and the longest run
    the server makes must report at most `max_report_rows` times."""
    t = net.time
    steps = {"hydraulic": t.hydraulic_step_s, "pattern": t.pattern_step_s, "report": t.report_step_s}
    steps = {k: int(v) for k, v in steps.items() if v and v > 0}
    grid = math.gcd(*steps.values()) if steps else limits.min_time_step_s
    if grid < limits.min_time_step_s:
        given = ", ".join(f"{k} {v} s" for k, v in steps.items())
        raise ApiError(422, f"{filename}: the time steps ({given}) meet every {grid} s, finer than this server's "
                            f"limit of {limits.min_time_step_s} s ({env_name('min_time_step_s')})", "file")
    report_s = steps.get("report", steps.get("hydraulic", limits.longest_run_s))
    rows = limits.longest_run_s // report_s + 1
    if rows > limits.max_report_rows:
        raise ApiError(422, f"{filename}: a report step of {report_s} s gives {rows} report times in a "
                            f"{limits.longest_run_s // 86400}-day run, more than this server's cap of "
                            f"{limits.max_report_rows} ({env_name('max_report_rows')})", "file")


def network_counts(net) -> dict:
    return {"junctions": int(net.n_junctions), "nodes": int(net.n_nodes), "links": int(net.n_links),
            "pumps": int(len(net.pump_link))}


def read_network(path: str, filename: str, limits: UploadLimits) -> dict:
    """The sizes of the uploaded network at `path` (NetworkInfo's counts), or ApiError naming the file,
    the line or the limit."""
    check_counts(scan_counts(Path(path)), limits, filename)
    net = _load(Path(path), filename)
    check_times(net, limits, filename)
    return network_counts(net)


def _load(path: Path, filename: str):
    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.inp_reader import InpError
    try:
        return load_network(path)
    except InpError as exc:
        where = f"{filename}, line {exc.line}" if exc.line else filename
        problem = exc.problem.replace(str(path), filename)
        raise ApiError(422, f"{where}: {scrub(problem)}", "file") from None
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001
        # WNTR raises many types (KeyError, IndexError, RuntimeError, ...) on malformed files; for an
        # upload they all mean "not a readable network", a client error, not a server fault.
        raise ApiError(422, f"{filename}: cannot be read as an EPANET network: "
                            f"{scrub(str(exc).replace(str(path), filename))}", "file") from None


def read_park(folder: str, limits: UploadLimits) -> dict:
    """{"name", "enterprises"} of the park folder at `folder`, or ApiError naming the file, key or limit."""
    from parktwin.twin.park import load_park
    from parktwin.twin.park_schema import NETWORKS, ParkError
    folder_path = Path(folder)
    for name in NETWORKS:
        check_counts(scan_counts(folder_path / f"{name}.inp"), limits, f"{name}.inp")
    try:
        park = load_park(folder_path)
    except ParkError as exc:
        field = exc.key if exc.file == "park.toml" else exc.file
        reason = exc.reason.replace(str(folder_path) + "/", "").replace(str(folder_path), "the zip")
        raise ApiError(422, f"{exc.file}: {exc.key}: {scrub(reason)}", field) from None
    if len(park.enterprises) > limits.max_enterprises:
        raise ApiError(413, f"park.toml: {len(park.enterprises)} enterprises, more than this server's cap of "
                            f"{limits.max_enterprises} ({env_name('max_enterprises')})", "enterprises")
    for name in NETWORKS:
        check_times(_load(folder_path / f"{name}.inp", f"{name}.inp"), limits, f"{name}.inp")
    return {"name": park.name, "enterprises": len(park.enterprises)}


# ---------------------------------------------------------------------- pictures
def park_picture(folder: str, quantity: str) -> bytes:
    """PNG of the park's networks in its snapshot base case, coloured by `quantity`."""
    from parktwin.twin.coupled import run_park
    from parktwin.twin.park import load_park
    from parktwin.viz import render_park
    park = load_park(folder)
    result = run_park(park, duration_s=0)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "picture.png"
        try:
            render_park(park, result=result, quantity=quantity, title=park.name, out=out)
        except ValueError as exc:
            raise ApiError(422, f"quantity: {exc}", "quantity") from None
        return out.read_bytes()


def result_picture(path: str, quantity: str) -> bytes:
    """PNG of a job's result file coloured by `quantity`."""
    from parktwin.viz import render_file
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "picture.png"
        try:
            render_file(Path(path), quantity, out=out)
        except ValueError as exc:
            raise ApiError(422, f"quantity: {exc}", "quantity") from None
        return out.read_bytes()
