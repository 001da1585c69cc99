"""Step Functions' own startExecution integration (request-response, .sync,
.sync:2) run by moto's interpreter with tests/emulator/sfn_integration.py
applied, the way the batch state machine uses it: a Distributed Map starting
one child execution per item. Trivial Pass/Fail child machines, no Rust
binaries. The tests check each child's own outcome (DescribeExecution), not
only the parent's status. The last tests cover the Distributed Map
extensions of the same file: ResultWriter's result files and the
tolerated failure thresholds."""

from __future__ import annotations

import json
import re
import sys
import time
import uuid
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "emulator"))

from sfn_integration import extend_step_functions  # noqa: E402

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/sfn-integration"
REPORTS = "batch-reports"
START = "arn:aws:states:::states:startExecution"

# A child that echoes the user it was given, or fails when the item says so:
# the Fail state's Error/Cause are what the parent must find in the Cause of
# States.TaskFailed.
CHILD = {
    "StartAt": "Decide",
    "States": {
        "Decide": {"Type": "Choice", "Choices": [{"Variable": "$.Item.Fail", "IsPresent": True, "Next": "Fail"}],
                   "Default": "Echo"},
        "Fail": {"Type": "Fail", "Error": "UserFailed", "Cause": "asked to fail"},
        "Echo": {"Type": "Pass", "Parameters": {"Offboarded.$": "$.UserName", "Index.$": "$.Index"}, "End": True},
    },
}


@pytest.fixture(scope="module")
def aws():
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        extend_step_functions()
        sfn = boto3.client("stepfunctions", region_name=REGION)
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=REPORTS)
        yield sfn, s3


@pytest.fixture()
def sfn(aws):
    return aws[0]


@pytest.fixture()
def s3(aws):
    return aws[1]


@pytest.fixture()
def child(sfn):
    """A fresh child state machine per test: execution names are unique per state machine."""
    return create(sfn, CHILD, "child")


def create(sfn, definition: dict, prefix: str) -> str:
    return sfn.create_state_machine(name=f"{prefix}-{uuid.uuid4().hex[:8]}", roleArn=ROLE,
                                    definition=json.dumps(definition))["stateMachineArn"]


