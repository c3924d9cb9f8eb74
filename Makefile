# Two commands do all the set-up on a fresh machine:
#   make demo   - the payroll demo through a real relay
#   make test   - the whole test suite (unit, integration, interop)
# Both bootstrap the venv, pip packages and npm packages from files in this repo.

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
NODE_DIR := interop_tests/node

.PHONY: demo test check bench bootstrap apt clean

bootstrap: apt $(VENV)/.stamp $(NODE_DIR)/node_modules/.stamp

apt:
	@scripts/apt-bootstrap apt-packages.txt

$(VENV)/.stamp: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,dev]'
	touch $@

$(NODE_DIR)/node_modules/.stamp: $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: bootstrap
	$(PY) -m samples.payroll.demo

test: bootstrap
	$(PY) -m pytest

check: bootstrap
	$(VENV)/bin/ruff check relay bindings soap samples tests interop_tests
	$(VENV)/bin/mypy relay bindings soap

bench: bootstrap
	$(PY) -m bench

clean:
	rm -rf $(VENV) $(NODE_DIR)/node_modules .soaprelay
