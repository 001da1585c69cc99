"""A smoke run of the benchmark harness: it measures, on tiny counts. No
timing is asserted here; the numbers live in bench/results and the README."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "emulator"))

import bench  # noqa: E402
from lambda_host import BIN_DIR  # noqa: E402

# `make test` builds the local profile; the harness is what is checked here,
# not the release binaries' numbers (`make bench` measures those).
bench.RELEASE = BIN_DIR


def test_cold_init_probe_sees_the_first_next_of_the_real_binaries():
    env = {**bench.BASE_ENV, "AWS_ENDPOINT_URL_IAM": "http://127.0.0.1:9", "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:9"}
    for binary in ("bench-floor", "get-username"):
        samples = bench.cold_init_ms([str(bench.RELEASE / binary)], env, 2)
        assert len(samples) == 2 and all(sample > 0 for sample in samples)


def test_package_sizes_are_measured_for_every_function(tmp_path, monkeypatch):
    # Stand-ins: zipping the local profile's unoptimised binaries at level 9
    # took 27 s of every CI run, and what is checked here is the harness.
    for binary in [*bench.FUNCTIONS.values(), "bench-floor"]:
        (tmp_path / binary).write_bytes(os.urandom(2**18) + bytes(3 * 2**18))  # 1 MiB, a quarter incompressible
    monkeypatch.setattr(bench, "RELEASE", tmp_path)
    sizes = bench.bench_package_sizes()
    assert set(sizes) == set(bench.FUNCTIONS) | {"floor"}
    assert all(0 < entry["zip_mib"] <= entry["binary_mib"] for entry in sizes.values())


def test_lower_bound_counts_one_mutation_per_item():
    made = {"AccessKeys": ["a", "b"], "SSHPublicKeys": [], "Certificates": [], "ServiceCredentials": ["c"],
            "MFADevices": ["arn:aws:iam::1:mfa/x", "GAKT00000001"], "Groups": [], "InlinePolicies": ["p"],
            "AttachedPolicies": []}
    bound = bench.lower_bound(made)
    # 2 keys + 1 credential + 2 devices + 1 policy + login profile, + 1 virtual delete
    assert bound["one mutation per item (+ DeleteVirtualMFADevice per virtual device)"] == 8
    assert bound["TagMFADevice per virtual device"] == 1
    assert bound["re-check before each mutating task's first change"] == 3 + 2 * 2
    assert sum(bound.values()) == 1 + 7 + 9 + 1 + 8 + 1 + 2


def test_the_busiest_window_counts_calls_within_any_span():
    assert bench.busiest_window([0.0, 0.5, 0.9, 1.0, 5.0], 1.0) == 3
    assert bench.busiest_window([0.0, 2.0, 4.0], 1.0) == 1


def test_a_tiny_scale_run_is_measured_started_independently_and_as_a_batch():
    for batch in (False, True):
        row = bench.scale_run(3, 40.0, 40.0, batch)
        assert (row["mode"], row["succeeded"], row["left_behind"]) == ("batch" if batch else "independent", 3, 0), row
        assert row["failed_by_error"] == {}, row
        assert row["stage_concurrency"] == 20, "the template's advice: IamCallsPerSecond / 2"
        assert row["iam_calls_served"] >= row["iam_calls_needed"] > 0, row
        assert row["served_over_needed"] == round(row["iam_calls_served"] / row["iam_calls_needed"], 3)


def test_every_stage_payload_the_harness_sends_is_accepted_by_its_function(monkeypatch):
    """bench_invocations fails on any error answer: a payload left behind by a
    change to a stage's request (a new required field) fails here, in `make
    test`, not an hour into `make bench`."""
    import boto3
    from server import start

    monkeypatch.setattr(bench, "WARM", 1)
    server = start(0)
    try:
        iam = boto3.client("iam", endpoint_url=server.url, region_name="us-east-1",
                           aws_access_key_id="AKIASEEDSEEDSEEDSEED", aws_secret_access_key="seed")
        bench.seed_user(iam, "bench", virtual_devices=1, passkeys=1, hardware_tokens=1)
        results = bench.bench_invocations(server.url)
    finally:
        server.stop()
    assert set(results) == set(bench.FUNCTIONS)
