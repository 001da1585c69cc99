"""A smoke run of the benchmark harness: it measures, on tiny counts. No
timing is asserted here; the numbers live in bench/results and the README."""

import json
import os
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "emulator"))

import bench  # noqa: E402
from lambda_host import BIN_DIR  # noqa: E402

# `make test` builds the local profile; the harness is what is checked here,
# not the release binaries' numbers (`make bench` measures those).
bench.RELEASE = BIN_DIR


def test_cold_init_probe_sees_the_first_next_of_the_real_binaries():
    env = bench.probe_env("http://127.0.0.1:9")
    for binary in ("bench-floor", "get-username"):
        samples = bench.cold_init_ms([str(bench.RELEASE / binary)], env, 2)
        assert len(samples) == 2 and all(sample > 0 for sample in samples)


def test_cold_init_probe_reports_a_function_that_refuses_to_start_at_once():
    """A function without its deployment's state machines refuses to start
    (crates/core/src/workflow.rs): the probe says so, with the function's
    reason, rather than waiting out its 30 s."""
    env = {k: v for k, v in bench.probe_env("http://127.0.0.1:9").items() if k != "OFFBOARD_STATE_MACHINE_ARNS"}
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="OFFBOARD_STATE_MACHINE_ARNS"):
        bench.cold_init_ms([str(bench.RELEASE / "get-username")], env, 1)
    assert time.monotonic() - started < 10


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
    # DeleteGroupsAndPolicies lists the credentials again before removing anything.
    assert bound["credentials listed again before any group or policy goes (6 lists)"] == 6
    assert bound["groups and policies listed again before AWSDenyAll goes (3 lists, if held)"] == 0
    assert sum(bound.values()) == 1 + 7 + 9 + 6 + 0 + 1 + 8 + 1 + 2


def test_lower_bound_counts_the_lists_before_awsdenyall_goes_when_the_user_holds_it():
    made = {"AccessKeys": [], "SSHPublicKeys": [], "Certificates": [], "ServiceCredentials": [], "MFADevices": [],
            "Groups": [], "InlinePolicies": [], "AttachedPolicies": ["arn:aws:iam::aws:policy/AWSDenyAll"]}
    bound = bench.lower_bound(made)
    assert bound["groups and policies listed again before AWSDenyAll goes (3 lists, if held)"] == 3
    # AWSDenyAll is one attached policy to detach, + the login profile.
    assert bound["one mutation per item (+ DeleteVirtualMFADevice per virtual device)"] == 2
    # A customer managed policy of that name is any other policy.
    made["AttachedPolicies"] = ["arn:aws:iam::123456789012:policy/AWSDenyAll"]
    assert bench.lower_bound(made)["groups and policies listed again before AWSDenyAll goes (3 lists, if held)"] == 0


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
        # Every Lambda step's admission check: DescribeExecution and
        # GetExecutionHistory, at least 8 steps for this user.
        assert row["step_functions_calls_per_offboarding"] >= 2 * 8, row


def test_the_workflow_measurement_has_a_step_latency_and_a_check_for_every_stage():
    """A direct invoke is refused (NotFromWorkflow), so bench_workflow
    measures every function through real executions: two offboardings (a
    first step and a warm one), one with a grace period (QuarantineUser) and
    a batch of one (OffboardBatch). Every stage's steps are found in the
    histories and every one of them in the functions' logs, with its
    admission check; the check's Step Functions calls are counted per
    offboarding."""
    results = bench.bench_workflow(2, quarantined=1, batches=1, batch_size=1, grace_seconds=1.0)
    stages = results["stages"]
    assert set(stages) == set(bench.FUNCTIONS), sorted(stages)
    for stage, row in stages.items():
        assert row["first_step_ms"] > 0 and row["warm_step_ms"]["n"] >= 1, (stage, row)
        # Each step was admitted once and logged its check and its work.
        assert row["check_ms"]["n"] == row["function_ms"]["n"] == row["steps"], (stage, row)
        assert 0 <= row["check_ms"]["p50"] <= row["check_ms"]["max"], (stage, row)
        assert row["peak_rss_mib"] > 0, (stage, row)
    assert stages["QuarantineUser"]["steps"] == 2, "Quarantine, then Check after the wait"
    assert stages["OffboardBatch"]["check_ms_by_execution"].keys() == {"batch"}
    assert "batch child" in stages["GetUsername"]["check_ms_by_execution"]

    single = results["calls_per_offboarding"]["single"]
    steps = results["steps_per_offboarding"]["single"]
    # GetUsername, the two inventories, the credentials and one task per MFA
    # device (3), the permissions, the deletion.
    assert steps == 9, results["steps_per_offboarding"]
    assert single["step_functions_by_action"]["DescribeExecution"] == steps
    assert single["step_functions_by_action"]["GetExecutionHistory"] >= steps
    assert single["iam"] > 0 and single["step_functions"] >= 2 * steps
    # A batch child's functions also describe the batch.
    child = results["calls_per_offboarding"]["batch child"]
    assert child["step_functions_by_action"]["DescribeExecution"] > child["step_functions_by_action"]["GetExecutionHistory"]


def test_an_org_wide_run_is_measured_over_its_parent_map_run_and_children(monkeypatch):
    """bench_org on four accounts, the user in every second one: its counts come
    from the summary, its transitions from the three kinds of execution."""
    monkeypatch.setattr(bench, "ORG_USER_EVERY", 2)
    row = bench.bench_org(4)
    assert row["summary"] == {"Total": 4, "Offboarded": 0, "Planned": 2, "Restored": 0, "NotPresent": 2, "Failed": 0}
    assert row["children"] == row["report_entries"] == 4
    # ScopeOfInput, ResolveAccounts, the Map, SummarizeAccounts, AnyAccountFailed, AccountsDone.
    assert row["transitions"]["parent"] == 6
    # The harness counts every state of the Map's ItemProcessor once per item: the Task, and
    # KeepWhatTheSummaryReads with its three Pass states (a child that succeeded enters the
    # Choice and one of them; a failed one, the Task only).
    item_states = json.loads((ROOT / "statemachine" / "offboard.asl.json").read_text())[
        "States"]["OffboardEachAccount"]["ItemProcessor"]["States"]
    assert len(item_states) == 5
    assert row["transitions"]["map_run_children"] == 4 * len(item_states), "one item per account"
    assert row["transitions"]["children"] > 4 * 6, row
    assert row["transitions_per_account"] == round(sum(row["transitions"].values()) / 4, 2)
    assert 0 < row["peak_state_bytes"] < 256 * 1024
    assert row["guard_step_functions_calls_per_account"] >= 2, "each child's GetUsername step is checked"
