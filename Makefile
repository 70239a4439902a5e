# Two commands on a fresh machine with Python 3.11+: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= config.example.toml
# Test processes at once: the suite mostly waits on daemons, relays and databases, so
# more processes than cores pay off; a module's tests stay in one process (loadfile).
TEST_WORKERS ?= 4

.PHONY: run test bench clean

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "mailintake needs Python 3.11 or newer; set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

run: $(BIN)/.installed
	$(BIN)/mailintake --config $(CONFIG) db upgrade
	$(BIN)/mailintake --config $(CONFIG) serve

test: $(BIN)/.installed
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

# Every benchmark, one table (bench/run.py); `make bench BENCH_ARGS=--quick` for a short run.
BENCH_ARGS ?=
bench: $(BIN)/.installed
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache
