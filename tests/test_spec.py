"""Scenario specifications and samplers: reading, every rejection, determinism, the distributions drawn,
and an expanded table that solves."""
from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from parktwin.scenarios.samplers import (SampledBatch, choose_distinct, expand, sample_batch, sample_inputs,
                                         scenario_ids)
from parktwin.scenarios.selection import junction_pipe_length_m
from parktwin.scenarios.spec import (DemandSpec, LeakArea, LeakSpec, PumpOutageSpec, ReservoirHeadSpec,
                                     RoughnessSpec, ScenarioSpec, TankLevelSpec, load_spec, spec_from_dict,
                                     spec_from_options)
from parktwin.scenarios.spec_errors import MAX_ROWS, SpecError
from parktwin.scenarios.unit_samples import MC_BLOCK, sample_unit

NETWORKS = Path("/work/shared/networks")
NET1_PATH = NETWORKS / "epanet-tests/network_one/NET1.inp"
LTOWN_PATH = NETWORKS / "benchmarks/l-town.inp"
needs_networks = pytest.mark.skipif(not (NET1_PATH.exists() and LTOWN_PATH.exists()),
                                    reason="../shared/networks is not beside the repository")

FULL_TOML = """\
scenarios = 64
seed = 7
sampler = "lhs"

[leaks]
count = 2
location = "pipe_length"
cd = 0.6
junctions = ["11", "12", "13", "21", "22"]
[leaks.area]
distribution = "lognormal"
median_m2 = 2e-4
sigma = 0.8

[demand]
distribution = "uniform"
min = 0.8
max = 1.2
junction_sd = 0.05

[roughness]
fraction = 0.1

[breaks]
count = 1
pipes = ["21p", "22p", "31p", "111p", "112p", "113p", "121p", "122p"]

[pump_outages]
probability = 0.3

[tank_levels]

[reservoir_heads]
delta_m = 1.5
"""


def _area(**kw) -> LeakArea:
    return LeakArea(**({"median_m2": 1e-4, "sigma": 0.8} | kw))


@pytest.fixture(scope="module")
def net1():
    from parktwin.hydraulics.compile import load_network
    return load_network(NET1_PATH)


@pytest.fixture(scope="module")
def ltown():
    from parktwin.hydraulics.compile import load_network
    return load_network(LTOWN_PATH)


