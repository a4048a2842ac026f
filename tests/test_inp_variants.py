"""Files EPANET 2.3 reads that WNTR's reader would refuse or misread, through `parktwin solve`.

Each variant is written from the shared NET1 (which has [TAGS], [VERTICES], [LABELS] and [BACKDROP]
sections): NUL bytes inside lines (EPANET reads a line up to its first NUL, so what follows must be
ignored, here a status that would close a pipe and controls that would act otherwise), odd [BACKDROP],
[LABELS], [TAGS] and [COORDINATES] content, Latin-1 names, quoted IDs with blanks, bytes >= 0x80 after
numbers, CRLF line endings and a line longer than EPANET's 1023-byte read.  Each is solved with the
command's defaults and compared with EPANET on the same file, node by node and link by link (DESIGN.md
tolerances).
"""
from __future__ import annotations

import re

import h5py
import numpy as np
import pytest

from oracle_compare import EPANET_ACCURACY, NETWORKS, compared_nodes, describe, mismatch
from test_cli import cli, ok

NET1 = NETWORKS / "epanet-tests" / "network_one" / "NET1.inp"
pytestmark = pytest.mark.skipif(not NET1.is_file(), reason="../shared/networks is not beside the repository")


def _lines() -> list[bytes]:
    return NET1.read_bytes().replace(b"\r\n", b"\n").split(b"\n")


def _section_edit(lines: list[bytes], section: bytes, edit) -> list[bytes]:
    """Apply edit(line) -> [lines] to every data line of a section."""
    out, sect = [], None
    for ln in lines:
        head = ln.strip().split(b";")[0].strip()
        if head.startswith(b"["):
            sect = head.upper()
            out.append(ln)
        elif sect == section and head:
            out.extend(edit(ln))
        else:
            out.append(ln)
    return out


def _replace_section(lines: list[bytes], section: bytes, body: list[bytes]) -> list[bytes]:
    out, skip = [], False
    for ln in lines:
        head = ln.strip().upper()
        if head.startswith(b"["):
            skip = head.startswith(section)
            out.append(ln)
            if skip:
                out.extend(body)
        elif not skip:
            out.append(ln)
    return out


def nul_bytes() -> bytes:
    lines = _section_edit(_lines(), b"[PIPES]", lambda ln: [
        # read without the NUL this pipe would be closed: EPANET never sees that
        ln.split(b";")[0].rstrip() + b"\x00 0 Closed" if ln.split()[0] == b"110p" else ln])
    # EPANET closes the pump from 6 h (not 6 min) to 9 h and never reads the second control
    lines = _replace_section(lines, b"[CONTROLS]", [b" LINK 9 CLOSED AT TIME 6\x00 MIN",
                                                    b"\x00LINK 9 CLOSED AT TIME 1", b" LINK 9 OPEN AT TIME 9"])
    lines = _section_edit(lines, b"[JUNCTIONS]", lambda ln: [ln + b"\x00\x00 junk 1 2 3"])
    return b"\n".join(lines) + b"\x00" * 32


def display_sections() -> bytes:
    lines = _replace_section(_lines(), b"[BACKDROP]", [
        b" DIMENSIONS 0.00 0.00 10000.00 10000.00 7", b" UNITS Kilometres", b' FILE "my map.bmp"',
        b" OFFSET 0 0 0", b" SOMETHING else entirely", b" UNITS"])
    lines = _replace_section(lines, b"[LABELS]", [b' 6.99 73.63 "Source" 9 extra', b" 1 2",
                                                  b' "unterminated', b" x y z"])
    lines = _replace_section(lines, b"[TAGS]", [b' NODE 10 "Zone A north"', b" link 10p t1 more words",
                                                b" FOO 1 2", b" Node 11 lower"])
    odd = [b" NOSUCH 1 2", b" 10 0x1p4 -0x1.8p1", b" 11 abc 5", b" 12 3", b" 13 nan 5", b" 21 1e2 2E-1 more"]
    return b"\n".join(_section_edit(lines, b"[COORDINATES]", lambda ln: [ln] + odd * (ln.split()[0] == b"32")))


