# ParkTwin: two commands set everything up on a fresh machine.
#   make demo   create the virtual environment, install, run the bundled example end to end
#   make test   create/install likewise, run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test install bench clean gpu-wheelhouse

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# 3D views need system packages from Debian, installed once (a stamp) when missing, as root only:
# EGL for off-screen VTK rendering (demo and tests), Chromium for the HTML export test. Elsewhere a note
# is printed and the tests that need them skip with a reason.
VIZ_EGL      = $(VENV)/.viz-egl
VIZ_CHROMIUM = $(VENV)/.viz-chromium
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then touch $@; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null && touch $@; \
	else echo "note: 3D views want$$missing (Debian packages); not root or no apt-get, so not installed"; fi
endef

$(VIZ_EGL): $(STAMP)
	$(call apt_install,libegl1 libgl1-mesa-dri)

$(VIZ_CHROMIUM): $(STAMP)
	$(call apt_install,chromium)

demo: $(STAMP) $(VIZ_EGL)
	$(BIN)/parktwin demo

test: $(STAMP) $(VIZ_EGL) $(VIZ_CHROMIUM)
	$(BIN)/python -m pytest -q -ra

# The four figures of issue 12, each against EPANET's toolkit loop in the same run (sized for about
# 15 minutes on 2 cores): L-Town snapshot leaks; Pacific City snapshot leaks (EPANET from fresh initial
# flows, EN_initH(10): warm-started it leaves about half of them unbalanced; demand multipliers 0.7-1.0
# times the file's 1.165, since above about 1.08 both solvers end most of them unbalanced); 24 h L-Town
# leaks against EPANET's EN_runH/EN_nextH loop; the example park's 24 h Monte-Carlo study. Each prints
# a row for bench/RESULTS.md. A benchmark whose pre-timing check fails says so and is not timed; the
# others still run, and `make bench` then exits non-zero.
BENCH_NETWORKS ?= $(abspath ../shared/networks/benchmarks)
bench: $(STAMP)
	@failed=0; \
	$(BIN)/python -m bench.run_leak_benchmark --scenarios 50000 --repeats 3 || failed=1; \
	$(BIN)/python -m bench.run_leak_benchmark --network $(BENCH_NETWORKS)/pacific-city.inp --scenarios 2000 --init-flag 10 --demand-range 0.7 1.0 --repeats 2 || failed=1; \
	$(BIN)/python -m bench.run_leak_benchmark --network $(BENCH_NETWORKS)/l-town.inp --duration 86400 --scenarios 1000 --repeats 2 || failed=1; \
	$(BIN)/python -m bench.park_study_benchmark --mode day || failed=1; \
	exit $$failed

# Wheels bench/gpu_check.sh installs on a GPU machine that reaches no network (it installs only those the
# machine's image lacks). The image is Python 3.12 with numpy, scipy, h5py, numba, cupy-cuda13x, CUDA 13's
# toolkit (NVVM) and pandas/matplotlib; these complete it. Carried with the working tree: under 64 MiB with it.
GPU_WHEELHOUSE = bench/gpu-wheelhouse
GPU_WHEELS = wntr owa-epanet networkx six numba-cuda cuda-bindings cuda-core cuda-pathfinder \
             typer click rich markdown-it-py mdurl pygments shellingham typing-extensions \
             pytest iniconfig pluggy packaging
gpu-wheelhouse: $(STAMP)
	rm -rf $(GPU_WHEELHOUSE) && mkdir -p $(GPU_WHEELHOUSE)
	$(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
	  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
	  -d $(GPU_WHEELHOUSE) $(GPU_WHEELS)
	@size=$$(du -sm $(GPU_WHEELHOUSE) | cut -f1); echo "$(GPU_WHEELHOUSE): $$size MiB"; \
	  if [ $$size -gt 40 ]; then echo "over 40 MiB: with the tree and the networks it would not travel" >&2; exit 1; fi

clean:
	rm -rf $(VENV) demo-output .pytest_cache