# ---------------------------------------------------------------------- reading
def test_toml_round_trip(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_text(FULL_TOML)
    spec = load_spec(path)
    assert (spec.scenarios, spec.seed, spec.sampler) == (64, 7, "lhs")
    assert spec.leaks == LeakSpec(LeakArea("lognormal", median_m2=2e-4, sigma=0.8), count=2, location="pipe_length",
                                  cd=0.6, junctions=("11", "12", "13", "21", "22"))
    assert spec.demand == DemandSpec("uniform", min=0.8, max=1.2, junction_sd=0.05)
    assert spec.roughness == RoughnessSpec(0.1) and spec.pump_outages == PumpOutageSpec(0.3)
    assert spec.tank_levels == TankLevelSpec() and spec.reservoir_heads == ReservoirHeadSpec(1.5)
    assert spec.breaks.pipes[0] == "21p"
    again = tmp_path / "again.toml"
    again.write_text(spec.to_toml())
    assert load_spec(again) == spec


def test_options_build_the_same_spec(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_text(FULL_TOML)
    from_options = spec_from_options(
        scenarios=64, seed=7, sampler="lhs", leaks=2, leak_location="pipe_length", leak_cd=0.6,
        leak_junctions="11,12,13,21,22", leak_median_m2=2e-4, leak_sigma=0.8, demand="uniform", demand_min=0.8,
        demand_max=1.2, demand_junction_sd=0.05, roughness_fraction=0.1, breaks=1,
        break_pipes=["21p", "22p", "31p", "111p", "112p", "113p", "121p", "122p"], pump_outage_probability=0.3,
        tank_levels=True, reservoir_head_delta_m=1.5, demand_mean=None)
    assert from_options == load_spec(path)
    with pytest.raises(SpecError, match=r"^leaks\.area\.sigma \(--leak-sigma\): must be > 0$"):
        spec_from_options(scenarios=4, seed=1, leak_median_m2=1e-4, leak_sigma=-1)
    with pytest.raises(SpecError, match=r"^--leak-colour: unknown option"):
        spec_from_options(scenarios=4, seed=1, leak_colour="red")


BASE = {"scenarios": 10, "seed": 1, "leaks": {"area": {"median_m2": 1e-4, "sigma": 0.5}}}


@pytest.mark.parametrize("change, message", [
    ({"leaks": {"area": {"distribution": "gamma"}}},
     "leaks.area.distribution: unknown distribution 'gamma' (valid: lognormal, uniform, fixed)"),
    ({"leaks": {"area": {"median_m2": -1e-4, "sigma": 0.5}}}, "leaks.area.median_m2: must be > 0"),
    ({"leaks": {"area": {"median_m2": 1e-4, "sigma": -0.5}}}, "leaks.area.sigma: must be > 0"),
    ({"leaks": {"area": {"median_m2": 1e-4}}}, "leaks.area.sigma: required for the lognormal distribution"),
    ({"leaks": {"area": {"distribution": "uniform", "min_m2": 1e-4, "max_m2": 1e-5}}},
     "leaks.area.max_m2: must be > leaks.area.min_m2 (0.0001)"),
    ({"leaks": {"area": {"distribution": "fixed", "value_m2": 1e-4, "sigma": 1.0}}},
     "leaks.area.sigma: not used by the fixed distribution (it takes value_m2)"),
    ({"leaks": {"count": -1, "area": {"median_m2": 1e-4, "sigma": 0.5}}}, "leaks.count: must be >= 0"),
    ({"leaks": {"count": 1.5, "area": {"median_m2": 1e-4, "sigma": 0.5}}}, "leaks.count: must be an integer"),
    ({"leaks": {"location": "random", "area": {"median_m2": 1e-4, "sigma": 0.5}}},
     "leaks.location: unknown location 'random' (valid: uniform, pipe_length)"),
    ({"leaks": {"colour": "red", "area": {"median_m2": 1e-4, "sigma": 0.5}}}, "leaks.colour: unknown key"),
    ({"scenarios": 0}, "scenarios: must be >= 1"),
    ({"seed": "abc"}, "seed: must be an integer, not 'abc'"),
    ({"sampler": "halton"}, "sampler: unknown sampler 'halton' (valid: mc, lhs, sobol)"),
    ({"pump_outages": {"probability": 1.5}}, "pump_outages.probability: must be between 0 and 1"),
    ({"pump_outages": {}}, "pump_outages.probability: required"),
    ({"demand": {"distribution": "normal", "mean": 1.0, "sd": 0.0}}, "demand.sd: must be > 0"),
    ({"demand": {"min": 0.8, "max": 1.2}}, "demand.min: not used by the fixed distribution"),
    ({"demand": {"distribution": "uniform", "min": -0.1, "max": 1.2}}, "demand.min: must be >= 0"),
    ({"roughness": {"fraction": 1.0}}, "roughness.fraction: must be > 0 and < 1"),
    ({"reservoir_heads": {"delta_m": 0}}, "reservoir_heads.delta_m: must be > 0"),
    ({"breaks": {"pipes": ["p1", "p1"]}}, "breaks.pipes: 'p1' is listed twice"),
    ({"breaks": {"pipes": [11, 12]}}, "breaks.pipes: must be a list of id strings"),
    ({"tank_levels": 1}, "tank_levels: must be a table"),
    ({"wind": {}}, "wind: unknown key"),
])
def test_bad_specs_name_the_field(change, message):
    with pytest.raises(SpecError) as err:
        spec_from_dict(BASE | change)
    assert str(err.value).startswith(message), str(err.value)
    assert err.value.field == message.split(":")[0]


@needs_networks
def test_the_documented_example_loads(ltown, tmp_path):
    import parktwin.scenarios.spec as spec_module
    example = [line[4:] for line in spec_module.__doc__.splitlines() if line.startswith("    ")]
    path = tmp_path / "example.toml"
    path.write_text("\n".join(example))
    spec = load_spec(path)
    assert spec.scenarios == 10000 and spec.reservoir_heads.delta_m == 2.0
    assert spec.validate(ltown).rows_per_scenario == 1 + 1 + 747 + 905 + 1 + 1 + 1 + 2


def test_missing_fields_and_bad_toml(tmp_path):
    with pytest.raises(SpecError, match="^seed: required$"):
        spec_from_dict({"scenarios": 3, "leaks": BASE["leaks"]})
    with pytest.raises(SpecError, match=r"^spec: nothing varies"):
        spec_from_dict({"scenarios": 3, "seed": 1})
    path = tmp_path / "broken.toml"
    path.write_text("scenarios = = 3\n")
    with pytest.raises(SpecError, match=r"^broken\.toml: not valid TOML"):
        load_spec(path)


@needs_networks
@pytest.mark.parametrize("change, message", [
    ({"leaks": {"junctions": ["J-99"], "area": {"median_m2": 1e-4, "sigma": 0.5}}},
     "leaks.junctions: 'J-99' is not a junction of l-town"),
    ({"leaks": {"junctions": ["T1"], "area": {"median_m2": 1e-4, "sigma": 0.5}}},
     "leaks.junctions: 'T1' is not a junction of l-town (it is a tank)"),
    ({"demand": {"junction_sd": 0.1, "junctions": ["n1", "J-99"]}},
     "demand.junctions: 'J-99' is not a junction of l-town"),
    ({"leaks": {"count": 3, "junctions": ["n1", "n2"], "area": {"median_m2": 1e-4, "sigma": 0.5}}},
     "leaks.count: 3 per scenario need 3 distinct junctions; l-town has 2 candidate junctions"),
    ({"pump_outages": {"probability": 0.1, "pumps": ["p1"]}}, "pump_outages.pumps: 'p1' is not a pump of l-town"),
    ({"scenarios": 60_000, "roughness": {"fraction": 0.1}},
     f"roughness: 60,000 scenarios x 905 pipes = 54,300,000 rows, over the cap of {MAX_ROWS:,}"),
    ({"scenarios": 30_000, "sampler": "sobol", "demand": {"junction_sd": 0.1}, "roughness": {"fraction": 0.1}},
     None),
])
def test_bad_specs_against_the_network(ltown, change, message):
    spec = spec_from_dict(BASE | change)
    if message is None:      # within every limit: validates
        assert spec.validate(ltown).n_dimensions == 2 + 747 + 905
        return
    with pytest.raises(SpecError) as err:
        spec.validate(ltown)
    assert str(err.value).startswith(message), str(err.value)


# ---------------------------------------------------------------------- samplers
@pytest.mark.parametrize("sampler", ["mc", "lhs", "sobol"])
def test_samplers_in_range_and_reproducible(sampler):
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # Sobol' with n not a power of two must not warn
        unit = sample_unit(sampler, 1000, 5, seed=3)
        assert unit.shape == (1000, 5) and unit.min() >= 0 and unit.max() < 1
        assert np.array_equal(unit, sample_unit(sampler, 1000, 5, seed=3))
        assert not np.array_equal(unit, sample_unit(sampler, 1000, 5, seed=4))
        assert sample_unit(sampler, 7, 0, seed=3).shape == (7, 0)


@pytest.mark.parametrize("sampler", ["mc", "lhs", "sobol"])
def test_any_rows_of_a_design_are_those_rows_of_the_whole(sampler):
    # What lets a study sample chunk by chunk: rows [a, b) drawn alone are rows a..b-1 of the whole design,
    # whatever the chunks (here uneven ones, across the mc/lhs stream blocks), and never need the others.
    n = 3 * MC_BLOCK + 41
    whole = sample_unit(sampler, n, 4, seed=8)
    for size in (1, 7, MC_BLOCK - 1, MC_BLOCK + 5, n):
        chunks = [sample_unit(sampler, n, 4, seed=8, start=a, stop=a + size) for a in range(0, n, size)]
        assert np.array_equal(np.concatenate(chunks), whole), size
    if sampler == "mc":     # a row depends on the seed and its index alone, not on the size of the study
        assert np.array_equal(sample_unit("mc", 10 * n, 4, seed=8)[:n], whole)


@pytest.mark.parametrize("sampler, n", [("lhs", 100), ("lhs", 37), ("lhs", 1), ("sobol", 256)])
def test_lhs_and_sobol_are_stratified(sampler, n):
    unit = sample_unit(sampler, n, 6, seed=11)
    for column in unit.T:       # each of n equal bins of every dimension holds exactly one point
        assert np.array_equal(np.sort(np.floor(column * n).astype(int)), np.arange(n))


def test_choose_distinct_follows_the_weights():
    weight = np.array([1.0, 2.0, 3.0, 4.0])
    picks = choose_distinct(sample_unit("mc", 200_000, 2, seed=5), weight)
    assert (picks[:, 0] != picks[:, 1]).all()
    total = weight.sum()
    counts = Counter(map(tuple, picks.tolist()))
    for (a, b), seen in counts.items():       # sequential sampling without replacement
        expected = weight[a] / total * weight[b] / (total - weight[a])
        assert abs(seen / len(picks) - expected) < 0.005, (a, b)
    # All candidates picked when k equals their number, even with awkward float weights.
    every = choose_distinct(sample_unit("lhs", 5000, 3, seed=1), np.array([0.1, 1e-9, 0.7]))
    assert (np.sort(every, axis=1) == np.arange(3)).all()


def test_scenario_ids_are_padded_to_n_minus_one():
    spec = spec_from_dict(BASE | {"scenarios": 1000})
    ids = scenario_ids(spec)
    assert ids[0] == "s000" and ids[-1] == "s999" and len(ids) == 1000
    assert list(scenario_ids(spec, 10, 12)) == ["s010", "s011"]
    assert list(scenario_ids(spec_from_dict(BASE | {"scenarios": 1}))) == ["s0"]


# ---------------------------------------------------------------------- expansion
@needs_networks
@pytest.mark.parametrize("sampler", ["mc", "lhs", "sobol"])
def test_same_seed_same_table_and_chunks_agree(ltown, sampler):
    spec = spec_from_dict(BASE | {"scenarios": 500, "sampler": sampler, "demand": {"distribution": "normal",
                                  "mean": 1.0, "sd": 0.1}, "breaks": {"count": 2}, "pump_outages": {"probability": 0.5}})
    table = expand(spec, ltown)
    assert table.to_rows() == expand(spec, ltown).to_rows()
    other = expand(spec_from_dict(BASE | {"scenarios": 500, "sampler": sampler, "seed": 2, "demand": {
        "distribution": "normal", "mean": 1.0, "sd": 0.1}, "breaks": {"count": 2},
        "pump_outages": {"probability": 0.5}}), ltown)
    assert table.to_rows() != other.to_rows()
    chunks = [expand(spec, ltown, start, start + 128).to_rows() for start in range(0, 500, 128)]
    assert sum(chunks, []) == table.to_rows()
    rows = Counter(table.attribute.tolist())
    assert rows["leak_area_m2"] == 500 and rows["demand_multiplier"] == 500
    assert 1000 < rows["status"] < 1500           # 2 breaks each, and the one pump off about half the time


@needs_networks
def test_lognormal_median_of_leak_areas(ltown):
    spec = ScenarioSpec(scenarios=20_000, seed=9, leaks=LeakSpec(_area(median_m2=2e-4, sigma=0.8)))
    areas = expand(spec, ltown).value.astype(float)
    assert len(areas) == 20_000
    assert abs(np.median(areas) / 2e-4 - 1) < 0.03
    assert abs(np.std(np.log(areas)) / 0.8 - 1) < 0.03


@needs_networks
def test_pipe_length_weighting_prefers_long_pipes(ltown):
    weight = junction_pipe_length_m(ltown)
    chosen = {}
    for location in ("uniform", "pipe_length"):
        spec = ScenarioSpec(scenarios=20_000, seed=4, sampler="lhs", leaks=LeakSpec(_area(), location=location))
        ids = expand(spec, ltown).element
        chosen[location] = weight[[ltown.node_index(j) for j in ids.tolist()]]
    # Length-biased draws: the mean weight of a chosen junction is sum(w^2) / sum(w), not mean(w).
    assert abs(chosen["uniform"].mean() / weight.mean() - 1) < 0.02
    assert abs(chosen["pipe_length"].mean() / (weight @ weight / weight.sum()) - 1) < 0.02
    assert chosen["pipe_length"].mean() > 1.05 * chosen["uniform"].mean()
    # The share of leaks at the junctions holding the longest tenth of pipes matches their weight share.
    long = weight >= np.quantile(weight, 0.9)
    expected = weight[long].sum() / weight.sum()
    observed = np.isin(chosen["pipe_length"], weight[long]).mean()
    assert abs(observed - expected) < 0.02


@needs_networks
@pytest.mark.parametrize("sampler", ["lhs", "sobol"])
def test_discrete_choices_are_stratified(net1, sampler):
    # 9 junctions, 576 = 9 x 64 scenarios: LHS's strata put exactly 64 leaks at every junction. 512 Sobol'
    # points hold one point per 1/512 of each axis, so a junction's ninth gets 56.9 +- 1 at its two ends
    # (Monte Carlo: +- 7 for one standard deviation). Exactly a quarter of the scenarios lose the pump.
    n = 576 if sampler == "lhs" else 512
    spec = ScenarioSpec(scenarios=n, seed=2, sampler=sampler, leaks=LeakSpec(_area()),
                        pump_outages=PumpOutageSpec(0.25))
    table = expand(spec, net1)
    per_junction = Counter(table.element[table.attribute == "leak_area_m2"].tolist())
    if sampler == "lhs":
        assert set(per_junction.values()) == {64}
    else:
        assert all(55 <= c <= 58 for c in per_junction.values())
    assert (table.attribute == "status").sum() == n // 4


@needs_networks
def test_multiple_leaks_are_at_distinct_junctions(ltown):
    spec = ScenarioSpec(scenarios=2000, seed=1, sampler="sobol",
                        leaks=LeakSpec(_area(), count=3, cd=0.6, junctions=("n1", "n2", "n3")))
    table = expand(spec, ltown)
    areas = table.attribute == "leak_area_m2"
    per_scenario = Counter(zip(table.scenario[areas].tolist(), table.element[areas].tolist()))
    assert len(per_scenario) == 6000 and set(per_scenario.values()) == {1}
    assert (table.value[table.attribute == "leak_cd"] == "0.6").all()


@needs_networks
@pytest.mark.parametrize("sampler", ["mc", "lhs", "sobol"])
def test_sampled_inputs_are_the_tables_inputs(net1, sampler, tmp_path):
    # sample_inputs builds the solver inputs from the sampled numbers; they must be exactly what
    # build_batch makes of the table the same scenarios are written as (the file a study leaves).
    path = tmp_path / "net1.toml"
    path.write_text(FULL_TOML.replace('sampler = "lhs"', f'sampler = "{sampler}"'))
    spec = load_spec(path)
    reference = sample_batch(spec, net1)
    _assert_same_inputs(sample_inputs(spec, net1), reference.inputs)
    _assert_same_inputs(sample_inputs(spec, net1, 10, 23), reference.inputs.subset(np.arange(10, 23)))
    lazy = SampledBatch.of(spec, net1, 16)
    assert lazy.ids == reference.ids and lazy.step == 16
    rows = np.array([40, 3, 4, 5, 63, 4])     # out of order, a gap, a repeat: as the runner may ask
    _assert_same_inputs(lazy.inputs.subset(rows), reference.inputs.subset(rows))


def _assert_same_inputs(a, b):
    import dataclasses

    import scipy.sparse as sp
    assert a.batch_size == b.batch_size
    for field in dataclasses.fields(a):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if x is None or y is None:
            assert x is None and y is None, field.name
            continue
        x, y = (v.toarray() if sp.issparse(v) else np.asarray(v) for v in (x, y))
        assert np.array_equal(x, y, equal_nan=True), field.name


@needs_networks
def test_expanded_spec_solves_on_net1(net1, tmp_path):
    from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions
    path = tmp_path / "net1.toml"
    path.write_text(FULL_TOML)
    spec = load_spec(path)
    batch = sample_batch(spec, net1)
    assert batch.ids == tuple(scenario_ids(spec)) and batch.seed == 7
    inputs = batch.inputs
    assert inputs.leak_area_m2.nnz == 2 * 64 and inputs.roughness.shape == (64, net1.n_links)
    assert ((inputs.link_status == 0).sum(axis=1) >= 1).all()          # one pipe broken in each
    low, high = net1.tank_min_level_m[0], net1.tank_max_level_m[0]
    assert ((inputs.tank_level_m >= low) & (inputs.tank_level_m <= high)).all()
    assert np.abs(inputs.reservoir_head_m - net1.reservoir_head_m).max() <= 1.5
    result = HydraulicSolver(net1, SolverOptions()).run(batch.inputs)
    assert result.converged.all()
