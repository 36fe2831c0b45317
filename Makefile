# Each target installs what it needs into .venv first, so a fresh clone needs only Python 3.11+.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint golden-update clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/shopsim run scenarios/d2c_cart_recovery.yaml

test: $(STAMP)
	$(PY) -m pytest -q tests

bench: $(STAMP)
	$(PY) -m tests.bench

lint: $(STAMP)
	$(VENV)/bin/ruff check generator tests locustfiles
	$(VENV)/bin/mypy

golden-update: $(STAMP)
	SHOPSIM_UPDATE_GOLDEN=1 $(PY) -m pytest -q tests/golden

clean:
	rm -rf $(VENV) build *.egg-info
