# iam-offboard: `make test` (everything CI checks) and `make demo`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
CARGO ?= cargo
RELEASE_BINS := get-username get-keys-certificates-mfa-and-credentials get-groups-and-policies \
	delete-keys-certificates-mfa-and-credentials delete-groups-and-policies delete-iam-user-and-verify offboard

.PHONY: test demo build unit e2e lint clean-stack

test: build unit e2e

build:
	$(CARGO) build --release --workspace --locked
	@for b in $(RELEASE_BINS); do test -x target/release/$$b || { echo "missing target/release/$$b"; exit 1; }; done

unit:
	$(CARGO) test --workspace --locked

e2e: $(VENV)/.installed build
	$(PY) -m pytest tests/e2e -q -p no:cacheprovider

demo: $(VENV)/.installed build
	$(PY) tests/demo.py

$(VENV)/.installed: tests/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $@