def wait(sfn, execution_arn: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while (execution := sfn.describe_execution(executionArn=execution_arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"{execution_arn} still RUNNING"
        time.sleep(0.05)
    return execution


def run(sfn, definition: dict, execution_input: object) -> dict:
    arn = sfn.start_execution(stateMachineArn=create(sfn, definition, "parent"),
                              input=json.dumps(execution_input))["executionArn"]
    return wait(sfn, arn)


def children(sfn, child_arn: str) -> dict[str, dict]:
    """Every execution of the child machine, by name, as DescribeExecution reports it."""
    listed = sfn.list_executions(stateMachineArn=child_arn)["executions"]
    return {e["name"]: wait(sfn, e["executionArn"]) for e in listed}


def task(resource: str, parameters: dict, **fields) -> dict:
    return {"StartAt": "Start", "States": {"Start": {"Type": "Task", "Resource": resource,
                                                     "Parameters": parameters, "End": True, **fields}}}


def batch(child_arn: str, *, catch: bool = True, **map_fields) -> dict:
    """The batch machine's shape: a Distributed Map over $.Users, one .sync:2 child
    per item named after the user, a failed child caught per item."""
    start = {"Type": "Task", "Resource": f"{START}.sync:2",
             "Parameters": {"StateMachineArn": child_arn, "Name.$": "$.UserName", "Input.$": "$"}, "End": True}
    states = {"StartChild": start}
    if catch:
        start["Catch"] = [{"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.Failure", "Next": "Failed"}]
        states["Failed"] = {"Type": "Pass", "End": True}
    return {"StartAt": "Users", "States": {"Users": {
        "Type": "Map",
        "ItemsPath": "$.Users",
        "ItemSelector": {"UserName.$": "$$.Map.Item.Value.UserName", "Index.$": "$$.Map.Item.Index",
                         "Item.$": "$$.Map.Item.Value"},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                          "StartAt": "StartChild", "States": states},
        "End": True,
        **map_fields,
    }}}


def users(*names: str, failing: tuple[str, ...] = ()) -> dict:
    return {"Users": [{"UserName": name, **({"Fail": True} if name in failing else {})} for name in names]}


# --- a Map of children through .sync:2 ------------------------------------------


def test_map_of_five_children_gets_each_childs_parsed_output(sfn, child):
    names = ("alice", "bob", "carol", "dave", "erin")
    execution = run(sfn, batch(child), users(*names))

    assert execution["status"] == "SUCCEEDED"
    results = json.loads(execution["output"])
    # Stock moto: every child fails with States.Runtime, each result is null, the Map SUCCEEDS.
    assert len(results) == 5 and all(isinstance(result, dict) for result in results), results
    for index, (name, result) in enumerate(zip(names, results)):
        # .sync:2: the child's DescribeExecution in Step Functions' casing, Output parsed.
        assert result["Status"] == "SUCCEEDED"
        assert result["Name"] == name
        assert result["Output"] == {"Offboarded": name, "Index": index}
        assert result["Input"] == {"UserName": name, "Index": index, "Item": {"UserName": name}}
        assert result["ExecutionArn"].endswith(f":{name}")
        assert result["StateMachineArn"] == child
        assert isinstance(result["StartDate"], str) and isinstance(result["StopDate"], str)
    ran = children(sfn, child)
    assert sorted(ran) == sorted(names)
    assert {name: ran[name]["status"] for name in names} == dict.fromkeys(names, "SUCCEEDED")


def test_a_failing_child_fails_only_its_item_and_catch_sees_states_task_failed(sfn, child):
    execution = run(sfn, batch(child), users("alice", "bob", "mallory", "dave", "erin", failing=("mallory",)))

    assert execution["status"] == "SUCCEEDED"
    results = json.loads(execution["output"])
    caught = results[2]
    assert caught["Failure"]["Error"] == "States.TaskFailed"
    # The Cause is the failed child's DescribeExecution, as a JSON string.
    cause = json.loads(caught["Failure"]["Cause"])
    assert cause["Status"] == "FAILED"
    assert cause["Name"] == "mallory"
    assert (cause["Error"], cause["Cause"]) == ("UserFailed", "asked to fail")
    assert "Output" not in cause
    assert [r.get("Status") for i, r in enumerate(results) if i != 2] == ["SUCCEEDED"] * 4
    ran = children(sfn, child)
    assert ran["mallory"]["status"] == "FAILED" and ran["mallory"]["error"] == "UserFailed"
    assert sorted(name for name, e in ran.items() if e["status"] == "SUCCEEDED") == ["alice", "bob", "dave", "erin"]


def test_an_uncaught_failed_child_fails_the_parent_with_states_task_failed(sfn, child):
    execution = run(sfn, task(f"{START}.sync:2", {"StateMachineArn": child, "Name": "solo",
                                                 "Input": {"UserName": "solo", "Index": 0, "Item": {"Fail": True}}}),
                    {})

    assert execution["status"] == "FAILED"
    assert execution["error"] == "States.TaskFailed"
    cause = json.loads(execution["cause"])
    assert (cause["ExecutionArn"].rsplit(":", 1)[1], cause["Status"], cause["Error"]) == ("solo", "FAILED", "UserFailed")


# --- names -------------------------------------------------------------------------


def test_names_are_passed_through_and_a_reused_name_is_execution_already_exists(sfn, child):
    first = run(sfn, task(f"{START}.sync:2", {"StateMachineArn": child, "Name": "ticket-42_alice",
                                             "Input": {"UserName": "alice", "Index": 1}}), {})
    assert first["status"] == "SUCCEEDED"
    assert json.loads(first["output"])["Name"] == "ticket-42_alice"
    assert set(children(sfn, child)) == {"ticket-42_alice"}

    # The name again, other input (and the first is closed anyway): StartExecution's
    # ExecutionAlreadyExists, as the integration's StepFunctions.<Code>Exception.
    refused = {"StartAt": "Start", "States": {
        "Start": {"Type": "Task", "Resource": f"{START}.sync:2",
                  "Parameters": {"StateMachineArn": child, "Name": "ticket-42_alice",
                                 "Input": {"UserName": "alice", "Index": 2}},
                  "Catch": [{"ErrorEquals": ["StepFunctions.ExecutionAlreadyExistsException"], "Next": "Refused"}],
                  "End": True},
        "Refused": {"Type": "Pass", "End": True}}}
    outcome = run(sfn, refused, {})
    assert outcome["status"] == "SUCCEEDED"
    error = json.loads(outcome["output"])
    assert error["Error"] == "StepFunctions.ExecutionAlreadyExistsException"
    assert "Error Code: ExecutionAlreadyExists" in error["Cause"]
    assert set(children(sfn, child)) == {"ticket-42_alice"}


def test_a_name_step_functions_refuses_is_invalid_name(sfn, child):
    outcome = run(sfn, task(START, {"StateMachineArn": child, "Name": "a,b"}), {})
    assert (outcome["status"], outcome["error"]) == ("FAILED", "StepFunctions.InvalidNameException")
    assert children(sfn, child) == {}


def test_an_unnamed_start_gets_a_uuid_name(sfn, child):
    outputs = [json.loads(run(sfn, task(START, {"StateMachineArn": child, "Input": {"UserName": u, "Index": 0}}),
                              {})["output"]) for u in ("u1", "u2")]
    names = [o["ExecutionArn"].rsplit(":", 1)[1] for o in outputs]
    assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", n) for n in names)
    assert names[0] != names[1]


# --- the plain and .sync forms --------------------------------------------------------


def test_plain_start_execution_returns_execution_arn_and_start_date(sfn, child):
    execution = run(sfn, task(START, {"StateMachineArn": child, "Name": "plain",
                                      "Input": {"UserName": "plain", "Index": 7}}), {})

    assert execution["status"] == "SUCCEEDED"
    output = json.loads(execution["output"])
    assert set(output) == {"ExecutionArn", "StartDate"}
    assert output["ExecutionArn"].endswith(":plain")
    started = wait(sfn, output["ExecutionArn"])  # the child runs on its own
    assert started["status"] == "SUCCEEDED"
    assert json.loads(started["output"]) == {"Offboarded": "plain", "Index": 7}


def test_sync_returns_output_as_a_json_string(sfn, child):
    execution = run(sfn, task(f"{START}.sync", {"StateMachineArn": child, "Name": "synced",
                                                "Input": {"UserName": "synced", "Index": 3}}), {})

    assert execution["status"] == "SUCCEEDED"
    output = json.loads(execution["output"])
    assert output["Status"] == "SUCCEEDED"
    assert isinstance(output["Output"], str) and json.loads(output["Output"]) == {"Offboarded": "synced", "Index": 3}
    assert isinstance(output["Input"], str) and json.loads(output["Input"]) == {"UserName": "synced", "Index": 3}
    assert output["InputDetails"] == output["OutputDetails"] == {"Included": True}


def test_input_given_as_a_json_string_is_passed_as_is(sfn, child):
    execution = run(sfn, task(f"{START}.sync:2", {"StateMachineArn": child, "Name": "stringly",
                                                  "Input": json.dumps({"UserName": "stringly", "Index": 5})}), {})

    assert json.loads(execution["output"])["Output"] == {"Offboarded": "stringly", "Index": 5}


# --- Distributed Map: ResultWriter result files -----------------------------------------

RESULT_WRITER = {"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket": REPORTS, "Prefix": "runs"}}
TIMESTAMP = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
SUCCEEDED_FIELDS = {"ExecutionArn", "Input", "InputDetails", "Name", "Output", "OutputDetails", "RedriveCount",
                    "RedriveStatus", "RedriveStatusReason", "StartDate", "StateMachineArn", "Status", "StopDate"}
FAILED_FIELDS = {"Cause", "Error", "ExecutionArn", "Input", "InputDetails", "Name", "RedriveCount", "RedriveStatus",
                 "StartDate", "StateMachineArn", "Status", "StopDate"}
THRESHOLD = {"Error": "States.ExceedToleratedFailureThreshold",
             "Cause": "The specified tolerated failure threshold was exceeded"}


def report(s3, output: dict) -> tuple[dict, dict[str, list]]:
    """The manifest the Map's output points at, and each result file it lists, by name."""
    details = output["ResultWriterDetails"]
    manifest = json.loads(s3.get_object(Bucket=details["Bucket"], Key=details["Key"])["Body"].read())
    files = {}
    for listed in manifest["ResultFiles"].values():
        for result_file in listed:
            body = s3.get_object(Bucket=details["Bucket"], Key=result_file["Key"])["Body"].read()
            assert result_file["Size"] == len(body)
            files[result_file["Key"].rsplit("/", 1)[1]] = json.loads(body)
    return manifest, files


def keys_under(s3, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=REPORTS, Prefix=prefix).get("Contents", []))


