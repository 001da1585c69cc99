"""Batch offboarding end to end (issue 13): the real statemachine/offboard-batch.asl.json
run by moto's interpreter, its Distributed Map starting one child execution of the real
statemachine/offboard.asl.json per user, all eight real binaries behind the local Lambda
host, IAM from the strict emulator.

What the local stack does here, and where it comes from:
- Step Functions' startExecution.sync:2 integration, the Distributed Map's ResultWriter
  result files (SUCCEEDED_0.json, FAILED_0.json listed in manifest.json) and its
  ToleratedFailurePercentage: tests/emulator/sfn_integration.py, each behaviour cited there
  (Step Functions developer guide, "Start a new AWS Step Functions state machine from a
  running execution" and "ResultWriter (Map)"); stock moto 5.2.5 fails every child with
  States.Runtime and writes an empty manifest.
- A failed child fails its item with States.TaskFailed, its Cause the child's
  DescribeExecution with the child's own Error (same file, [LS-CB]: a real execution history
  recorded by LocalStack's AWS-validated snapshot tests).
- IAM throttling (400 Throttling "Rate exceeded", a real IAM response cited in
  tests/emulator/emulator.py) and the call log: tests/emulator/emulator.py.
- S3 for the batch function: moto's server routes a request by the service of its SigV4
  credential scope (moto/moto_server/werkzeug_app.py, infer_service_region_host), so the
  function's path-style S3 calls reach the same in-process S3 the interpreter writes to.

As issue 13 says of the emulator, the Map's own status is not the evidence: every child's
outcome is checked with DescribeExecution of the child (named by its ExecutionName) and IAM's
final state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "emulator"))
sys.path.insert(0, str(ROOT / "bench"))

from lambda_host import BIN_DIR, FUNCTIONS, access_key_for  # noqa: E402
from cli import OFFBOARD, run_offboard  # noqa: E402
from seed import seed_user  # noqa: E402
from stack import REPORT_BUCKET, Stack  # noqa: E402

STAGE_BY_KEY = {access_key_for(stage): stage for stage in FUNCTIONS}
BATCH_KEY = access_key_for("OffboardBatch")
OPERATOR_KEY = "AKIAOPERATORBATCHXXX"
MUTATING_PREFIXES = ("Delete", "Deactivate", "Remove", "Detach", "Update", "Put", "Create", "Attach", "Enable", "Tag", "Untag")
# A light user: one of each credential kind the offboarding handles, so 21 of them under
# throttling stay a few minutes' test.
LIGHT = dict(access_keys=1, ssh_keys=1, certificates=1, services=("bedrock.amazonaws.com",), virtual_devices=1,
             passkeys=1, hardware_tokens=0, groups=1, inline_policies=1, attached_policies=1, boundary=False)
PROTECTED = {"offboard:protected": "true"}


@pytest.fixture(scope="module")
def stack():
    missing = [b for b in [*FUNCTIONS.values(), "offboard"] if not (BIN_DIR / b).exists()]
    if missing:
        pytest.fail(f"build the binaries first (make build): missing {missing} in {BIN_DIR}")
    with Stack(instances=2) as running:
        running.batch_arn = running.create_batch_state_machine()
        yield running


# --- helpers ---------------------------------------------------------------------------


def run_batch(stack, batch_input: object, name: str, timeout: float = 900) -> dict:
    arn = stack.sfn.start_execution(stateMachineArn=stack.batch_arn, name=name, input=json.dumps(batch_input))["executionArn"]
    return stack.wait(arn, timeout=timeout)


def summary_of(execution: dict) -> dict:
    """The batch's summary: its output, or the Cause of SomeOffboardingsFailed."""
    if execution["status"] == "SUCCEEDED":
        return json.loads(execution["output"])
    assert execution.get("error") == "SomeOffboardingsFailed", (execution["status"], execution.get("error"), execution.get("cause"))
    return json.loads(execution["cause"])


def plan_of(stack, execution_arn: str) -> dict:
    """ValidateBatch's BatchPlan, from the batch execution's history."""
    for event in stack.history(execution_arn):
        details = event.get("stateExitedEventDetails")
        if details and details["name"] == "ValidateBatch":
            return json.loads(details["output"])["Batch"]
    raise AssertionError("ValidateBatch never exited")


def child_arn(stack, execution_name: str) -> str:
    return stack.state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":" + execution_name


def child_executions(stack) -> list[dict]:
    pages = stack.sfn.get_paginator("list_executions").paginate(stateMachineArn=stack.state_machine_arn)
    return [execution for page in pages for execution in page["executions"]]


def entered_states(stack, execution_arn: str) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in stack.history(execution_arn) if "stateEnteredEventDetails" in e]


def function_calls(stack) -> list[dict]:
    return [c for c in stack.calls() if c["AccessKeyId"] in STAGE_BY_KEY]


def iam_calls(stack) -> list[dict]:
    return [c for c in function_calls(stack) if c["Service"] == "iam"]


def mutations_of(calls: list[dict], user: str) -> list[str]:
    return [c["Action"] for c in calls if c["Action"].startswith(MUTATING_PREFIXES)
            and c["Params"].get("UserName", "").lower() == user.lower()]


def gone(iam, name: str) -> bool:
    try:
        iam.get_user(UserName=name)
        return False
    except iam.exceptions.NoSuchEntityException:
        return True


def snapshot(iam, name: str) -> dict:
    """Everything a user holds, to prove it untouched."""
    return {
        "user": iam.get_user(UserName=name)["User"]["UserId"],
        "keys": sorted((k["AccessKeyId"], k["Status"]) for k in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]),
        "ssh": sorted(k["SSHPublicKeyId"] for k in iam.list_ssh_public_keys(UserName=name)["SSHPublicKeys"]),
        "certs": sorted(c["CertificateId"] for c in iam.list_signing_certificates(UserName=name)["Certificates"]),
        "creds": sorted(c["ServiceSpecificCredentialId"]
                        for c in iam.list_service_specific_credentials(UserName=name)["ServiceSpecificCredentials"]),
        "mfa": sorted(d["SerialNumber"] for d in iam.list_mfa_devices(UserName=name)["MFADevices"]),
        "groups": sorted(g["GroupName"] for g in iam.list_groups_for_user(UserName=name)["Groups"]),
        "inline": sorted(iam.list_user_policies(UserName=name)["PolicyNames"]),
        "attached": sorted(p["PolicyArn"] for p in iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]),
        "tags": sorted((t["Key"], t["Value"]) for t in iam.list_user_tags(UserName=name)["Tags"]),
    }


