"""The randomized oracle: fresh mixed scenarios on every shared network, through `parktwin run` with its
defaults (warm start, chunking, float32 files), against EPANET 2.3 scenario by scenario.

Each run draws a new seed, printed in pytest's header and in every failure; `PARKTWIN_ORACLE_SEED=N`
replays a run. Every network gets a snapshot batch on every run; the 24 h batches go to a few networks
per run, chosen by the seed, so every network with a duration is covered within a few runs.
"""
from __future__ import annotations

import numpy as np
import pytest

import oracle_scenarios as osc
from oracle_compare import all_networks, network_id
from oracle_random_compare import compare_network
from oracle_seed import ORACLE_SEED, replay_hint

pytestmark = pytest.mark.skipif(not all_networks(), reason="../shared/networks is not beside the repository")

SNAPSHOT_SCENARIOS = 6
LEAK_SCENARIOS = 6
LEAK_STREAM = 1
DAY_SCENARIOS = 2
DAY_NETWORKS_PER_RUN = 4
DAY_S = 24 * 3600


def _rng(path, stream: int) -> np.random.Generator:
    # Independent of the test order and of the other networks: the seed, the test and the network's name.
    key = [ORACLE_SEED, stream, *network_id(path).encode()]
    return np.random.default_rng(key)


def _with_duration() -> list:
    from parktwin.hydraulics.oracle import EpanetProject
    out = []
    for path in all_networks():
        with EpanetProject(path) as ep:
            if ep.duration_s > 0:
                out.append(path)
    return out


# Open differences, each with what was measured; the test still runs them and reports an unexpected pass.
KNOWN_DAY = {
    "benchmarks/bwsn1.inp": "with some demand multipliers, reservoir heads or closures a tank-level rule "
                            "(TANK-130 LEVEL >= 16) fires one 180 s rule step before EPANET: at 12,060 s where "
                            "EPANET 2.3.5 fires at 12,240 s although its own tank is at 16.0021 ft at 12,060 s",
    "benchmarks/micropolis.inp": "with a leak and a pump-speed change (seed 898783168: IN1644 7.8e-5 m2, HSP#3 at "
                                 "0.917) the draining tank reaches RULE 2's LEVEL BELOW 104 ft (within rules.c's "
                                 "0.001) at 19:54 in EPANET 2.3.5, which opens HSP#2 there, and not before 20:00 "
                                 "in ParkTwin, when the night rules take over; the pumps agree again at 20:00, the tank's level then differs by "
                                 "0.011 m and so does every head (found 2026-12-02, present before that day's "
                                 "changes)",
    "benchmarks/pacific-city.inp": "after 6 to 11 h a few heads next to a tank differ by 1.1e-3 to 1.3e-3 m (tolerance "
                                   "1e-3): the tank's level integrates flow differences within ACCURACY step after "
                                   "step (a reservoir head or a closure changed; the base case and snapshots agree)",
}


def _day_networks() -> list:
    networks = _with_duration() if all_networks() else []
    if not networks:
        return []
    picked = np.random.default_rng([ORACLE_SEED, 1]).choice(len(networks), min(DAY_NETWORKS_PER_RUN, len(networks)),
                                                            replace=False)
    out = []
    for i in sorted(picked):
        known = KNOWN_DAY.get(network_id(networks[i]))
        marks = [pytest.mark.xfail(reason=known, strict=False)] if known else []
        out.append(pytest.param(networks[i], marks=marks, id=network_id(networks[i])))
    return out


def _check(path, duration_s: int, n: int, tmp_path, **draw) -> None:
    outcome = compare_network(path, _rng(path, duration_s), n, duration_s, tmp_path, **draw)
    assert not outcome.problems, (
        f"{network_id(path)}: {len(outcome.problems)} of {outcome.n_compared} random scenarios differ from EPANET "
        f"({replay_hint(network_id(path))})\n" + "\n".join(outcome.problems))


@pytest.mark.parametrize("path", all_networks(), ids=network_id)
def test_random_scenarios_match_epanet_snapshot(path, tmp_path):
    _check(path, 0, SNAPSHOT_SCENARIOS, tmp_path)


@pytest.mark.parametrize("path", _day_networks())
def test_random_scenarios_match_epanet_over_a_day(path, tmp_path):
    _check(path, DAY_S, DAY_SCENARIOS, tmp_path)


@pytest.mark.parametrize("path", all_networks(), ids=network_id)
def test_random_leaks_match_epanet(path, tmp_path):
    """The study users run most: a leak (where the network has no emitters of its own) and a demand multiplier
    in every scenario. Every scenario EPANET balances must converge and agree, Pacific City's included; those
    EPANET ends unbalanced (Pacific City above about 1.18 times its demands) must be flagged as such."""
    outcome = compare_network(path, _rng(path, LEAK_STREAM), LEAK_SCENARIOS, 0, tmp_path, kinds=osc.LEAK_AND_DEMAND,
                              every_kind=True)
    assert not outcome.problems, (f"{network_id(path)}: ({replay_hint(network_id(path))})\n"
                                  + "\n".join(outcome.problems))
