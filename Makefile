# Two commands: `make report` (the evaluation report on the built-in demo data) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CITY   ?= zhanjiang
YEAR   ?= 2025
LANGS  ?= zh

LOCK   := requirements.lock
UV     := uv==0.13.9

.PHONY: report test lint demo clean-processed install lock

# Install exactly what requirements.lock pins (versions and hashes), then the project itself without
# dependencies: a fresh machine gets the same packages next year as today.
$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

# Refresh the lock after editing the dependencies in pyproject.toml (needs PyPI), and the conda file.
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet '$(UV)'
	$(BIN)/python -m uv pip compile pyproject.toml --extra dev --universal --generate-hashes \
		--python-version 3.11 --quiet --custom-compile-command 'make lock' -o $(LOCK)
	$(BIN)/python -m analysis.conda_env $(LOCK) environment.yml
	@echo "now run: make install && make test"

demo: $(STAMP)
	$(BIN)/python -m analysis demo --city $(CITY) --if-absent

report: demo
	$(BIN)/python -m analysis run --city $(CITY) --year $(YEAR) --lang $(LANGS)

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check analysis tests benchmarks

clean-processed:
	rm -rf data/processed/$(CITY) reports/executed reports/output build
