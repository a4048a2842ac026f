"""Monte-Carlo over the park's operations: a batch equals the park run scenario by scenario, the
probabilities follow the draws, an interrupted study resumes to the same answer."""
import dataclasses
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
from numpy.testing import assert_allclose

from parktwin.twin.coupled import run_park
from parktwin.twin.park import load_park
from parktwin.twin.park_montecarlo import ParkStudy, draw, risk_map, run_park_study, scenario_park
from parktwin.twin.whatif import JunctionLeak, Perturbation, apply

EXAMPLE = Path(__file__).resolve().parents[1] / "twin" / "example_park"
STUDY = ParkStudy(scenarios=120, seed=7, chunk_size=50, reclaimed_outage_probability=0.2,
                  leak_median_area_m2=3e-4, city_offer_factor_range=(0.5, 1.0), duration_s=0)
DAY = dataclasses.replace(STUDY, scenarios=40, chunk_size=16, duration_s=86400)


@pytest.fixture(scope="module")
def park():
    return load_park(EXAMPLE)


@pytest.fixture(scope="module")
def study_file(park, tmp_path_factory):
    path = tmp_path_factory.mktemp("park-mc") / "study.h5"
    return run_park_study(park, STUDY, path)


def _single(park, draws, s, duration_s=0):
    """Scenario s rebuilt from its draws and run alone through run_park."""
    ops = []
    for net_name, batch in draws.leaks.items():
        rows = batch.perturbations.for_scenarios([batch.ids[s]])
        for element, attribute, value in zip(rows.element, rows.attribute, rows.value):
            assert attribute == "leak_area_m2"
            ops.append(JunctionLeak(net_name, str(element), float(value)))
    return run_park(apply(scenario_park(park, draws, s), ops), duration_s=duration_s)


@pytest.mark.parametrize("study, picks", [(STUDY, (0, 1, 49, 50, 119)), (DAY, (0, 15, 16, 39))],
                         ids=["snapshot", "24h"])
def test_batch_equals_single_park_runs(park, study, picks, tmp_path):
    path = run_park_study(park, study, tmp_path / "study.h5").path
    draws = draw(park, study)
    with h5py.File(path, "r") as f:
        sc = {name: f[f"scenario/{name}"][:] for name in f["scenario"]}
    for s in picks:
        single = _single(park, draws, s, study.duration_s)
        for name in ("reuse_rate", "substitution_rate", "leakage_rate"):
            assert_allclose(sc[name][s], single.indicators[name]["value"], rtol=1e-9, err_msg=f"{name} of {s}")
        for net_name in ("supply", "reclaimed", "discharge"):
            assert_allclose(sc[f"leaks_{net_name}_m3d"][s], single.service[net_name].leaks_m3d, rtol=1e-9,
                            atol=1e-9, err_msg=f"{net_name} leaks of {s}")
        below = {v["enterprise"] for v in single.service_violations() if v["kind"] == "low_pressure"}
        names = [e.name for e in park.enterprises]
        assert {names[i] for i in np.flatnonzero(sc["enterprise_below_service"][s])} == below
        alloc = single.allocation
        assert_allclose(sc["reclaimed_shortfall_m3d"][s],
                        max(alloc.reclaimable_need - alloc.reclaimed_from_plant - alloc.reclaimed_from_city, 0.0),
                        atol=1e-9)


def test_a_changed_park_keeps_its_changes(park, tmp_path):
    """A study of a park with hydraulic what-ifs applied (the tank main closed, rougher reclaimed pipes)
    runs them in every scenario, as run_park does."""
    changed = apply(park, [Perturbation("supply", "S-TANK", "status", "closed"),
                           Perturbation("reclaimed", "RP001", "roughness", 60.0)])
    study = dataclasses.replace(STUDY, scenarios=12, chunk_size=5)
    path = run_park_study(changed, study, tmp_path / "changed.h5").path
    unchanged = run_park_study(park, study, tmp_path / "unchanged.h5").path
    draws = draw(changed, study)
    with h5py.File(path, "r") as f, h5py.File(unchanged, "r") as g:
        leaks, before = f["scenario/leaks_supply_m3d"][:], g["scenario/leaks_supply_m3d"][:]
    assert not np.allclose(leaks, before)         # the changes reach the networks
    for s in (0, 7, 11):
        single = _single(changed, draws, s)
        assert_allclose(leaks[s], single.service["supply"].leaks_m3d, rtol=1e-9)


