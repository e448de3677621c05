# Two entry points: `make run` (the platform with a simulated factory) and `make test`.
# Both install what they need on a fresh machine: a virtualenv with the package, and the
# local servers (Mosquitto 2, PostgreSQL 15, TimescaleDB built from Debian's source).
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: run test lint typecheck imports unit bootstrap servers clean

bootstrap: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	# The development tooling (f5gdev/, loadtests/) is not part of the distribution (the wheel
	# holds services/ only): the checkout goes on the venv's path so it imports from here.
	$(BIN)/python -c 'import pathlib, site; pathlib.Path(site.getsitepackages()[0], "factory5g-dev.pth").write_text("$(CURDIR)\n")'
	# Third-party Sparkplug B edge node for the adapter tests; it pins paho-mqtt<2 in its
	# metadata but runs on paho-mqtt 2 (tests prove it), so it is installed without its pins.
	$(BIN)/pip install -q --no-deps 'pysparkplug==0.6.1'
	touch $@

servers:
	bash scripts/install-stack.sh
	bash scripts/install-browser.sh

run: bootstrap servers
	$(BIN)/factory5g up

lint: bootstrap
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: bootstrap
	$(BIN)/mypy

# The layering contract (pyproject.toml [tool.importlinter], docs/architecture.md#layers).
imports: bootstrap
	$(BIN)/lint-imports

test: bootstrap servers lint typecheck imports
	CI=$${CI:-true} $(BIN)/pytest -q -n 3 --dist loadfile

clean:
	-$(BIN)/factory5g stack down
	rm -rf $(VENV)