def item_input(index: int, name: str, fail: bool = False) -> dict:
    """What the ItemSelector of batch() makes of a user: the input of its Map Run child."""
    return {"UserName": name, "Index": index, "Item": {"UserName": name, **({"Fail": True} if fail else {})}}


def test_result_writer_writes_each_items_outcome_by_status(sfn, s3, child):
    names = ("alice", "mallory", "bob", "eve")
    execution = run(sfn, batch(child, catch=False, Label="Users", ToleratedFailurePercentage=100,
                               ResultWriter=RESULT_WRITER),
                    users(*names, failing=("mallory", "eve")))

    assert execution["status"] == "SUCCEEDED"
    output = json.loads(execution["output"])
    parent = execution["stateMachineArn"]
    run_id = output["MapRunArn"].rsplit(":", 1)[1]
    assert output["MapRunArn"] == f"{parent.replace(':stateMachine:', ':mapRun:')}/Users:{run_id}"
    directory = f"runs/{run_id}/"
    assert output["ResultWriterDetails"] == {"Bucket": REPORTS, "Key": f"{directory}manifest.json"}
    assert keys_under(s3, directory) == [f"{directory}FAILED_0.json", f"{directory}SUCCEEDED_0.json",
                                         f"{directory}manifest.json"]

    manifest, files = report(s3, output)
    assert manifest["DestinationBucket"] == REPORTS and manifest["MapRunArn"] == output["MapRunArn"]
    assert {status: [f["Key"] for f in listed] for status, listed in manifest["ResultFiles"].items()} == {
        "FAILED": [f"{directory}FAILED_0.json"], "PENDING": [], "SUCCEEDED": [f"{directory}SUCCEEDED_0.json"]}

    # Every entry: one child workflow execution of the Map Run, in Step Functions' form.
    for entry in files["SUCCEEDED_0.json"] + files["FAILED_0.json"]:
        assert entry["StateMachineArn"] == f"{parent}/Users"
        assert re.fullmatch(UUID, entry["Name"])
        assert entry["ExecutionArn"] == f"{parent.replace(':stateMachine:', ':execution:')}/Users:{entry['Name']}"
        assert re.fullmatch(TIMESTAMP, entry["StartDate"]) and re.fullmatch(TIMESTAMP, entry["StopDate"])
        assert entry["StartDate"] <= entry["StopDate"]
        assert entry["InputDetails"] == {"Included": True} and entry["RedriveCount"] == 0

    succeeded = files["SUCCEEDED_0.json"]
    assert [set(entry) for entry in succeeded] == [SUCCEEDED_FIELDS] * 2
    for entry, (index, name) in zip(succeeded, [(0, "alice"), (2, "bob")]):
        assert entry["Status"] == "SUCCEEDED"
        assert (entry["RedriveStatus"], entry["RedriveStatusReason"]) == (
            "NOT_REDRIVABLE", "Execution is SUCCEEDED and cannot be redriven")
        assert isinstance(entry["Input"], str) and json.loads(entry["Input"]) == item_input(index, name)
        # The item's output, as a JSON string: the .sync:2 result (the child's DescribeExecution).
        assert isinstance(entry["Output"], str) and entry["OutputDetails"] == {"Included": True}
        result = json.loads(entry["Output"])
        assert (result["Name"], result["Status"], result["Output"]) == (name, "SUCCEEDED",
                                                                        {"Offboarded": name, "Index": index})

    failed = files["FAILED_0.json"]
    assert [set(entry) for entry in failed] == [FAILED_FIELDS] * 2
    for entry, (index, name) in zip(failed, [(1, "mallory"), (3, "eve")]):
        assert (entry["Status"], entry["RedriveStatus"]) == ("FAILED", "REDRIVABLE")
        assert json.loads(entry["Input"]) == item_input(index, name, fail=True)
        # The item failed as its startExecution.sync:2 task did: States.TaskFailed, the Cause
        # the failed child's DescribeExecution.
        assert entry["Error"] == "States.TaskFailed"
        cause = json.loads(entry["Cause"])
        assert (cause["Name"], cause["Status"], cause["Error"], cause["Cause"]) == (name, "FAILED", "UserFailed",
                                                                                    "asked to fail")

    ran = children(sfn, child)
    assert {name: e["status"] for name, e in ran.items()} == {"alice": "SUCCEEDED", "mallory": "FAILED",
                                                              "bob": "SUCCEEDED", "eve": "FAILED"}
    assert {json.loads(e["Output"])["ExecutionArn"] for e in succeeded} == {ran["alice"]["executionArn"],
                                                                            ran["bob"]["executionArn"]}