def test_probabilities_follow_the_draws(park, study_file):
    summary = study_file.summary
    draws = draw(park, STUDY)
    assert summary["scenarios"] == STUDY.scenarios
    with h5py.File(study_file.path, "r") as f:
        shortfall = f["scenario/reclaimed_shortfall_m3d"][:]
        assert f.attrs["complete"]
    # Without its plant the park's reclaimed needs exceed the city's offer: every outage is a shortfall.
    assert np.all(shortfall[draws.reclaimed_outage] > 0)
    assert summary["probability"]["reclaimed_supply_short"] == pytest.approx(np.mean(shortfall > 1e-6))
    assert summary["probability"]["reclaimed_supply_short"] >= np.mean(draws.reclaimed_outage)
    q = summary["quantiles"]["leakage_rate"]
    assert q["p5"] <= q["p50"] <= q["p95"]
    ids, prob = risk_map(study_file.path, "supply")
    assert len(ids) == len(prob) and np.all((prob >= 0) & (prob <= 1))


def test_no_uncertainty_is_the_base_case(park, tmp_path):
    quiet = ParkStudy(scenarios=3, seed=1, leaks_per_network={}, demand_factor_range=(1.0, 1.0),
                      reclaimed_outage_probability=0.0)
    out = run_park_study(park, quiet, tmp_path / "quiet.h5")
    base = run_park(park)
    with h5py.File(out.path, "r") as f:
        assert_allclose(f["scenario/reuse_rate"][:], base.indicators["reuse_rate"]["value"], rtol=1e-12)
        assert_allclose(f["scenario/reclaimed_shortfall_m3d"][:], 0.0)


