# Two commands: `make report` (the evaluation report on the built-in demo data) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CITY   ?= zhanjiang
YEAR   ?= 2025
LANGS  ?= zh
# report renderer: auto (Quarto when the quarto command exists, else offline), quarto or offline
ENGINE ?= auto

.PHONY: report test lint demo clean-processed

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m analysis demo --city $(CITY) --if-absent

report: demo
	$(BIN)/python -m analysis run --city $(CITY) --year $(YEAR) --lang $(LANGS) --engine $(ENGINE)

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check analysis tests benchmarks

clean-processed:
	rm -rf data/processed/$(CITY) reports/executed reports/output build