def test_a_run_without_failures_writes_only_succeeded_0(sfn, s3, child):
    execution = run(sfn, batch(child, ResultWriter=RESULT_WRITER), users("alice", "bob"))

    assert execution["status"] == "SUCCEEDED"
    output = json.loads(execution["output"])
    directory = output["ResultWriterDetails"]["Key"].rsplit("/", 1)[0] + "/"
    assert keys_under(s3, directory) == [f"{directory}SUCCEEDED_0.json", f"{directory}manifest.json"]
    manifest, files = report(s3, output)
    assert manifest["ResultFiles"]["FAILED"] == [] and manifest["ResultFiles"]["PENDING"] == []
    assert [json.loads(entry["Input"])["UserName"] for entry in files["SUCCEEDED_0.json"]] == ["alice", "bob"]


# --- Distributed Map: tolerated failures --------------------------------------------------


def caught(definition: dict) -> dict:
    """The Map's States.ExceedToleratedFailureThreshold caught into $.MapFailure."""
    definition["States"]["Users"]["Catch"] = [{"ErrorEquals": ["States.ExceedToleratedFailureThreshold"],
                                               "ResultPath": "$.MapFailure", "Next": "Tolerated"}]
    definition["States"]["Users"].pop("End")
    definition["States"]["Users"]["Next"] = "Tolerated"
    definition["States"]["Tolerated"] = {"Type": "Pass", "End": True}
    return definition