def test_interrupted_study_resumes_to_the_same_answer(park, study_file, tmp_path):
    path = tmp_path / "interrupted.h5"

    def stop_after_first_chunk(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_park_study(park, STUDY, path, progress=stop_after_first_chunk)
    with h5py.File(path, "r") as f:
        assert not f.attrs["complete"] and list(f["chunk/done"][:]) == [True, False, False]
    with pytest.raises(ValueError, match="not complete"):
        risk_map(path, "supply")
    with pytest.raises(FileExistsError, match="interrupted.h5: exists"):
        run_park_study(park, STUDY, path)
    resumed = run_park_study(park, STUDY, path, resume=True)
    assert resumed.summary == study_file.summary
    assert_allclose(risk_map(path, "reclaimed")[1], risk_map(study_file.path, "reclaimed")[1])
    with pytest.raises(ValueError, match="another study"):
        run_park_study(park, dataclasses.replace(STUDY, seed=8), path, resume=True)
    torn = tmp_path / "torn.h5"
    torn.write_bytes(b"\x89HDF\r\n" + bytes(4000))
    with pytest.raises(ValueError, match=r"torn.h5: not a readable HDF5 file .*cannot be resumed"):
        run_park_study(park, STUDY, torn, resume=True)


@pytest.mark.parametrize("change, message", [
    ({"scenarios": 0}, "ParkStudy.scenarios: must be an integer >= 1"),
    ({"leaks_per_network": {"sewer": 1}}, "ParkStudy.leaks_per_network: unknown network 'sewer'"),
    ({"reclaimed_outage_probability": 1.5}, "ParkStudy.reclaimed_outage_probability: must be in"),
    ({"demand_factor_range": (1.2, 0.8)}, "ParkStudy.demand_factor_range: must be 0 <= low <= high"),
    ({"duration_s": 3600}, "ParkStudy.duration_s: must be 0 (snapshot) or 86400 (24 h)"),
])
def test_bad_studies(park, tmp_path, change, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        run_park_study(park, dataclasses.replace(STUDY, **change), tmp_path / "bad.h5")
    assert not (tmp_path / "bad.h5").exists()


# ------------------------------------------------------------------------------------ sampling per chunk
CHUNKED = dataclasses.replace(STUDY, scenarios=30, chunk_size=7)


def _file_arrays(path):
    with h5py.File(path, "r") as f:
        out = {f"scenario/{n}": f[f"scenario/{n}"][:] for n in f["scenario"]}
        out.update({f"draws/{n}": f[f"draws/{n}"][:] for n in ("demand_factor", "reclaimed_outage",
                                                                "city_offer_factor")})
        for net_name in f["draws/leaks"]:
            for col in ("scenario", "element", "attribute", "value"):
                out[f"leaks/{net_name}/{col}"] = f[f"draws/leaks/{net_name}/{col}"][:]
        out["risk"] = {n: f[f"risk/{n}/count_below_service"][:].sum(axis=0) for n in f["risk"]}
    return out


def test_no_sampling_call_draws_more_than_a_chunk(park, tmp_path, monkeypatch):
    """The park's numbers and the leaks are drawn a chunk at a time: no call to the unit sampler (the
    root of every draw, the park's own and the scenario engine's) asks for more rows than a chunk."""
    import parktwin.scenarios.samplers as samplers
    import parktwin.twin.park_montecarlo as pmc
    from parktwin.scenarios.unit_samples import sample_unit
    calls = []

    def spy(sampler, n, dims, seed, start=0, stop=None):
        lo, hi, _ = slice(start, stop).indices(n)
        calls.append((n, hi - lo))
        return sample_unit(sampler, n, dims, seed, start, stop)

    monkeypatch.setattr(samplers, "sample_unit", spy)
    monkeypatch.setattr(pmc, "sample_unit", spy)
    run_park_study(park, CHUNKED, tmp_path / "spied.h5")
    assert calls and all(n == CHUNKED.scenarios for n, _ in calls)
    assert max(rows for _, rows in calls) <= CHUNKED.chunk_size


def test_results_do_not_depend_on_the_chunk_size(park, tmp_path):
    """A scenario's draws depend on the study and its index alone: runs in chunks of 7, 30 (one chunk)
    and 4 write the same draws and the same results, and the draws are those drawn whole."""
    runs = {c: _file_arrays(run_park_study(park, dataclasses.replace(CHUNKED, chunk_size=c),
                                           tmp_path / f"c{c}.h5").path) for c in (7, 30, 4)}
    for c in (30, 4):
        for name, values in runs[7].items():
            if name == "risk":
                for net_name in values:
                    np.testing.assert_array_equal(runs[c]["risk"][net_name], values[net_name])
            else:
                np.testing.assert_array_equal(runs[c][name], values, err_msg=f"{name}, chunk {c}")
    whole = draw(park, CHUNKED)
    np.testing.assert_array_equal(runs[7]["draws/demand_factor"], whole.demand_factor)
    np.testing.assert_array_equal(runs[7]["draws/reclaimed_outage"], whole.reclaimed_outage)
    np.testing.assert_array_equal(runs[7]["draws/city_offer_factor"], whole.city_offer_factor)
    for net_name, batch in whole.leaks.items():
        np.testing.assert_array_equal(runs[7][f"leaks/{net_name}/value"].astype(str), batch.perturbations.value)


def test_a_range_of_draws_is_a_slice_of_the_whole(park):
    whole = draw(park, STUDY)
    part = draw(park, STUDY, 45, 77)
    assert part.start == 45
    for name in ("demand_factor", "reclaimed_outage", "city_offer_factor"):
        np.testing.assert_array_equal(getattr(part, name), getattr(whole, name)[45:77])
    for net_name, batch in whole.leaks.items():
        np.testing.assert_allclose(part.leaks[net_name].inputs.leak_area_m2.toarray(),
                                   batch.inputs.leak_area_m2[45:77].toarray())
        assert list(part.leaks[net_name].ids) == list(batch.ids[45:77])
    # The uniform ranges are honoured and the outage follows its probability.
    lo, hi = STUDY.demand_factor_range
    assert np.all((whole.demand_factor >= lo) & (whole.demand_factor < hi))
    assert 0 < whole.reclaimed_outage.mean() < 0.5
