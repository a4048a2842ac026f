#!/usr/bin/env bash
# The device check of the cupy backend, in one call on a GPU machine that reaches no network:
#   1. the GPU tests: the device kernels against the numba backend on every shared network (tests/test_gpu.py)
#      and the EPANET oracle on every shared network with the default backend, which is cupy there;
#   2. the benchmark (bench/gpu_check.py): L-Town leak scenarios with `parktwin run` and `parktwin mc --store
#      summary`, one core of EPANET's toolkit loop on the same machine, peak device memory; its row is
#      appended to bench/RESULTS.md with the device named.
# Python packages the device image lacks come from bench/gpu-wheelhouse (`make gpu-wheelhouse`, carried with
# the working tree); ../shared/networks must be beside the repository, or give --networks DIR.
#
#   bench/gpu_check.sh                       on a GPU (about 8 minutes at most: each phase has a time limit)
#   bench/gpu_check.sh --simulate --results FILE
#                                            numba's CUDA simulator on the CPU, NET1 and a few scenarios: the
#                                            same steps end to end, for CI (tests/test_gpu_check.py)
# Options: --networks DIR  --results FILE  --run-scenarios N  --mc-scenarios N  --toolkit-scenarios N
#          --chunk-size N  --skip-tests
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
PY=${PYTHON:-python3}
SIMULATE=0 SKIP_TESTS=0
NETWORKS="$REPO/../shared/networks" RESULTS="" RUN_N="" MC_N="" TK_N="" CHUNK=""
while [ $# -gt 0 ]; do
  case "$1" in
    --simulate) SIMULATE=1 ;;
    --skip-tests) SKIP_TESTS=1 ;;
    --networks) NETWORKS=$2; shift ;;
    --results) RESULTS=$2; shift ;;
    --run-scenarios) RUN_N=$2; shift ;;
    --mc-scenarios) MC_N=$2; shift ;;
    --toolkit-scenarios) TK_N=$2; shift ;;
    --chunk-size) CHUNK=$2; shift ;;
    *) echo "gpu_check.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ -d "$NETWORKS" ] || { echo "gpu_check.sh: no networks at $NETWORKS (give --networks DIR)" >&2; exit 2; }
NETWORKS=$(cd "$NETWORKS" && pwd)
if [ "$SIMULATE" = 1 ]; then
  export NUMBA_ENABLE_CUDASIM=1
  NETWORK="$NETWORKS/epanet-tests/network_one/NET1.inp"
  : "${RESULTS:?--simulate needs --results FILE (the simulator never writes bench/RESULTS.md)}"
  RUN_N=${RUN_N:-6} MC_N=${MC_N:-6} TK_N=${TK_N:-6} CHUNK=${CHUNK:-4}
else
  unset NUMBA_ENABLE_CUDASIM
  NETWORK="$NETWORKS/benchmarks/l-town.inp"
  RESULTS=${RESULTS:-$REPO/bench/RESULTS.md}
  RUN_N=${RUN_N:-200000} MC_N=${MC_N:-1000000} TK_N=${TK_N:-20000} CHUNK=${CHUNK:-65536}
fi
RESULTS=$(cd "$(dirname "$RESULTS")" && pwd)/$(basename "$RESULTS")
export PYTHONWARNINGS=ignore::DeprecationWarning PYTHONUNBUFFERED=1
phase() { echo "== gpu_check: $* ($(date -u +%H:%M:%S))"; }

# ---- environment: use an installed parktwin, else the device image's Python (whose own packages stay as
# they are) plus the carried wheels it lacks, unpacked into a folder of their own, and this source tree
# (a tree of links gives it the installed layout: parktwin.kernels = kernels/, ...).
if ! "$PY" -c "import parktwin.kernels.registry" 2>/dev/null; then
  phase "setting up (image Python $("$PY" -c 'import sys; print(sys.version.split()[0])'))"
  for module in numpy scipy h5py numba pandas matplotlib; do
    "$PY" -c "import $module" 2>/dev/null || { echo "gpu_check.sh: the image lacks $module" >&2; exit 2; }
  done
  missing=()
  for pair in wntr:wntr epanet:owa-epanet networkx:networkx six:six typer:typer click:click rich:rich \
              markdown_it:markdown-it-py mdurl:mdurl pygments:pygments shellingham:shellingham \
              typing_extensions:typing-extensions numba_cuda:numba-cuda cuda.bindings:cuda-bindings \
              cuda.core:cuda-core cuda.pathfinder:cuda-pathfinder pytest:pytest iniconfig:iniconfig \
              pluggy:pluggy packaging:packaging; do
    "$PY" -c "import ${pair%%:*}" 2>/dev/null || missing+=("${pair#*:}")
  done
  SITE=${TMPDIR:-/tmp}/parktwin-gpu-check-site
  if [ ${#missing[@]} -gt 0 ]; then
    [ -d bench/gpu-wheelhouse ] || { echo "gpu_check.sh: missing ${missing[*]} and no bench/gpu-wheelhouse (make gpu-wheelhouse)" >&2; exit 2; }
    phase "installing ${missing[*]} into $SITE"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$SITE" \
      --find-links bench/gpu-wheelhouse "${missing[@]}"
  fi
  SRC=${TMPDIR:-/tmp}/parktwin-gpu-check-src
  rm -rf "$SRC" && mkdir -p "$SRC/parktwin"
  for f in "$REPO"/parktwin/*; do ln -s "$f" "$SRC/parktwin/"; done
  for d in kernels hydraulics scenarios twin viz api; do ln -s "$REPO/$d" "$SRC/parktwin/$d"; done
  export PYTHONPATH="$SRC:$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}"
  # From the repository root its own parktwin/ (the facade alone) would shadow the linked tree.
  cd "$SRC"
fi
state=$("$PY" -c "from parktwin.kernels.registry import available_backends; print(available_backends()['cupy'])")
[ "$state" = available ] || { echo "gpu_check.sh: the cupy backend is not available: $state" >&2; exit 1; }
phase "device: $("$PY" -c "from parktwin.scenarios.runner import device_name; print(device_name('cupy'))")"

# ---- 1. the GPU tests (the networks from PARKTWIN_NETWORKS; -p no:cacheprovider leaves nothing in the tree)
status=0
export PARKTWIN_NETWORKS="$NETWORKS"
if [ "$SKIP_TESTS" = 0 ]; then
  if [ "$SIMULATE" = 1 ]; then
    export PARKTWIN_GPU_CHECK_ONLY="epanet-tests/network_one/NET1.inp"
    phase "GPU tests under the simulator on NET1"
    timeout 300 "$PY" -m pytest -q -p no:cacheprovider -m gpu "$REPO/tests/test_gpu.py" || status=$?
  else
    phase "GPU tests: device kernels against numba on every shared network"
    timeout 180 "$PY" -m pytest -q -p no:cacheprovider -m gpu "$REPO/tests/test_gpu.py" || status=$?
    phase "oracle: every shared network against EPANET with the default backend (cupy)"
    timeout 120 "$PY" -m pytest -q -p no:cacheprovider "$REPO/tests/test_oracle_networks.py" || status=$?
  fi
fi

# ---- 2. the benchmark
phase "benchmark: $(basename "$NETWORK"), run $RUN_N, mc $MC_N, toolkit $TK_N, chunk $CHUNK"
timeout 180 "$PY" -m bench.gpu_check --network "$NETWORK" --results "$RESULTS" --run-scenarios "$RUN_N" \
  --mc-scenarios "$MC_N" --toolkit-scenarios "$TK_N" --chunk-size "$CHUNK" || status=$?
phase "done, exit $status; results in $RESULTS"
exit $status