# junction 32 is the only element with that ID and no number in NET1 spells it
LATIN1_NAME = "J\xe932-\xfc"


def latin1_names() -> bytes:
    text = b"\n".join(_lines())
    assert len(re.findall(rb"(?<=\s)32(?=\s)", text)) >= 3
    text = re.sub(rb"(?<=\s)32(?=\s)", LATIN1_NAME.encode("latin-1"), text)
    return text.replace(b"[TITLE]", b"[TITLE]\nR\xe9seau d'essai ; \xe0 comment")


def quoted_ids() -> bytes:
    """IDs with blanks, quoted in the file (WNTR splits its lines at blanks), used by a control too.

    EPANET 2.3.5's gettokens() counts a quoted token with a blank as shorter than it is and reads on past
    the end of the line (into what an earlier line left in its buffer): a line with such an ID is read
    reliably only when blanks follow it, here a comment of blanks (EPANET ends the line at the ';')."""
    text = re.sub(rb"(?<=\s)32(?=\s)", b'"J 32"', b"\n".join(_lines()))
    text = re.sub(rb"(?<=\s)122p(?=\s)", b'"pipe\t122"', text)
    text = re.sub(rb"(?m)^\[CONTROLS\]", b'[CONTROLS]\n LINK "pipe\t122" CLOSED AT TIME 30', text)
    return b"\n".join(ln.split(b";")[0].rstrip() + b" ;" + b" " * 16 if b'"' in ln else ln
                      for ln in text.split(b"\n"))


def stray_bytes() -> bytes:
    """Bytes >= 0x80 right after numbers (EPANET's getfloat() tests the next char as a signed char, so a
    degree sign or a no-break space ends the number) and a no-break space inside an ID (no separator for
    EPANET; WNTR would split the line there)."""
    def edit(ln):
        t = ln.split()
        if t[:1] == [b"11"]:
            return [b" 11 710\xb0 150\xc2\xa0 ;"]
        if t[:1] == [b"11p"]:
            return [b" 11p 11 12 5280\xb0 14 100 0 Open ;"]
        return [ln]
    lines = _section_edit(_section_edit(_lines(), b"[JUNCTIONS]", edit), b"[PIPES]", edit)
    return re.sub(rb"(?<=\s)23(?=\s)", b"J\xa023", b"\n".join(lines))


def crlf_endings() -> bytes:
    return b"\r\n".join(_lines())


def long_line() -> bytes:
    """EPANET reads at most 1023 bytes at once: the rest of a long line is read as a line of its own."""
    def edit(ln):
        if ln.split()[0] != b"2":      # the section's last line: nothing sets node 12 after it
            return [ln]
        head = ln.split(b";")[0].rstrip() + b" ;"
        return [head + b"x" * (1023 - len(head)) + b"\t12 1.5 2.5"]   # sets node 12's coordinates
    return b"\n".join(_section_edit(_lines(), b"[COORDINATES]", edit))


VARIANTS = {f.__name__: f for f in (nul_bytes, display_sections, latin1_names, quoted_ids, stray_bytes,
                                     crlf_endings, long_line)}


def _solve_and_compare(path, tmp_path, duration_s=0):
    from parktwin.hydraulics.oracle import EpanetProject
    out = tmp_path / "result.h5"
    args = ["solve", path, "--out", out, "--accuracy", EPANET_ACCURACY]
    ok(cli(*args, *(["--duration", duration_s] if duration_s else [])))
    with h5py.File(out, "r") as f:
        node_ids = [s.decode() for s in f["node/ids"][()]]
        link_ids = [s.decode() for s in f["link/ids"][()]]
        head, flow = f["node/head"][0].astype(float), f["link/flow"][0].astype(float)
        times = f["time_s"][()]
        assert f["solver/converged"][()].all()
    with EpanetProject(path, accuracy=EPANET_ACCURACY) as ep:
        ref = ep.solve_snapshot() if duration_s == 0 else ep.run_extended(max_time_s=duration_s)
        ni = [node_ids.index(n) for n in ep.node_ids]
        li = [link_ids.index(k) for k in ep.link_ids]
        rh, rq = np.atleast_2d(ref["head_m"]), np.atleast_2d(ref["flow_m3s"])
        np.testing.assert_array_equal(times, np.atleast_1d(ref["time_s"]))
        mask = compared_nodes(ep.node_types, ep.link_nodes, ep.link_types, np.atleast_2d(ref["status"]))
        h, q = head[:, ni], flow[:, li]
        mm = mismatch(h, q, rh, rq, mask)
        assert not mm.any, describe(path.name, ep.node_ids, ep.link_ids, h, q, rh, rq, mm, times)
        return ep.node_ids, rh, rq


