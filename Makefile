# Portique: two commands. `make demo` runs the gate on its embedded default; `make test`
# passes the whole suite. Both set everything up on first run: system packages (as root,
# or through sudo on Raspberry Pi OS), a .venv and the Python dependencies.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages the gate needs at run time (zbar for the second decoder backend) and the
# test suite needs (tmux for the terminal test, mosquitto for the venue broker, systemd's
# analyzer for the unit files).
SYSTEM_PACKAGES ?= libzbar0 tmux mosquitto systemd
# On a Raspberry Pi the real pin library comes along.
EXTRAS := dev$(shell grep -qs 'Raspberry Pi' /proc/device-tree/model && echo ,pi)

.PHONY: all setup system-deps demo test test-slow lint typecheck contracts bench clean

all: test

setup: $(STAMP)

system-deps:
	@missing=""; \
	for p in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory system-deps
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	touch $@

demo: $(STAMP)
	$(BIN)/python -m gate.demo

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

test: $(STAMP) lint typecheck contracts
	$(BIN)/python -m pytest -m "not slow" -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -q

bench: $(STAMP)
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
