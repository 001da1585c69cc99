# iam-offboard: `make test` (everything CI checks) and `make demo`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
CARGO ?= cargo
RELEASE_BINS := get-username get-keys-certificates-mfa-and-credentials get-groups-and-policies \
	delete-keys-certificates-mfa-and-credentials delete-groups-and-policies delete-iam-user-and-verify offboard bench-floor

.PHONY: test demo build unit e2e bench

test: build unit e2e

build:
	$(CARGO) build --release --workspace --locked
	@for b in $(RELEASE_BINS); do test -x target/release/$$b || { echo "missing target/release/$$b"; exit 1; }; done

unit:
	$(CARGO) test --workspace --locked

e2e: $(VENV)/.installed node_modules/.installed build
	$(PY) -m pytest tests/e2e -q -p no:cacheprovider -p no:logging

demo: $(VENV)/.installed build
	$(PY) tests/demo.py

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(VENV)/.installed: tests/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $@

# `sam build` (BuildMethod: makefile) calls build-<LogicalId> with ARTIFACTS_DIR set.
# TARGET selects the Rust target: x86_64-unknown-linux-gnu (default) or aarch64-unknown-linux-gnu.
TARGET ?=
TARGET_DIR := target/$(if $(TARGET),$(TARGET)/,)release
define lambda_build
build-$(1):
	$(CARGO) build --release --locked -p $(2) $(if $(TARGET),--target $(TARGET),)
	cp $(TARGET_DIR)/$(2) $$(ARTIFACTS_DIR)/bootstrap
endef
$(eval $(call lambda_build,GetUsernameFunction,get-username))
$(eval $(call lambda_build,GetKeysCertificatesMfaAndCredentialsFunction,get-keys-certificates-mfa-and-credentials))
$(eval $(call lambda_build,GetGroupsAndPoliciesFunction,get-groups-and-policies))
$(eval $(call lambda_build,DeleteKeysCertificatesMfaAndCredentialsFunction,delete-keys-certificates-mfa-and-credentials))
$(eval $(call lambda_build,DeleteGroupsAndPoliciesFunction,delete-groups-and-policies))
$(eval $(call lambda_build,DeleteIAMUserAndVerifyFunction,delete-iam-user-and-verify))

# Benchmarks (not part of `make test`): writes bench/results/latest.{json,md}.
bench: $(VENV)/.installed build
	$(PY) bench/bench.py
