"""Water quality against EPANET 2.3's hydraulics+quality loop (issue 14; rule in quality_compare).

Every shared network with a QUALITY option and a duration, at every report time of the first 24 h;
then EPANET's public example networks and variants of Net1 that exercise what the shared networks do
not (wall reactions, reaction orders, every source type and tank mixing model, AGE and TRACE).
"""
from __future__ import annotations

import pytest

from oracle_compare import all_networks, network_id
from quality_compare import compare
from quality_variants import NET1_VARIANTS, library_network, write_variant

DAY_S = 24 * 3600


def _with_quality() -> list:
    """Shared networks whose QUALITY is not NONE and whose duration is not 0, as EPANET reads them."""
    import os
    import tempfile

    from epanet import toolkit as en
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in all_networks():
            ph = en.createproject()
            try:
                en.open(ph, str(path), os.path.join(tmp, "r.rpt"), "")
                if en.getqualinfo(ph)[0] != en.NONE and en.gettimeparam(ph, en.DURATION) > 0:
                    out.append(path)
            except Exception:  # noqa: BLE001 - files EPANET rejects are the hydraulic oracle's business
                continue
            finally:
                en.close(ph)
                en.deleteproject(ph)
    return out


SHARED = _with_quality() if all_networks() else []


def test_shared_networks_with_quality_are_found():
    if not all_networks():
        pytest.skip("../shared/networks is not beside the repository")
    names = {network_id(p) for p in SHARED}
    assert {"benchmarks/pacific-city.inp", "benchmarks/d-town.inp", "epanet-tests/small/sampletown.inp"} <= names


@pytest.mark.parametrize("path", SHARED, ids=network_id)
def test_shared_network_quality_matches_epanet(path):
    problem = compare(path, DAY_S)
    assert not problem, f"{network_id(path)}: {problem}"


@pytest.mark.parametrize("name", ["Net1.inp", "Net2.inp", "Net3.inp"])
def test_example_network_quality_matches_epanet(name):
    problem = compare(library_network(name), DAY_S)
    assert not problem, f"{name}: {problem}"


@pytest.mark.parametrize("variant", sorted(NET1_VARIANTS))
def test_net1_variant_quality_matches_epanet(variant, tmp_path):
    problem = compare(write_variant(variant, tmp_path), DAY_S)
    assert not problem, f"{variant}: {problem}"


def test_net1_variants_take_effect(tmp_path):
    """The variants change what they say (so their oracle runs test those features)."""
    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.quality_model import KIND_AGE, KIND_TRACE, SOURCE_TYPES, read_quality_model

    def model(name):
        path = write_variant(name, tmp_path)
        net = load_network(path)
        return net, read_quality_model(path, net)
    assert [int(model(v)[1].tank_mix[0]) for v in ("net1", "net1-2comp", "net1-fifo", "net1-lifo")] == [0, 1, 2, 3]
    assert model("net1-wall0")[1].wall_order == 0.0
    assert model("net1-order2")[1].bulk_order == 2.0
    net, m = model("net1-mass")
    assert SOURCE_TYPES[m.source_type[net.node_index("9")]] == "MASS"
    assert model("net1-age")[1].kind == KIND_AGE
    net, m = model("net1-trace-tank")
    assert m.kind == KIND_TRACE and net.node_ids[m.trace_node] == "2"


SWITCHED_ON = [("benchmarks/l-town.inp", "AGE"), ("benchmarks/d-town.inp", "TRACE R1"),
               ("epanet-tests/network_one/NET1-3.inp", "AGE"), ("benchmarks/anytown.inp", "AGE")]


@pytest.mark.parametrize("name,quality", SWITCHED_ON, ids=[f"{n}:{q}" for n, q in SWITCHED_ON])
def test_shared_network_with_quality_switched_on_matches_epanet(name, quality, tmp_path):
    """Shared networks whose own QUALITY is NONE or another kind, with an analysis switched on (L-Town's
    water age: 488,744 compared values)."""
    import re

    from oracle_compare import NETWORKS
    source = NETWORKS / name
    if not source.exists():
        pytest.skip("../shared/networks is not beside the repository")
    text, n = re.subn(r"^(\s*Quality\s+)(?!Timestep)\S+.*$", lambda m: m.group(1) + quality,
                      source.read_text(errors="replace"), count=1, flags=re.M | re.I)
    assert n == 1
    path = tmp_path / source.name
    path.write_text(text)
    problem = compare(path, DAY_S)
    assert not problem, f"{name} with QUALITY {quality}: {problem}"