def test_by_default_one_failed_item_fails_the_map_after_every_item_ran(sfn, child):
    execution = run(sfn, batch(child, catch=False), users("alice", "mallory", "bob", failing=("mallory",)))

    assert (execution["status"], execution["error"], execution["cause"]) == (
        "FAILED", THRESHOLD["Error"], THRESHOLD["Cause"])
    history = sfn.get_execution_history(executionArn=execution["executionArn"])["events"]
    map_run_failed = [e["mapRunFailedEventDetails"] for e in history if e["type"] == "MapRunFailed"]
    assert map_run_failed == [{"error": THRESHOLD["Error"], "cause": THRESHOLD["Cause"]}]
    map_run = sfn.list_map_runs(executionArn=execution["executionArn"])["mapRuns"][0]
    assert sfn.describe_map_run(mapRunArn=map_run["mapRunArn"])["status"] == "FAILED"
    ran = children(sfn, child)
    assert {name: e["status"] for name, e in ran.items()} == {"alice": "SUCCEEDED", "mallory": "FAILED",
                                                              "bob": "SUCCEEDED"}


def test_an_exceeded_threshold_is_caught_and_the_results_are_still_written(sfn, s3, child):
    # 2 of 5 items failed: 40 % > 20 %.
    definition = caught(batch(child, catch=False, ToleratedFailurePercentage=20, ResultWriter=RESULT_WRITER))
    execution = run(sfn, definition, users("alice", "mallory", "bob", "eve", "carol", failing=("mallory", "eve")))

    assert execution["status"] == "SUCCEEDED"
    output = json.loads(execution["output"])
    assert output["MapFailure"] == THRESHOLD
    map_run = sfn.list_map_runs(executionArn=execution["executionArn"])["mapRuns"][0]
    assert sfn.describe_map_run(mapRunArn=map_run["mapRunArn"])["status"] == "FAILED"
    directory = f"runs/{map_run['mapRunArn'].rsplit(':', 1)[1]}/"
    assert keys_under(s3, directory) == [f"{directory}FAILED_0.json", f"{directory}SUCCEEDED_0.json",
                                         f"{directory}manifest.json"]
    _, files = report(s3, {"ResultWriterDetails": {"Bucket": REPORTS, "Key": f"{directory}manifest.json"}})
    assert [json.loads(e["Input"])["UserName"] for e in files["FAILED_0.json"]] == ["mallory", "eve"]
    assert [json.loads(e["Input"])["UserName"] for e in files["SUCCEEDED_0.json"]] == ["alice", "bob", "carol"]
    assert sorted(children(sfn, child)) == sorted(["alice", "mallory", "bob", "eve", "carol"])


