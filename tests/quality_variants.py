"""Public EPANET example networks (WNTR's library: Net1 chlorine, Net2 fluoride, Net3) and variants of
them that exercise every part of the quality engine the shared networks leave out: wall reactions of
both orders, bulk orders and limiting potentials, roughness correlation, per-pipe and per-tank
coefficients, every source type, every tank mixing model, AGE and TRACE."""
from __future__ import annotations

import re
from pathlib import Path


def library_network(name: str) -> Path:
    import wntr
    return Path(wntr.__file__).parent / "library" / "networks" / name


def _replace_section(text: str, section: str, body: str) -> str:
    """The first [SECTION] of the file gets `body` (its old rows dropped)."""
    pattern = re.compile(r"^\[" + section + r"\][^\[]*", re.M | re.I)
    new, n = pattern.subn(lambda m: f"[{section}]\n{body}\n\n", text, count=1)
    assert n == 1, section
    return new


def _option(text: str, section: str, key: str, value: str) -> str:
    """Sets `key value` inside [section] (replacing a line that starts with key there)."""
    head = re.search(r"^\[" + section + r"\]\s*$", text, re.M | re.I)
    assert head, section
    end = text.find("\n[", head.end())
    end = len(text) if end < 0 else end
    body = text[head.end():end]
    line = re.compile(r"^\s*" + key + r"\s+.*$", re.M | re.I)
    body = line.sub(f" {key} {value}", body, count=1) if line.search(body) else f"\n {key} {value}" + body
    return text[:head.end()] + body + text[end:]


NET1_VARIANTS = {
    "net1": {},
    "net1-2comp": {"MIXING": "2 2COMP 0.3"},
    "net1-fifo": {"MIXING": "2 FIFO"},
    "net1-lifo": {"MIXING": "2 LIFO"},
    "net1-wall0": {"REACTIONS": "Order Wall 0\nGlobal Wall -0.1\nGlobal Bulk -0.5\nBULK 110 -1.5\nWALL 111 -0.3\nTANK 2 -0.8"},
    "net1-nodiffusivity": {"REACTIONS": "Order Wall 1\nGlobal Wall -1\nGlobal Bulk -0.5", "options": {"Diffusivity": "0"}},
    "net1-order2": {"REACTIONS": "Order Bulk 2\nOrder Tank 0\nGlobal Bulk -0.4\nGlobal Wall 0\nTANK 2 -0.05"},
    "net1-limit": {"REACTIONS": "Order Bulk 1.5\nGlobal Bulk 0.3\nLimiting Potential 2.0\nGlobal Wall 0"},
    "net1-negorder": {"REACTIONS": "Order Bulk -1\nGlobal Bulk -0.5\nLimiting Potential 3.0\nGlobal Wall 0"},
    "net1-roughness": {"REACTIONS": "Global Bulk -0.3\nRoughness Correlation -50\nWALL 12 -0.2"},
    "net1-mass": {"SOURCES": "9 MASS 120 1\n22 MASS 30"},
    "net1-setpoint": {"SOURCES": "12 SETPOINT 0.8\n9 CONCEN 1.2 1"},
    "net1-flowpaced": {"SOURCES": "21 FLOWPACED 0.4 1\n2 FLOWPACED 0.2"},
    "net1-concen-junction": {"SOURCES": "23 CONCEN 2.0", "DEMANDS": "23 -50"},
    "net1-age": {"options": {"Quality": "Age"}},
    "net1-trace-tank": {"options": {"Quality": "Trace 2"}, "MIXING": "2 FIFO"},
    "net1-trace-junction": {"options": {"Quality": "Trace 12"}},
}


def write_variant(name: str, folder: Path) -> Path:
    """Net1 changed as NET1_VARIANTS[name] says, written to folder/name.inp (SI-free: Net1 is in GPM)."""
    text = library_network("Net1.inp").read_text()
    text = text.replace("[REPORT]", "[DEMANDS]\n\n[REPORT]", 1) if "[DEMANDS]" not in text.upper() else text
    for section, body in NET1_VARIANTS[name].items():
        if section == "options":
            for key, value in body.items():
                text = _option(text, "OPTIONS", key, value)
        elif section == "REACTIONS":
            # Net1 has two [REACTIONS] sections (per-element rows, then globals): one replaces both.
            text = re.sub(r"^\[REACTIONS\][^\[]*", "", text, flags=re.M | re.I)
            text = text.replace("[MIXING]", f"[REACTIONS]\n{body}\n\n[MIXING]", 1)
        else:
            text = _replace_section(text, section, body)
    path = folder / f"{name}.inp"
    path.write_text(text)
    return path
