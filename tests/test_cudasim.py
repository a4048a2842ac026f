"""The cupy backend's device kernels, run by numba's CUDA simulator on the CPU (marker `cudasim`).

The simulator executes the very @cuda.jit kernels the GPU runs (kernels/cuda_gga.py, cuda_laws.py), one
Python thread per scenario, in a child process started with NUMBA_ENABLE_CUDASIM=1. Its answers are
compared with the numba CPU backend: bit for bit when both take their powers from libm (the kernels are
a line-by-line transcription of the CPU fast path), and to 1e-9 relative (of each value, or of the
quantity's largest value near zero) with the CPU backend as it ships, whose powers (kernels.powers)
differ from libm's in the last bit or two for about 16 % of arguments, which the CBIG penalties of valves
amplify.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cudasim_compare import (QUANTITIES, TESTS, arrays, dead_end_prv_network, laminar_network, libm_powers,
                             pda_network, pipe_leakage_network, psv_tcv_network, pump_network, solve)

pytestmark = [pytest.mark.cudasim,
              pytest.mark.skipif(not TESTS.exists(), reason="../shared/networks is not beside the repository")]
RTOL = 1e-9
HERE = Path(__file__).parent

# id, network, scenarios, seed, duration (s), comparison: "exact" (CPU with libm powers, bit for bit)
# or "rtol" (the CPU backend as it ships, 1e-9 relative); TRIALS (None: the network's).
CASES = [
    ("net1-snapshot", TESTS / "network_one" / "NET1.inp", 6, 3, 0, "rtol"),
    ("net1-3-24h-controls", TESTS / "network_one" / "NET1-3.inp", 4, 5, 24 * 3600, "rtol"),
    ("net1-emitters", TESTS / "network_one" / "NET1emit.inp", 4, 7, 0, "exact"),
    ("net1-pbv", TESTS / "network_one" / "NET1-PBV.inp", 4, 9, 0, "exact"),
    ("net1-cv", TESTS / "network_one" / "NET1cv.inp", 4, 2, 0, "exact"),
    ("2prvs", TESTS / "valves" / "2PRVs.inp", 6, 11, 0, "exact"),
    ("fcv", TESTS / "valves" / "fcv.inp", 6, 13, 0, "exact"),
    ("fcv2", TESTS / "valves" / "fcv2.inp", 4, 17, 0, "exact"),
    ("darcy-weisbach-fcvs", TESTS / "valves" / "5fcvs.inp", 4, 41, 0, "rtol"),
    ("darcy-weisbach-tanks-24h", TESTS / "tanks" / "gestar1.inp", 3, 43, 24 * 3600, "rtol"),
    ("darcy-weisbach-laminar", "laminar", 4, 45, 0, "rtol"),
    ("fcv-noflow", TESTS / "valves" / "fcv-noflow.inp", 4, 19, 0, "exact"),
    ("simpson-prv-fcv", TESTS / "small" / "simpson_test.inp", 4, 23, 0, "exact"),
    ("2tanks-24h", TESTS / "tanks" / "2Tanks.inp", 3, 29, 24 * 3600, "exact"),
    ("psv-tcv", "psv-tcv", 6, 31, 0, "exact"),
    ("badvalve-damplimit", "dead-end-prv", 4, 43, 0, "exact"),
    ("pda-falls-back", "pda", 3, 37, 0, "rtol"),
    ("custom-pump-curve-24h", "custom-pump", 3, 47, 24 * 3600, "exact"),
    ("constant-power-pump-24h", "power-pump", 3, 53, 24 * 3600, "exact"),
]
TRIALS = {"trials-exhausted": 1}
CASES.append(("trials-exhausted", TESTS / "valves" / "2PRVs.inp", 4, 59, 0, "exact"))
# The batch solved in device slices of 2 scenarios (as when it exceeds the device's free memory).
DEVICE_BATCH = {"net1-3-sliced-24h": 2}
CASES.append(("net1-3-sliced-24h", TESTS / "network_one" / "NET1-3.inp", 5, 5, 24 * 3600, "exact"))
# The first scenario's matrix is singular (no valve to rescue it): it fails alone, as EPANET's error 110.
SINGULAR_FIRST = {"error-110-beside-good-scenarios"}
CASES.append(("error-110-beside-good-scenarios", TESTS / "network_one" / "NET1.inp", 3, 1, 0, "exact"))


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """Every case solved once with --backend cupy under the simulator: {id: arrays}."""
    folder = tmp_path_factory.mktemp("cudasim")
    made = {"psv-tcv": psv_tcv_network(folder), "pda": pda_network(folder),
            "dead-end-prv": dead_end_prv_network(folder), "custom-pump": pump_network(folder, "custom"),
            "power-pump": pump_network(folder, "power"), "laminar": laminar_network(folder)}
    cases = [dict(id=i, path=str(made.get(str(p), p)), n=n, seed=s, duration_s=d, max_trials=TRIALS.get(i),
                  device_batch=DEVICE_BATCH.get(i), singular_first=i in SINGULAR_FIRST) for i, p, n, s, d, _ in CASES]
    (folder / "cases.json").write_text(json.dumps(cases))
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONWARNINGS="ignore::DeprecationWarning")
    done = subprocess.run([sys.executable, str(HERE / "cudasim_compare.py"), str(folder / "cases.json"), str(folder)],
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {c["id"]: (c["path"], dict(np.load(folder / f"{c['id']}.npz"))) for c in cases}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_device_kernels_match_the_cpu_backend(simulated, case):
    name, _, n, seed, duration_s, how = case
    path, device = simulated[name]
    if how == "exact":
        with libm_powers():
            cpu = arrays(solve(path, "numba", n, seed, duration_s, TRIALS.get(name),
                               singular_first=name in SINGULAR_FIRST))
        # A failed scenario's values are not an answer (the CPU paths leave NaN where its coefficients were
        # not finite, the device its last iterate): only its failure is compared.
        solved = ~cpu["failed"]
        np.testing.assert_array_equal(device["failed"], cpu["failed"], err_msg=f"{name}: failed")
        for key, value in cpu.items():
            np.testing.assert_array_equal(device[key][solved], value[solved], err_msg=f"{name}: {key}")
    else:
        cpu = arrays(solve(path, "numba", n, seed, duration_s))
        for key in QUANTITIES:
            # Relative to each value, and to the quantity's largest value for values near zero.
            scale = float(np.nanmax(np.abs(cpu[key]), initial=0.0))
            np.testing.assert_allclose(device[key], cpu[key], rtol=RTOL, atol=RTOL * scale, err_msg=f"{name}: {key}")
        for key in ("status", "converged", "iterations"):
            np.testing.assert_array_equal(device[key], cpu[key], err_msg=f"{name}: {key}")
    if name in SINGULAR_FIRST:
        assert device["failed"].tolist() == [True] + [False] * (n - 1), device["failed"]
    elif name == "trials-exhausted":
        assert not device["converged"].all(), "TRIALS 1 (+ UNBALANCED CONTINUE 10) should leave some unconverged"
    else:
        assert device["converged"].mean() > 0.5, f"{name}: most scenarios should converge"
    said = str(device["warnings"])
    expected = {"pda-falls-back": "pressure-driven demands"}.get(name)
    if expected:
        assert expected in said and "reference path" in said, said
    else:
        assert said == "", f"{name}: the device kernels should carry this network, but: {said}"


# EPANET 2.3's pipe leakage ([LEAKAGE] in the file, or leak_favad_* perturbations): id, network, scenarios, seed,
# duration (s), favad perturbations. Solved in a child process of their own, so that `-k leakage` stays short.
LEAKAGE_CASES = [
    ("leakage-section-snapshot", "leakage", 3, 61, 0, False),
    ("leakage-section-and-perturbations-6h", "leakage", 3, 67, 6 * 3600, True),
    ("leak-favad-perturbations", TESTS / "network_one" / "NET1.inp", 3, 71, 0, True),
]


def _simulate(folder, cases) -> dict:
    """`cases` (dicts of cudasim_compare.main) solved with --backend cupy under the simulator: {id: arrays}."""
    for case in cases:
        case.setdefault("max_trials", None)
        case.setdefault("device_batch", None)
        case.setdefault("singular_first", False)
    (folder / "cases.json").write_text(json.dumps(cases))
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONWARNINGS="ignore::DeprecationWarning")
    done = subprocess.run([sys.executable, str(HERE / "cudasim_compare.py"), str(folder / "cases.json"), str(folder)],
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {c["id"]: dict(np.load(folder / f"{c['id']}.npz")) for c in cases}


def test_pipe_leakage_on_the_cupy_backend(tmp_path):
    """Pipe leakage (FAVAD) on the cupy backend gives the numba backend's answer to 1e-9 relative, heads,
    flows, demands and leakage (pipe leakage included), statuses, convergence and trial counts alike: never a
    silently different answer. The device kernels carry it: no warning of a fallback."""
    path = pipe_leakage_network(tmp_path)
    cases = [dict(id=i, path=str(path if p == "leakage" else p), n=n, seed=s, duration_s=d, favad=fav)
             for i, p, n, s, d, fav in LEAKAGE_CASES]
    device = _simulate(tmp_path, cases)
    for case in cases:
        name = case["id"]
        got = device[name]
        cpu = arrays(solve(case["path"], "numba", case["n"], case["seed"], case["duration_s"], favad=case["favad"]))
        assert cpu["converged"].all(), name
        # pipe leakage adds leakage at junctions beyond the one orifice leak of each mixed scenario
        assert ((cpu["leak_m3s"] > 0).reshape(case["n"], -1).sum(axis=1) > 1).any(), name
        for key in QUANTITIES:
            scale = float(np.nanmax(np.abs(cpu[key]), initial=0.0))
            np.testing.assert_allclose(got[key], cpu[key], rtol=RTOL, atol=RTOL * scale, err_msg=f"{name}: {key}")
        for key in ("status", "converged", "iterations", "failed"):
            np.testing.assert_array_equal(got[key], cpu[key], err_msg=f"{name}: {key}")
        said = str(got["warnings"])
        assert said == "", f"{name}: the device kernels should carry pipe leakage, but: {said}"


def _nvvm_missing() -> str | None:
    try:
        from numba.cuda.cudadrv.nvvm import NVVM
        NVVM()
    except Exception as error:  # noqa: BLE001 - any failure to load libNVVM means: cannot compile here
        return f"libNVVM not found ({type(error).__name__}); install numba-cuda[cu13] to compile for a GPU"
    try:
        from cuda.pathfinder import load_nvidia_dynamic_lib
        load_nvidia_dynamic_lib("nvrtc")
    except Exception as error:  # noqa: BLE001 - likewise for NVRTC (the test extra installs it)
        return f"NVRTC not found ({type(error).__name__}); pip install nvidia-cuda-nvrtc to compile for a GPU"
    return None


def test_iteration_kernel_compiles_for_hopper(monkeypatch):
    """The simulator runs Python, not CUDA: this compiles the very kernel to PTX for sm_90 (H100/H200)
    with the driver's real argument types, so typing or lowering errors show without a GPU."""
    import os
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        pytest.skip("the simulator is on in this process")
    missing = _nvvm_missing()
    if missing:
        pytest.skip(missing)
    import types

    import numba
    import numba.cuda.dispatcher as dispatcher
    from numba import cuda

    from parktwin.hydraulics import device
    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.inputs import BatchInputs
    from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions
    from parktwin.kernels import cuda_gga
    solver = HydraulicSolver(load_network(TESTS / "network_one" / "NET1.inp"), SolverOptions(backend="numba"))
    monkeypatch.setattr(device, "simulated", lambda: True)      # host arrays stand for the device's
    driver = device.DeviceGradientSolver(solver.sn, solver.gga.assembler, solver.gga.settings)
    state = solver._initial(BatchInputs.base(2))
    args, _, _ = driver.launch_arguments(state)
    # numba-cuda asks the current device for its compute capability when it types a device function.
    monkeypatch.setattr(dispatcher, "get_current_device", lambda: types.SimpleNamespace(compute_capability=(9, 0)))
    ptx, _ = cuda.compile_ptx(cuda_gga.iterate.py_func, tuple(numba.typeof(a) for a in args), cc=(9, 0))
    assert ".visible .entry" in ptx and ".target sm_90" in ptx
    assert "cvt.rn.f32.f64" not in ptx, "FP64 throughout: no value may be rounded to single precision"
    # Kernel parameters within CUDA's classic 4 KiB (drivers before 12.1 allow no more).
    import re
    entry = ptx.split(".visible .entry", 1)[1].split(")", 1)[0]
    assert sum(int(bits) // 8 for bits in re.findall(r"\.param \.\w(\d+)", entry)) <= 4096


def _cli(*args, simulate: bool):
    """`parktwin ARGS` as a user runs it, from the repository root; `simulate`: under the CUDA simulator."""
    env = dict(os.environ, PYTHONWARNINGS="ignore::DeprecationWarning")
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    if simulate:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    done = subprocess.run([sys.executable, "-m", "parktwin.api.cli", *map(str, args)], cwd=HERE.parent, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stdout[-2000:] + done.stderr[-2000:]
    return done


def test_parktwin_run_with_backend_cupy_equals_numba(tmp_path):
    """`parktwin run --backend cupy` under the simulator against `--backend numba`: the same file."""
    import h5py
    table = tmp_path / "leaks.csv"
    table.write_text("scenario,element,attribute,value\n"
                     "a,11,leak_area_m2,0.0004\nb,22,leak_area_m2,0.0002\nb,*,demand_multiplier,1.2\n"
                     "c,12p,status,closed\nc,31,leak_area_m2,0.0001\nd,9,pump_speed,0.9\n")
    net = TESTS / "network_one" / "NET1-3.inp"
    files = {}
    for backend, simulate in (("cupy", True), ("numba", False)):
        files[backend] = tmp_path / f"{backend}.h5"
        _cli("run", net, "--scenarios", table, "--out", files[backend], "--backend", backend, "--duration", 6 * 3600,
             "--precision", "double", simulate=simulate)
    with h5py.File(files["cupy"]) as device, h5py.File(files["numba"]) as cpu:
        assert device.attrs["backend"] == "cupy" and "simulator" in device.attrs["device"]
        # The default chunk: large on the device (which slices it to its memory), small on the CPU.
        assert device.attrs["solver_chunk_size"] == 65536 and cpu.attrs["solver_chunk_size"] == 512
        for name in ("node/head", "node/pressure", "node/demand", "node/leak", "link/flow"):
            scale = float(np.nanmax(np.abs(cpu[name][()])))
            np.testing.assert_allclose(device[name][()], cpu[name][()], rtol=RTOL, atol=RTOL * scale, err_msg=name)
        for name in ("link/status", "solver/converged", "solver/iterations"):
            np.testing.assert_array_equal(device[name][()], cpu[name][()], err_msg=name)
        assert device["solver/converged"][()].all()


def test_parktwin_mc_summary_with_backend_cupy(tmp_path):
    """`parktwin mc --store summary --backend cupy` (the simulator) counts the same statistics as numba."""
    import h5py
    net = TESTS / "network_one" / "NET1.inp"
    outs = {}
    # Different chunkings too: a scenario's answer does not depend on its chunk.
    for backend, simulate, chunk in (("cupy", True, 5), ("numba", False, 12)):
        outs[backend] = tmp_path / f"{backend}.h5"
        _cli("mc", net, "--scenarios", 12, "--seed", 4, "--store", "summary", "--out", outs[backend],
             "--backend", backend, "--chunk-size", chunk, simulate=simulate)
    with h5py.File(outs["cupy"]) as device, h5py.File(outs["numba"]) as cpu:
        assert device.attrs["backend"] == "cupy"
        names = []
        cpu.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        assert names
        for name in names:
            a, b = device[name][()], cpu[name][()]
            if a.dtype.kind == "f":
                scale = float(np.nanmax(np.abs(b), initial=0.0))
                np.testing.assert_allclose(a, b, rtol=RTOL, atol=RTOL * scale, err_msg=name)
            else:
                np.testing.assert_array_equal(a, b, err_msg=name)


def test_parktwin_park_mc_with_backend_cupy(tmp_path):
    """`parktwin park mc --backend cupy` (the simulator) on the bundled park: the same study, bit for bit, as
    `--backend numba` with libm's powers (run in this process)."""
    import h5py

    from parktwin.api.cli import main
    park = HERE.parent / "twin" / "example_park"
    args = ["park", "mc", str(park), "--scenarios", "3", "--seed", "2", "--snapshot"]
    _cli(*args, "--out", tmp_path / "cupy.h5", "--backend", "cupy", simulate=True)
    with libm_powers():
        try:
            main([*args, "--out", str(tmp_path / "numba.h5"), "--backend", "numba"])
        except SystemExit as done:
            assert done.code in (0, None)
    assert json.loads((tmp_path / "cupy.json").read_text()) == json.loads((tmp_path / "numba.json").read_text())
    with h5py.File(tmp_path / "cupy.h5") as device, h5py.File(tmp_path / "numba.h5") as cpu:
        names = []
        cpu.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        assert names
        for name in names:
            np.testing.assert_array_equal(device[name][()], cpu[name][()], err_msg=name)


def test_a_state_the_kernels_do_not_know_is_refused_by_name(monkeypatch):
    """A state field the device kernels do not read (here a made-up newer leak law) that carries values is
    never ignored: the device solve refuses it, naming the field."""
    from dataclasses import field, make_dataclass

    from parktwin.hydraulics import device
    from parktwin.hydraulics.state import HydraulicState
    from parktwin.hydraulics.compile import load_network
    from parktwin.hydraulics.inputs import BatchInputs
    from parktwin.hydraulics.solver import HydraulicSolver, SolverOptions
    solver = HydraulicSolver(load_network(TESTS / "network_one" / "NET1.inp"), SolverOptions(backend="numba"))
    monkeypatch.setattr(device, "simulated", lambda: True)
    driver = device.DeviceGradientSolver(solver.sn, solver.gga.assembler, solver.gga.settings)
    state = solver._initial(BatchInputs.base(2))
    assert device.unsupported_state(state) is None
    newer = make_dataclass("NewerState", [("burst_ke", np.ndarray, field(default=None))], bases=(HydraulicState,))
    leaky = newer(**vars(state), burst_ke=np.ones((solver.net.n_junctions, 2)))
    with pytest.raises(NotImplementedError, match="burst_ke"):
        driver.solve(leaky)
