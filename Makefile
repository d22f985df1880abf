# fleetpy: the two commands a new user runs are `make demo` and `make test`.
# Both install what they need on a fresh Debian 12 machine (as root), then run.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
APT_PACKAGES := etcd-server etcd-client curl libdbus-1-dev libglib2.0-dev pkg-config openssh-server \
                iproute2 util-linux procps openssl shellcheck ruby vagrant
PYTEST_ARGS ?=

.PHONY: all deps apt venv test lint typecheck unit demo bench clean

all: test

apt: .stamp-apt
.stamp-apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing apt packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@# openssh-server's postinst enables sshd on the host; the lab runs its own sshd per node.
	@systemctl disable ssh.service >/dev/null 2>&1 || true
	@touch $@

venv: $(VENV)/.stamp
$(VENV)/.stamp: pyproject.toml .stamp-apt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

deps: apt venv

lint: deps
	$(VENV)/bin/ruff check fleetpy tests bench
	$(PY) scripts/check_module_size.py fleetpy

typecheck: deps
	$(VENV)/bin/mypy

test: lint typecheck
	@# pytest exits 5 when it collected no tests: say so plainly and let .ci/run decide.
	$(VENV)/bin/pytest $(PYTEST_ARGS) || { rc=$$?; [ $$rc -eq 5 ] && echo "pytest: no tests collected" >&2; exit $$rc; }

unit: deps
	$(VENV)/bin/pytest -m "not lab and not slow" $(PYTEST_ARGS)

demo: deps
	$(PY) scripts/demo.py

bench: deps
	$(PY) -m bench $(if $(QUICK),--quick,)

clean:
	rm -rf $(VENV) .stamp-apt .pytest_cache .mypy_cache .ruff_cache *.egg-info
