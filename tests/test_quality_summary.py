"""Quality statistics in `parktwin mc --store summary` (issue 14): a source_quality Monte-Carlo study, the
statistics against the same scenarios' full results, and chunking invariance of the integer state."""
from __future__ import annotations

import numpy as np
from typer.testing import CliRunner

from quality_variants import write_variant

DAY_S = 24 * 3600


def _spec(tmp_path, n):
    spec = tmp_path / "study.toml"
    spec.write_text(f"scenarios = {n}\nseed = 11\nsampler = \"lhs\"\n\n[source_quality]\nnodes = [\"9\"]\n"
                    "min = 400.0\nmax = 4000.0\n")
    return spec


def test_mc_summary_of_a_source_quality_study(tmp_path):
    from parktwin.api.cli import app
    from parktwin.scenarios.store import read_results
    from parktwin.scenarios.summary_store import read_summary
    net_path = write_variant("net1-mass", tmp_path)
    spec = _spec(tmp_path, 24)
    summary, full = tmp_path / "summary.h5", tmp_path / "full.h5"
    runner = CliRunner()
    for store, out in (("summary", summary), ("full", full)):
        result = runner.invoke(app, ["mc", str(net_path), "--spec", str(spec), "--store", store, "--out", str(out),
                                     "--duration", str(DAY_S), "--chunk-size", "7", "--quality-limit", "0.3",
                                     "--precision", "double"])
        assert result.exit_code == 0, result.output
    stats, meta = read_summary(summary)
    res, _ = read_results(full)
    q = res.node_quality                      # [B, T, N]
    assert meta["attrs"]["quality_kind"] == "chemical" and q.shape[0] == 24
    assert np.ptp(q[:, -1], axis=0).max() > 0.1, "the sampled source strengths change the quality"
    np.testing.assert_allclose(stats["quality_min"], q.min(axis=0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(stats["quality_max"], q.max(axis=0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(stats["quality_mean"], q.mean(axis=0), rtol=0, atol=1e-6)
    np.testing.assert_allclose(stats["quality_above_limit_prob"], (q > 0.3).mean(axis=0), rtol=0, atol=1e-12)
    # quantiles: within one histogram bin of numpy's inverted-cdf order statistic
    levels = meta["options"].quantiles
    expected = np.quantile(q, levels, axis=0, method="inverted_cdf")
    assert np.abs(stats["quality_quantiles"] - expected).max() <= meta["options"].quality_bin


def test_quality_state_does_not_depend_on_chunks():
    from parktwin.hydraulics.results import ResultSet
    from parktwin.scenarios.statistics import SummaryAccumulator, SummaryOptions
    rng = np.random.default_rng(3)
    b, t, n, l = 30, 4, 5, 6
    res = ResultSet.allocate([str(i) for i in range(n)], [str(i) for i in range(l)], np.arange(t), b)
    for name in ("head_m", "pressure_m", "demand_m3s", "leak_m3s", "flow_m3s"):
        getattr(res, name)[...] = rng.uniform(0, 50, getattr(res, name).shape)
    res.converged[...] = True
    res.failure[...] = ""
    from dataclasses import replace
    res = replace(res, node_quality=rng.uniform(0, 5, (b, t, n)))
    options = SummaryOptions(quality_limit=2.5)
    one = SummaryAccumulator(t, n, l, options, quality=True)
    one.add(res, np.arange(b))
    parts = [SummaryAccumulator(t, n, l, options, quality=True) for _ in range(3)]
    for k, rows in enumerate((np.arange(0, 7), np.arange(7, 19), np.arange(19, 30))):
        parts[k].add(res.rows(rows[0], rows[-1] + 1), rows)
    merged = parts[2].merge(parts[0]).merge(parts[1])
    a, c = one.to_arrays(), merged.to_arrays()
    assert a.keys() == c.keys() and "quality_sum_hi" in a
    for key in a:
        np.testing.assert_array_equal(a[key], c[key])
    again = SummaryAccumulator.from_arrays(a)
    np.testing.assert_array_equal(again.finalize()["quality_mean"], one.finalize()["quality_mean"])