@pytest.mark.parametrize(("fields", "failing", "status"), [
    ({"ToleratedFailurePercentage": 100}, ("u0", "u1", "u2", "u3"), "SUCCEEDED"),
    ({"ToleratedFailurePercentage": 25}, ("u1",), "SUCCEEDED"),  # 25 % is not more than 25 %
    ({"ToleratedFailurePercentage": 24.9}, ("u1",), "FAILED"),
    ({"ToleratedFailurePercentage": 0}, ("u1",), "FAILED"),
    ({"ToleratedFailureCount": 1}, ("u1",), "SUCCEEDED"),
    ({"ToleratedFailureCount": 1}, ("u1", "u2"), "FAILED"),
    ({"ToleratedFailureCount": 3}, ("u0", "u1", "u2"), "SUCCEEDED"),  # no percentage: only the count applies
    ({"ToleratedFailureCount": 3, "ToleratedFailurePercentage": 50}, ("u0", "u1", "u2"), "FAILED"),  # 75 % > 50 %
    ({"ToleratedFailurePercentagePath": "$.Tolerance"}, ("u0", "u1"), "SUCCEEDED"),  # $.Tolerance is 50
    ({"ToleratedFailureCountPath": "$.Count"}, ("u0", "u1"), "FAILED"),  # $.Count is 1
], ids=["percentage-100-all-failed", "percentage-at-limit", "percentage-over", "percentage-0", "count-at-limit",
        "count-over", "count-only", "either-breached", "percentage-path", "count-path"])
def test_tolerated_failure_thresholds(sfn, child, fields, failing, status):
    execution = run(sfn, batch(child, catch=False, **fields),
                    {**users("u0", "u1", "u2", "u3", failing=failing), "Tolerance": 50, "Count": 1})

    assert execution["status"] == status
    if status == "FAILED":
        assert (execution["error"], execution["cause"]) == (THRESHOLD["Error"], THRESHOLD["Cause"])
    ran = children(sfn, child)
    assert {name for name, e in ran.items() if e["status"] == "FAILED"} == set(failing)
    assert len(ran) == 4


def test_a_tolerated_failed_item_is_its_failed_execution_in_the_maps_result(sfn, child):
    execution = run(sfn, batch(child, catch=False, ToleratedFailurePercentage=50),
                    users("alice", "mallory", failing=("mallory",)))

    assert execution["status"] == "SUCCEEDED"
    succeeded, failed = json.loads(execution["output"])
    assert (succeeded["Status"], succeeded["Output"]) == ("SUCCEEDED", {"Offboarded": "alice", "Index": 0})
    assert set(failed) == FAILED_FIELDS
    assert (failed["Status"], failed["Error"]) == ("FAILED", "States.TaskFailed")
    assert json.loads(failed["Cause"])["Name"] == "mallory"
    assert json.loads(failed["Input"]) == item_input(1, "mallory", fail=True)


@pytest.mark.parametrize("percentage", ["0", "50", "100", "50.0", "12.5"])
def test_tolerated_failure_percentage_may_be_an_integer(sfn, child, percentage):
    text = json.dumps(batch(child)).replace('"Type": "Map",', f'"Type": "Map", "ToleratedFailurePercentage": {percentage},')
    assert f'"ToleratedFailurePercentage": {percentage},' in text
    arn = sfn.create_state_machine(name=f"parent-{uuid.uuid4().hex[:8]}", roleArn=ROLE, definition=text)["stateMachineArn"]

    # The definition is kept as it was sent.
    assert sfn.describe_state_machine(stateMachineArn=arn)["definition"] == text
    execution = wait(sfn, sfn.start_execution(stateMachineArn=arn, input=json.dumps(users("alice")))["executionArn"])
    assert execution["status"] == "SUCCEEDED"
    map_run = sfn.list_map_runs(executionArn=execution["executionArn"])["mapRuns"][0]
    assert sfn.describe_map_run(mapRunArn=map_run["mapRunArn"])["toleratedFailurePercentage"] == float(percentage)
