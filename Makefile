# iam-offboard: `make test` (everything CI checks) and `make demo`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
CARGO ?= cargo
BINS := get-username get-keys-certificates-mfa-and-credentials get-groups-and-policies \
	delete-keys-certificates-mfa-and-credentials delete-groups-and-policies delete-iam-user-and-verify \
	quarantine-user offboard-batch offboard bench-floor

.PHONY: test checks demo demo-functions build build-release unit lint e2e bench deploy-artifacts deploy-check asl

# The end-to-end suite mostly waits on the state machine (about one core busy
# of two), so the lint, the unit tests and the deploy check run beside it, one
# after another at the lowest CPU priority: the suite's processes come first.
# Everything is built (while pip and npm install) before the two run
# (BUILT=1: neither rebuilds under the other).
test:
	$(MAKE) --no-print-directory -j2 build $(VENV)/.zig node_modules/.installed
	$(MAKE) --no-print-directory -j2 --output-sync=line BUILT=1 e2e checks

checks: $(if $(BUILT),,build $(VENV)/.zig)
	nice -n 19 $(MAKE) --no-print-directory -j1 lint unit deploy-check

# The local stack's binaries (target/local) and the unit tests, all in the
# fast `local` profile: the SDK crates compile once for both.
#
# Clippy lints while it compiles: clippy-driver is rustc with clippy's lints,
# run on the workspace's own crates only (RUSTC_WORKSPACE_WRAPPER, which is
# how `cargo clippy` runs it; CLIPPY_ARGS is how it passes `-D warnings`).
# A separate `cargo clippy` checks every dependency again: 2 min 40 s of a
# clean-clone `make test` on a 2-core machine.
LINTED := RUSTC_WORKSPACE_WRAPPER=clippy-driver CLIPPY_ARGS=-Dwarnings__CLIPPY_HACKERY__
build:
	$(LINTED) $(CARGO) build --profile local --workspace --all-targets --locked
	@for b in $(BINS); do test -x target/local/$$b || { echo "missing target/local/$$b"; exit 1; }; done

# Deploy-grade binaries (target/release): what `make bench` measures.
build-release:
	$(CARGO) build --release --workspace --locked
	@for b in $(BINS); do test -x target/release/$$b || { echo "missing target/release/$$b"; exit 1; }; done

BUILD := $(if $(BUILT),,build)

unit: $(BUILD)
	$(LINTED) $(CARGO) test --profile local --workspace --locked

# Formatting (rustfmt.toml); clippy's warnings fail `build` itself.
lint: $(BUILD)
	$(CARGO) fmt --all --check

# Two workers, one test file each at a time (each file's fixtures start their
# own emulator and Lambda host on free ports): 274 s -> 153 s here, as most of
# a scenario is waiting on the state machine.
E2E_WORKERS ?= 2
e2e: $(VENV)/.installed node_modules/.installed $(BUILD)
	$(PY) -m pytest tests/e2e -q -p no:cacheprovider -p no:logging -n $(E2E_WORKERS) --dist loadfile \
		--deselect $(BUILT_ARTIFACT_TESTS)

# The demo runs the eight functions only: no test targets, no CLI. They build
# while pip installs the local stack (only the stack: no linters, no pytest).
demo:
	$(MAKE) --no-print-directory -j2 demo-functions $(VENV)/.stack
	$(PY) tests/demo.py

demo-functions:
	$(CARGO) build --profile local --locked $(foreach b,$(LAMBDA_BINS),-p $(b))

# The state machines' JSON (what SAM deploys), rendered from their YAML
# sources statemachine/src/*.asl.yaml; tests/e2e/test_asl_source.py keeps them equal.
asl: $(VENV)/.installed
	$(PY) statemachine/render.py

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(VENV)/.stack: tests/stack-requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/stack-requirements.txt
	touch $@

$(VENV)/.installed: tests/requirements.txt $(VENV)/.stack
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $@

# Deploy artifacts: the release profile, linked by zig against glibc
# $(GLIBC) (the provided.al2023 runtime's), so a binary built on any host runs
# there. `sam build` (BuildMethod: makefile) calls build-<LogicalId> with
# ARTIFACTS_DIR set. LAMBDA_TARGET: x86_64-unknown-linux-gnu (default) or
# aarch64-unknown-linux-gnu (rustup target add it; Architecture=arm64).
LAMBDA_TARGET ?= x86_64-unknown-linux-gnu
GLIBC := 2.34
LAMBDA_BINS := get-username get-keys-certificates-mfa-and-credentials get-groups-and-policies \
	delete-keys-certificates-mfa-and-credentials delete-groups-and-policies delete-iam-user-and-verify \
	quarantine-user offboard-batch
ZIGBUILD = PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CARGO) zigbuild --release --locked --target $(LAMBDA_TARGET).$(GLIBC)
LAMBDA_DIR := target/$(LAMBDA_TARGET)/release

$(VENV)/.zig: infra/build-requirements.txt $(VENV)/.installed
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/build-requirements.txt
	touch $@

deploy-artifacts: $(VENV)/.zig
	$(ZIGBUILD) $(foreach b,$(LAMBDA_BINS),-p $(b))

# What `make test` checks of the deploy profile (tests/e2e/test_deploy_artifacts.py):
# the largest IAM function's zip (QuarantineUser's: IAM, STS, Step Functions,
# DynamoDB and the quarantine and record code; bench/results/tls.json) and the
# only function linking S3, built exactly as deploy-artifacts builds them:
# their zip budgets and the runtime's glibc. `make bench` checks every zip.
DEPLOY_CHECK_BINS := quarantine-user offboard-batch
# The tests that read what deploy-check built (the suite checks the rest of the file).
BUILT_ARTIFACT_TESTS := tests/e2e/test_deploy_artifacts.py::test_each_function_needs_at_most_the_runtimes_glibc_and_fits_the_zip_budget

deploy-check: $(VENV)/.zig
	$(ZIGBUILD) $(foreach b,$(DEPLOY_CHECK_BINS),-p $(b))
	$(PY) -m pytest $(BUILT_ARTIFACT_TESTS) -q -p no:cacheprovider -p no:logging

define lambda_build
build-$(1): $(VENV)/.zig
	$(ZIGBUILD) -p $(2)
	cp $(LAMBDA_DIR)/$(2) $$(ARTIFACTS_DIR)/bootstrap
endef
$(eval $(call lambda_build,GetUsernameFunction,get-username))
$(eval $(call lambda_build,GetKeysCertificatesMfaAndCredentialsFunction,get-keys-certificates-mfa-and-credentials))
$(eval $(call lambda_build,GetGroupsAndPoliciesFunction,get-groups-and-policies))
$(eval $(call lambda_build,DeleteKeysCertificatesMfaAndCredentialsFunction,delete-keys-certificates-mfa-and-credentials))
$(eval $(call lambda_build,DeleteGroupsAndPoliciesFunction,delete-groups-and-policies))
$(eval $(call lambda_build,DeleteIAMUserAndVerifyFunction,delete-iam-user-and-verify))
$(eval $(call lambda_build,QuarantineUserFunction,quarantine-user))
$(eval $(call lambda_build,OffboardBatchFunction,offboard-batch))

# Benchmarks (not part of `make test`): writes bench/results/latest.{json,md}.
bench: $(VENV)/.installed build-release
	$(PY) bench/bench.py
