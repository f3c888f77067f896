# The two commands a newcomer needs (both install what is missing first):
#   make run    the simulated charger (config/sil-ocpp.yaml with a local development CSMS)
#   make test   the whole test suite
PYTHON ?= python3
CONFIG ?= config/sil-ocpp.yaml

.PHONY: run test bench lint

run:
	@scripts/setup.sh
	@scripts/demo.sh $(CONFIG)

test:
	@EVERPY_SETUP_TESTS=1 scripts/setup.sh
	@scripts/test.sh

bench:
	@scripts/setup.sh
	@$(PYTHON) bench/run_all.py

lint:
	@ruff check .
