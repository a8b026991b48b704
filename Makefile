# The two commands (see README): `make run` and `make test`. Both install what they need
# first: Debian packages (as root, only those missing) and a virtualenv in .venv.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

# Debian packages, by what needs them.
DEB_BASE := python3 python3-venv python3-dev gcc make iproute2 iputils-ping procps curl ca-certificates
DEB_RUN := $(DEB_BASE)
DEB_TEST := $(DEB_BASE) postgresql etcd-server ejabberd erlang-base

.PHONY: run test deps-run deps-test venv lint clean

run: deps-run venv
	$(PY) -m appliance.lab.smoke --config etc/lab.toml

test: deps-test venv
	$(PY) -m pytest $(PYTEST_ARGS)

deps-run:
	tools/apt-ensure $(DEB_RUN)

deps-test:
	tools/apt-ensure $(DEB_TEST)

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
