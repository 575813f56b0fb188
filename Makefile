# Portique: two commands. `make demo` runs the gate on its embedded default; `make test`
# passes the functional suite (`make test-slow` the long suites; CI runs both). Both set everything up on first run: system packages (as root,
# or through sudo on Raspberry Pi OS), a .venv and the Python dependencies.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
ON_PI  := $(shell grep -qs 'Raspberry Pi' /proc/device-tree/model && echo yes)
# Debian packages a gate needs at run time: zbar for the second decoder backend; on a
# Raspberry Pi the real pin library, from Raspberry Pi OS (the venv then sees it).
GATE_PACKAGES ?= libzbar0 $(if $(ON_PI),python3-lgpio)
VENV_FLAGS    := $(if $(ON_PI),--system-site-packages)
# ... and what the demo and the test suite need besides: tmux for the terminal test,
# mosquitto for the venue broker, systemd's analyzer for the unit files, FUSE 3 for the
# power-cut file system (tests/powercut/).
DEV_PACKAGES  ?= tmux mosquitto systemd fuse3 libfuse3-3
# ... and what only the tests need (not the demo): Prometheus and its promtool for the
# alert rules, Chromium (large) for the rehearsal wallet's browser test.
TEST_PACKAGES ?= prometheus chromium
EXTRAS := dev

.PHONY: all setup system-deps dev-deps test-deps apt-install demo test test-slow safe-modes lint typecheck \
	contracts \
	bench clean deb lintian check-arm64 package-deps

all: test

setup: $(STAMP)

# `make setup` on a gate installs the gate's packages only; demo and test add the rest.
system-deps:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(GATE_PACKAGES)"

dev-deps:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(GATE_PACKAGES) $(DEV_PACKAGES)"

test-deps:
	@$(MAKE) --no-print-directory apt-install \
	  PACKAGES="$(GATE_PACKAGES) $(DEV_PACKAGES) $(TEST_PACKAGES)"

apt-install:
	@missing=""; \
	for p in $(PACKAGES); do \
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
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	touch $@

demo: $(STAMP) dev-deps
	$(BIN)/python -m portique.devtools.demo

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

# A checkout made under a loose umask leaves group- or world-writable fixtures, which the
# gate rightly refuses to trust (docs/operations.md, "Files the gate trusts").
safe-modes:
	@chmod -R go-w tests/fixtures config

test: $(STAMP) test-deps safe-modes lint typecheck contracts
	$(BIN)/python -m pytest -m "not slow" -q

test-slow: $(STAMP) test-deps safe-modes package-deps
	$(BIN)/python -m pytest -m slow -q

# The Debian package for a gate (docs/operations.md, "The Debian package"), built on this
# machine for either architecture: `make deb ARCH=arm64`. `make lintian ARCH=...` checks it;
# `make check-arm64` installs the arm64 package into a Bookworm arm64 root (mmdebstrap,
# qemu-user-static; cached in $(PORTIQUE_ROOTS)) and runs the gate there.
ARCH           ?= $(shell dpkg --print-architecture)
DEB_VERSION    := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' pyproject.toml)
DEB_FILE        = dist/portique_$(DEB_VERSION)_$(ARCH).deb
DEB_SOURCES    := pyproject.toml README.md $(wildcard portique/*.py portique/*/*.py \
	portique/*/*/*.py packaging/deb/* systemd/* systemd/*/* config/gate.toml docs/*.md)
PORTIQUE_ROOTS ?= /var/cache/portique-roots
ROOT_PACKAGES  ?= mmdebstrap arch-test qemu-user-static binfmt-support
export PORTIQUE_ROOTS

# The slow suite builds the amd64 package, lints it and installs it into a Debian root.
package-deps:
	@$(MAKE) --no-print-directory apt-install PACKAGES="mmdebstrap lintian"

deb: $(DEB_FILE)

dist/portique_$(DEB_VERSION)_%.deb: $(DEB_SOURCES) | $(STAMP)
	PYTHON=$(BIN)/python packaging/deb/build.sh $* dist

lintian: $(DEB_FILE)
	@$(MAKE) --no-print-directory apt-install PACKAGES=lintian
	lintian --info --pedantic --fail-on error,warning $(DEB_FILE)
	@lintian --show-overrides $(DEB_FILE) | grep '^O:' | sort | uniq -c || true

check-arm64: $(STAMP)
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(ROOT_PACKAGES)"
	@$(MAKE) --no-print-directory deb ARCH=arm64
	HOST_GATE=$(abspath $(BIN))/gate packaging/check/root-check.sh arm64 \
		dist/portique_$(DEB_VERSION)_arm64.deb

bench: $(STAMP)
	@# a benchmark that exits 3 cannot run here (its data is missing): it said why, the
	@# others still run
	@for b in benchmarks/[!_]*.py; do echo "== $$b"; $(BIN)/python $$b; rc=$$?; \
		if [ $$rc -eq 3 ]; then echo "   (skipped)"; elif [ $$rc -ne 0 ]; then exit $$rc; fi; \
	done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
