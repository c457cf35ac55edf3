# Two commands a fresh clone needs: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo lint typecheck unit bench chaos mutants clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,embedded,server,tui]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check jobqueue tests bench
	$(BIN)/ruff format --check jobqueue tests bench

typecheck: $(STAMP)
	$(BIN)/mypy jobqueue

unit: $(STAMP)
	./scripts/ensure-test-servers
	$(BIN)/python -m pytest -q -n 2  # two at a time: most tests wait on real processes

test: lint typecheck unit

demo: $(STAMP)
	$(BIN)/python -m jobqueue.demo

bench: $(STAMP)
	$(BIN)/python bench/run.py --doc docs/performance.md

# Every fault-injection scenario at full scale; writes docs/reliability.md from the run.
chaos: $(STAMP)
	./scripts/ensure-test-servers
	$(BIN)/python -m tests.chaos

# Each scenario against a copy of the code with the fault it guards put back: all must fail.
mutants: $(STAMP)
	./scripts/ensure-test-servers
	$(BIN)/python -m tests.chaos.mutants --doc docs/mutants.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache demo-data
