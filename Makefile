# ParkTwin: two commands set everything up on a fresh machine.
#   make demo   create the virtual environment, install, run the bundled example end to end
#   make test   create/install likewise, run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test install bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/parktwin demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -ra

bench: $(STAMP)
	$(BIN)/python -m bench.run_leak_benchmark --scenarios 50000 --repeats 3

clean:
	rm -rf $(VENV) demo-output .pytest_cache