@pytest.mark.parametrize("variant", VARIANTS, ids=str)
def test_variant_solves_like_epanet(variant, tmp_path):
    path = tmp_path / f"{variant}.inp"
    path.write_bytes(VARIANTS[variant]())
    node_ids, rh, rq = _solve_and_compare(path, tmp_path)
    # and none of these changes the hydraulics: EPANET gives the original network's answer
    from parktwin.hydraulics.oracle import EpanetProject
    with EpanetProject(NET1, accuracy=EPANET_ACCURACY) as base:
        ref = base.solve_snapshot()
    np.testing.assert_allclose(rq[0], ref["flow_m3s"], rtol=1e-9, atol=1e-12)
    if variant == "latin1_names":
        assert LATIN1_NAME in node_ids
    if variant == "stray_bytes":
        assert "J\xa023" in node_ids
    if variant == "quoted_ids":
        from parktwin.hydraulics.compile import load_network
        net = load_network(path)
        assert "J 32" in net.node_ids and "pipe\t122" in net.link_ids
        assert [net.link_ids[c.link] for c in net.controls] == ["pipe\t122"]


def test_nul_bytes_extended_period(tmp_path):
    """EPANET reads the controls up to their NUL bytes: the pump is closed from 6 h to 9 h."""
    path = tmp_path / "nul.inp"
    path.write_bytes(re.sub(rb"(?im)^\s*duration\s+[^\n]*", b" Duration 24:00", nul_bytes()))
    _solve_and_compare(path, tmp_path, duration_s=86400)


def test_coordinates_as_epanet_reads_them(tmp_path):
    from epanet import toolkit as en

    from parktwin.hydraulics.compile import load_network
    for name in ("display_sections", "long_line"):
        path = tmp_path / f"{name}.inp"
        path.write_bytes(VARIANTS[name]())
        net = load_network(path)
        ph = en.createproject()
        try:
            en.open(ph, str(path), str(tmp_path / "x.rpt"), "")
            for i, node in enumerate(net.node_ids):
                k = en.getnodeindex(ph, node)
                np.testing.assert_allclose(net.xy_m[i], en.getcoord(ph, k), rtol=1e-12, err_msg=node)
        finally:
            en.close(ph)
            en.deleteproject(ph)
    np.testing.assert_allclose(net.xy_m[net.node_index("12")], [1.5, 2.5])


def test_file_epanet_rejects_names_the_line(tmp_path):
    from parktwin.hydraulics.inp_reader import InpError, read_inp
    lines = _lines()
    k = next(i for i, ln in enumerate(lines) if ln.split()[:1] == [b"110p"])
    lines[k] = b" 110p 2 NOWHERE\x00 12 200 18 100"        # an undefined end node: EPANET's error 203
    path = tmp_path / "bad.inp"
    path.write_bytes(b"\r\n".join(lines))
    with pytest.raises(InpError) as info:
        read_inp(path)
    assert info.value.line == k + 1 and "line %d" % (k + 1) in str(info.value) and "203" in str(info.value)
    proc = cli("solve", path, "--out", tmp_path / "bad.h5")
    assert proc.returncode != 0 and "line %d" % (k + 1) in proc.stderr and "Traceback" not in proc.stderr
