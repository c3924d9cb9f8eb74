# Two commands do all the set-up on a fresh machine:
#   make demo   - the payroll demo through a real relay (Python only: no Node needed)
#   (make demo-wcf - a C# WCF client calls the payroll service: needs Mono, mono-complete)
#   make test   - the whole test suite (unit, integration, interop: needs Node 20)
# Both install the Debian packages in apt-packages.txt that are missing and bootstrap
# the venv with the pip packages; make test also installs the npm packages (npm ci).

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
NODE_DIR := interop_tests/node
OIDC_DIR := interop_tests/oidc

.PHONY: demo demo-wcf test check bench chaos bootstrap apt clean

bootstrap: apt $(VENV)/.stamp $(NODE_DIR)/node_modules/.stamp $(OIDC_DIR)/node_modules/.stamp

apt:
	@scripts/apt-bootstrap apt-packages.txt

# apt is order-only: it runs first (python3.11-venv) but never forces a new venv.
$(VENV)/.stamp: setup.cfg pyproject.toml | apt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,dev]'
	touch $@

$(NODE_DIR)/node_modules/.stamp: $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The OpenID provider of the identity tests (oidc-provider), apart from the relay peers.
$(OIDC_DIR)/node_modules/.stamp: $(OIDC_DIR)/package.json $(OIDC_DIR)/package-lock.json
	cd $(OIDC_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: $(VENV)/.stamp
	$(PY) -m samples.payroll.demo

demo-wcf: $(VENV)/.stamp
	$(PY) -m samples.payroll.wcf

test: bootstrap
	$(PY) -m pytest

check: $(VENV)/.stamp
	$(VENV)/bin/ruff check hc relay bindings soap soaprelay samples tests interop_tests
	$(VENV)/bin/mypy hc relay bindings soap soaprelay

bench: bootstrap
	$(PY) -m bench

# The chaos suite in full (SOAPRELAY_CHAOS=full: 200-client 3-minute soak, 2,000-connection
# floods, 300 + 2,000 fuzz cases; about 10 minutes; root for the network-namespace scenario).
# Writes tests/chaos/results/latest.json and latest.md. make test runs its bounded form.
chaos: bootstrap
	SOAPRELAY_CHAOS=full $(PY) -m pytest tests/chaos -p no:cacheprovider -v

clean:
	rm -rf $(VENV) $(NODE_DIR)/node_modules $(OIDC_DIR)/node_modules .soaprelay