def report_entries(stack, summary: dict) -> dict[str, list[dict]]:
    """The ResultWriter's result files, by status, from the manifest the summary names."""
    bucket, key = summary["ReportUri"].removeprefix("s3://").split("/", 1)
    manifest = json.loads(stack.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    return {status: [entry for file in files
                     for entry in json.loads(stack.s3.get_object(Bucket=manifest["DestinationBucket"], Key=file["Key"])["Body"].read())]
            for status, files in manifest["ResultFiles"].items()}


def offboard(stack, *args: str) -> subprocess.CompletedProcess:
    """The CLI against the stack's endpoint, as test_cli.py and test_quarantine.py run it."""
    return run_offboard(stack.emulator.url, *args, access_key=OPERATOR_KEY)


# --- (a) 24 users under throttling -----------------------------------------------------


def test_24_users_under_throttling_each_child_real_outcome_and_iam_final_state(stack):
    from bench import lower_bound

    real = [f"fleet-{i:02d}" for i in range(21)]
    protected = ["fleet-keep-a", "Fleet-Keep-B"]
    ghost = "fleet-ghost"
    made = {name: seed_user(stack.iam, name, **LIGHT) for name in real}
    for name in protected:
        seed_user(stack.iam, name, **LIGHT, tags={**PROTECTED, "team": "ops"})
    before = {name: snapshot(stack.iam, name) for name in protected}
    names = real[:10] + protected[:1] + [ghost] + real[10:] + protected[1:]
    assert len(names) == 24
    stack.clear_calls()
    # Every IAM call of the functions fails with Throttling one time in four, each child's
    # stages retry (the SDK's, then the state machine's Throttled retrier).
    stack.faults(ThrottleRate=0.25, Seed=24)
    started = time.perf_counter()
    execution = run_batch(stack, {"UserNames": names, "MaxConcurrency": 8, "Context": {"Ticket": "OPS-24"}}, name="fleet-24")
    wall = time.perf_counter() - started
    stack.faults()
    summary = summary_of(execution)
    assert execution["status"] == "SUCCEEDED", summary

    # The summary: not found and protected users are reported, not failures.
    assert (summary["Total"], summary["Succeeded"], summary["Outcome"]) == (24, 21, "Offboarded")
    assert summary["NotFound"] == [ghost]
    assert sorted(summary["Protected"]) == sorted(protected)
    assert (summary["Failed"], summary["NotRun"], summary["FailedCount"]) == ({}, [], 0)
    assert summary["ReportUri"].startswith(f"s3://{REPORT_BUCKET}/batches/fleet-24/")
    assert summary["ReportUri"].endswith("/manifest.json")

    # Each child's real outcome, by its own execution (named as a single offboarding of
    # the user is), not the Map's status.
    plan = plan_of(stack, execution["executionArn"])
    assert [u["UserName"] for u in plan["Users"]] == names and plan["Count"] == 24
    assert (plan["MaxConcurrency"], plan["DryRun"], plan["Context"], plan["Source"]) == (8, False, {"Ticket": "OPS-24"}, "inline")
    outcomes = {}
    for user in plan["Users"]:
        child = stack.sfn.describe_execution(executionArn=child_arn(stack, user["ExecutionName"]))
        assert json.loads(child["input"]) == {"UserName": user["UserName"], "DryRun": False, "Context": {"Ticket": "OPS-24"},
                                              "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID": execution["executionArn"]}
        outcomes[user["UserName"]] = (child["status"], child.get("error"))
    assert {name: outcomes[name] for name in real} == {name: ("SUCCEEDED", None) for name in real}
    assert {name: outcomes[name] for name in protected} == {name: ("FAILED", "ProtectedUser") for name in protected}
    assert outcomes[ghost] == ("FAILED", "UserNotFound")
    assert len([e for e in child_executions(stack) if e["name"].startswith("fleet")]) == 24, "one child per user"

    # IAM's final state: every real user gone, the protected ones untouched.
    assert [name for name in real if not gone(stack.iam, name)] == []
    assert {name: snapshot(stack.iam, name) for name in protected} == before
    calls = function_calls(stack)
    for name in protected:
        assert mutations_of(calls, name) == [], f"{name} was refused before any change"

    # The report the summary was made from: one entry per child.
    entries = report_entries(stack, summary)
    assert len(entries.get("SUCCEEDED", [])) == 21 and len(entries.get("FAILED", [])) == 3
    assert {json.loads(e["Input"])["UserName"] for e in entries["FAILED"]} == {ghost, *protected}

    # The batch function made no IAM call: it read S3 (the manifest, the result files) and
    # asked Step Functions that its batch execution invoked it (DescribeExecution,
    # GetExecutionHistory: crates/core/src/workflow.rs).
    batch_calls = [c for c in calls if c["AccessKeyId"] == BATCH_KEY]
    assert batch_calls and {c["Service"] for c in batch_calls} == {"s3", "states"}
    assert {c["Action"] for c in batch_calls if c["Service"] == "states"} == {"DescribeExecution", "GetExecutionHistory"}

    # Measured: IAM calls served (the emulator answered them) against the fewest this
    # batch needs (bench.lower_bound per real user; one GetUser for each refused one).
    served = [c for c in iam_calls(stack) if not c.get("Injected")]
    throttled = [c for c in iam_calls(stack) if c.get("Injected") == "Throttling"]
    needed = sum(sum(lower_bound(made[name]).values()) for name in real) + len(protected) + 1
    assert len(throttled) > 50, "the throttling was really injected"
    print(f"\n24-user batch under 25% throttling: {wall:.1f} s wall, IAM calls served {len(served)} "
          f"for {needed} needed ({len(served) / needed:.2f}x), {len(throttled)} throttled")


# --- (b) lists in S3: CSV with a UserName column, JSON array ----------------------------


def test_a_csv_list_in_s3_with_a_quoted_name_holding_a_comma_and_a_json_array_list(stack):
    csv_users = ["csv-ann", "csv,comma", "csv-bob"]
    json_users = ["json-ann", "json.bob@example.com"]
    for name in csv_users + json_users:
        seed_user(stack.iam, name, **LIGHT)
    # RFC 4180: a field in double quotes may hold commas; IAM names may contain
    # commas (IAM API reference, CreateUser: UserName pattern [\w+=,.@-]+).
    stack.s3.put_object(Bucket=REPORT_BUCKET, Key="lists/leavers.csv",
                        Body=b'Ticket,UserName,Manager\r\nOPS-1,csv-ann,carol\r\nOPS-2,"csv,comma",dan\r\nOPS-3,csv-bob,erin\r\n')
    stack.s3.put_object(Bucket=REPORT_BUCKET, Key="lists/leavers.json", Body=json.dumps(json_users).encode())

    for key, users in (("lists/leavers.csv", csv_users), ("lists/leavers.json", json_users)):
        name = "list-" + key.rsplit(".", 1)[1]
        execution = run_batch(stack, {"UserList": {"Bucket": REPORT_BUCKET, "Key": key}}, name=name)
        summary = summary_of(execution)
        assert execution["status"] == "SUCCEEDED", summary
        assert (summary["Total"], summary["Succeeded"], summary["FailedCount"]) == (len(users), len(users), 0)
        plan = plan_of(stack, execution["executionArn"])
        assert [u["UserName"] for u in plan["Users"]] == users
        assert plan["Source"] == f"s3://{REPORT_BUCKET}/{key}"
        for user in plan["Users"]:
            child = stack.sfn.describe_execution(executionArn=child_arn(stack, user["ExecutionName"]))
            assert child["status"] == "SUCCEEDED", (user, child.get("cause"))
            assert json.loads(child["input"])["UserName"] == user["UserName"]
        assert [name for name in users if not gone(stack.iam, name)] == []
    # The execution name keeps only [0-9A-Za-z_-]: "csv,comma" -> "csv_comma-<hash>".
    assert any(u["ExecutionName"].startswith("csv_comma-") for u in plan_of(stack, run_arn(stack, "list-csv"))["Users"])


def run_arn(stack, name: str) -> str:
    return stack.batch_arn.replace(":stateMachine:", ":execution:", 1) + ":" + name


# --- more failures than tolerated: the Map Run fails, the batch is still summarised --------


def test_more_failures_than_tolerated_fail_the_batch_with_the_maps_error_and_its_summary(stack):
    """ToleratedFailurePercentage 0: the first failed child fails the Map Run with
    States.ExceedToleratedFailureThreshold (Step Functions developer guide, "Tolerated
    failure threshold for Distributed Map state"; emulated in tests/emulator/sfn_integration.py,
    which writes the result files first and, unlike Step Functions, runs every item, so no
    PENDING file). The batch finds the manifest under its own prefix, summarises, and fails
    as MapRunFailed, the summary with the Map's Error and Cause as the cause."""
    seed_user(stack.iam, "strict-real", **LIGHT)
    execution = run_batch(stack, {"UserNames": ["strict-ghost", "strict-real"], "ToleratedFailurePercentage": 0,
                                  "MaxConcurrency": 1}, name="strict-0")
    assert (execution["status"], execution.get("error")) == ("FAILED", "MapRunFailed"), execution.get("cause")
    report = json.loads(execution["cause"])
    assert (report["Error"], report["Cause"]) == ("States.ExceedToleratedFailureThreshold",
                                                  "The specified tolerated failure threshold was exceeded")
    assert (report["Total"], report["NotFound"], report["Failed"]) == (2, ["strict-ghost"], {})
    assert report["Succeeded"] + len(report["NotRun"]) == 1
    states = entered_states(stack, execution["executionArn"])
    assert states[states.index("FindReport"):] == [
        "FindReport", "ReportListed", "PickManifest", "ManifestFound", "SummarizeBatch", "AnyFailed", "MapRunSummary",
        "MapRunFailed"]
    users = {u["UserName"]: u["ExecutionName"] for u in plan_of(stack, execution["executionArn"])["Users"]}
    ghost = stack.sfn.describe_execution(executionArn=child_arn(stack, users["strict-ghost"]))
    assert (ghost["status"], ghost.get("error")) == ("FAILED", "UserNotFound")
    if report["Succeeded"]:
        real = stack.sfn.describe_execution(executionArn=child_arn(stack, users["strict-real"]))
        assert real["status"] == "SUCCEEDED" and gone(stack.iam, "strict-real")
    else:
        assert report["NotRun"] == ["strict-real"] and not gone(stack.iam, "strict-real")


# --- (c) malformed lists: InvalidInput, no child, no IAM call -----------------------------


@pytest.mark.parametrize("case, batch_input, why", [
    ("bad-name", {"UserNames": ["valid-user", "not a name"]}, "entry 2"),
    ("case-duplicate", {"UserNames": ["Dup-User", "other-user", "dup-user"]}, "twice (entries 1 and 3)"),
    ("csv-without-username", {"UserList": {"Bucket": REPORT_BUCKET, "Key": "lists/no-column.csv"}}, "no UserName column"),
    ("both-sources", {"UserNames": ["valid-user"], "UserList": {"Bucket": REPORT_BUCKET, "Key": "lists/no-column.csv"}},
     "both UserNames and UserList"),
    ("neither-source", {"DryRun": True}, "names no users"),
    ("too-many", {"UserNames": [f"user{i}" for i in range(1001)]}, "at most 1000"),
    ("missing-object", {"UserList": {"Bucket": REPORT_BUCKET, "Key": "lists/no-such-list.csv"}}, "does not exist"),
    ("mistyped-option", {"UserNames": ["valid-user"], "Dryrun": True}, "unknown field"),
])
def test_a_malformed_list_fails_invalid_input_before_any_child_or_iam_call(stack, case, batch_input, why):
    stack.s3.put_object(Bucket=REPORT_BUCKET, Key="lists/no-column.csv", Body=b"Name,Ticket\nvalid-user,OPS-1\n")
    seed_user(stack.iam, f"valid-{case}", **LIGHT)
    children_before = len(child_executions(stack))
    stack.clear_calls()
    execution = run_batch(stack, batch_input, name=f"malformed-{case}")
    assert (execution["status"], execution.get("error")) == ("FAILED", "InvalidInput"), execution.get("cause")
    assert why in json.loads(execution["cause"])["errorMessage"], execution["cause"]
    assert entered_states(stack, execution["executionArn"]) == ["ValidateBatch", "InvalidBatch"]
    assert not any(e["type"] == "MapRunStarted" for e in stack.history(execution["executionArn"]))
    assert len(child_executions(stack)) == children_before, "no child started"
    assert iam_calls(stack) == [], "no IAM call"


# --- (d) a dry run applies to every child ---------------------------------------------------


def test_a_dry_run_batch_plans_every_child_and_changes_nothing(stack):
    users = ["plan-ann", "plan-bob", "plan-cat"]
    for name in users:
        seed_user(stack.iam, name, **LIGHT)
    before = {name: snapshot(stack.iam, name) for name in users}
    execution = run_batch(stack, {"UserNames": users, "DryRun": True}, name="plan-3")
    summary = summary_of(execution)
    assert execution["status"] == "SUCCEEDED", summary
    assert (summary["Outcome"], summary["Succeeded"], summary["FailedCount"]) == ("Planned", 3, 0)
    for user in plan_of(stack, execution["executionArn"])["Users"]:
        child = stack.sfn.describe_execution(executionArn=child_arn(stack, user["ExecutionName"]))
        assert child["status"] == "SUCCEEDED" and json.loads(child["input"])["DryRun"] is True
        output = json.loads(child["output"])
        assert output["DryRun"] is True and output["UserDeletion"] is None
    assert {name: snapshot(stack.iam, name) for name in users} == before
    assert [c["Action"] for c in iam_calls(stack) if c["Action"].startswith(MUTATING_PREFIXES)] == []


# The largest valid plan's fit in the 256 KiB state is checked against the core
# itself (crates/core/tests/batch.rs, the_largest_valid_plan_fits_the_256_kib_state):
# the function admits only its own batch execution's pending step.


# --- (e) the CLI: offboard start --users-file ------------------------------------------------


def test_the_cli_starts_a_batch_from_a_users_file_follows_it_and_prints_the_summary(stack, tmp_path):
    users = ["cli-ann", "cli,bob", "cli-cat"]
    for name in users:
        seed_user(stack.iam, name, **LIGHT)
    users_file = tmp_path / "users.csv"
    users_file.write_text('UserName,Ticket\ncli-ann,OPS-7\n"cli,bob",OPS-8\ncli-cat,OPS-9\n')
    result = offboard(stack, "start", "--users-file", str(users_file), "--state-machine-arn", stack.batch_arn,
                      "--execution-name", "cli-batch", "--max-concurrency", "2", "--wait")
    assert result.returncode == 0, result.stderr
    assert f"started {run_arn(stack, 'cli-batch')}" in result.stderr
    assert "✓ ValidateBatch" in result.stderr and "✓ SummarizeBatch" in result.stderr, result.stderr
    assert "items done 3/3 (0 failed)" in result.stderr, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["Total"], summary["Succeeded"], summary["FailedCount"]) == (3, 3, 0)
    assert [name for name in users if not gone(stack.iam, name)] == []
    plan = plan_of(stack, run_arn(stack, "cli-batch"))
    assert [u["UserName"] for u in plan["Users"]] == users and plan["MaxConcurrency"] == 2


def test_the_cli_refuses_a_malformed_users_file_and_starts_nothing(stack, tmp_path):
    seed_user(stack.iam, "cli-dup", **LIGHT)
    users_file = tmp_path / "users.csv"
    users_file.write_text("UserName\ncli-dup\nCLI-DUP\n")
    batches_before = stack.sfn.list_executions(stateMachineArn=stack.batch_arn)["executions"]
    children_before = len(child_executions(stack))
    result = offboard(stack, "start", "--users-file", str(users_file), "--state-machine-arn", stack.batch_arn, "--wait")
    assert result.returncode != 0
    assert "InvalidInput" in result.stderr and "twice" in result.stderr, result.stderr
    assert "started" not in result.stderr
    assert stack.sfn.list_executions(stateMachineArn=stack.batch_arn)["executions"] == batches_before
    assert len(child_executions(stack)) == children_before
    assert not gone(stack.iam, "cli-dup") and function_calls(stack) == []
