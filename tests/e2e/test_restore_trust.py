"""`offboard restore` trusts only what the workflow wrote (issue 24, part 2),
end to end: records in the audit bucket written by real executions of the
real state machine, then tampered with as someone able to write the bucket
could, and the real `offboard` CLI restoring them.

AWS behaviour these tests rely on, with its source:
- GetExecutionHistory returns each task's TaskScheduled event with
  `taskScheduledEventDetails.parameters`, "The JSON data passed to the
  resource referenced in a task state" (Step Functions API reference,
  HistoryEvent / TaskScheduledEventDetails,
  https://docs.aws.amazon.com/step-functions/latest/apireference/API_TaskScheduledEventDetails.html):
  for the records' PutObject tasks, their Bucket, Key and Body.
- DescribeExecution / GetExecutionHistory of an execution that does not exist
  answer ExecutionDoesNotExist (API reference, GetExecutionHistory, Errors).
- S3 sets an object's LastModified when it is written (Amazon S3 API
  reference, GetObject: "LastModified — Date and time when the object was
  last modified"); the emulator's S3 is moto's, which does the same.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "emulator"))

from cli import run_offboard  # noqa: E402
from seed import ACCOUNT, leftovers, seed_user  # noqa: E402
from stack import AUDIT_BUCKET, Stack  # noqa: E402

OPERATOR_KEY = "AKIAOPERATOROPERATOR"
DENY_ALL = "arn:aws:iam::aws:policy/AWSDenyAll"
ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"
TAG = "offboard:quarantined-until"


@pytest.fixture(scope="module")
def stack():
    with Stack() as running:
        yield running


def offboard(stack, *args: str) -> subprocess.CompletedProcess:
    return run_offboard(stack.emulator.url, *args, access_key=OPERATOR_KEY, timeout=120)


def restore(stack, *args: str) -> subprocess.CompletedProcess:
    return offboard(stack, "restore", "--state-machine-arn", stack.state_machine_arn, *args)


def key_of(name: str, execution: str, file: str) -> str:
    return f"records/{ACCOUNT}/{name}/{execution}/{file}"


def put(stack, key: str, document: dict) -> None:
    stack.s3.put_object(Bucket=AUDIT_BUCKET, Key=key, Body=json.dumps(document).encode())


def iam_writes(stack) -> list[str]:
    return [c["Action"] for c in stack.calls() if c["AccessKeyId"] == OPERATOR_KEY and c["Service"] == "iam"
            and not c["Action"].startswith(("Get", "List"))]


def offboarded(stack, name: str, **seed) -> str:
    """Offboards `name` through the state machine; returns its record.json key."""
    seed_user(stack.iam, name, groups=1, inline_policies=1, attached_policies=1, **seed)
    execution = stack.run({"UserName": name}, name=f"{name}-1")
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    return key_of(name, f"{name}-1", "record.json")


def utc(seconds_ahead: float) -> str:
    return (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds_ahead)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_record_the_workflow_wrote_is_restored_and_says_it_was_verified(stack):
    key = offboarded(stack, "tia")
    result = restore(stack, "--record", f"s3://{AUDIT_BUCKET}/{key}", "--yes")
    assert result.returncode == 0, result.stderr
    assert f"verified: execution {stack.state_machine_arn.replace(':stateMachine:', ':execution:')}:tia-1" in result.stderr
    assert stack.iam.get_user(UserName="tia")["User"]["UserName"] == "tia"


def test_a_planted_grant_in_a_record_is_refused_and_nothing_is_created(stack):
    key = offboarded(stack, "tom")
    record = stack.record(key)
    record["Items"]["AttachedPolicies"].append({"PolicyName": "AdministratorAccess", "PolicyArn": ADMIN})
    record["User"]["PermissionsBoundary"] = None
    put(stack, key, record)
    stack.clear_calls()
    result = restore(stack, "--record", f"s3://{AUDIT_BUCKET}/{key}", "--yes")
    assert result.returncode == 1, result.stderr
    assert "is not what execution" in result.stderr and "nothing was changed" in result.stderr, result.stderr
    assert iam_writes(stack) == []
    with pytest.raises(stack.iam.exceptions.NoSuchEntityException):
        stack.iam.get_user(UserName="tom")


def test_a_record_naming_an_execution_that_never_ran_is_refused(stack):
    genuine = stack.record(offboarded(stack, "tyr"))
    forged = key_of("tyr", "tyr-never-ran", "record.json")
    put(stack, forged, genuine)
    stack.clear_calls()
    result = restore(stack, "--record", f"s3://{AUDIT_BUCKET}/{forged}", "--yes")
    assert result.returncode == 1, result.stderr
    assert "does not exist, yet the record is 0 days old" in result.stderr, result.stderr
    assert iam_writes(stack) == []


def test_a_record_outside_the_layout_or_of_another_account_is_refused(stack):
    genuine = stack.record(offboarded(stack, "tess"))
    elsewhere = "exports/tess/record.json"
    put(stack, elsewhere, genuine)
    outside = restore(stack, "--record", f"s3://{AUDIT_BUCKET}/{elsewhere}", "--yes")
    assert outside.returncode == 1 and "not in the layout" in outside.stderr, outside.stderr
    other = "records/444455556666/tess/tess-1/record.json"
    put(stack, other, genuine)
    foreign = restore(stack, "--record", f"s3://{AUDIT_BUCKET}/{other}", "--yes")
    assert foreign.returncode == 1, foreign.stderr
    assert f"this restore works in account {ACCOUNT}" in foreign.stderr, foreign.stderr
    with pytest.raises(stack.iam.exceptions.NoSuchEntityException):
        stack.iam.get_user(UserName="tess")


def test_everything_a_restore_grants_is_printed_before_it_asks_to_confirm(stack):
    key = offboarded(stack, "tove", boundary=True)
    record = stack.record(key)
    unconfirmed = restore(stack, "--record", f"s3://{AUDIT_BUCKET}/{key}")
    assert unconfirmed.returncode == 2 and "pass --yes" in unconfirmed.stderr
    printed = unconfirmed.stderr
    assert f"permissions boundary {record['User']['PermissionsBoundary']}" in printed, printed
    for group in record["Items"]["Groups"]:
        assert f"membership of group {group['GroupName']}" in printed
    for policy in record["Items"]["AttachedPolicies"]:
        assert f"managed policy {policy['PolicyArn']}" in printed
    for policy in record["Items"]["InlinePolicies"]:
        size = len(json.dumps(policy["PolicyDocument"], separators=(",", ":")))
        assert f"inline policy {policy['PolicyName']} ({size} bytes)" in printed, printed
    assert printed.index("grants or changes") < printed.index("refusing without confirmation")
    with pytest.raises(stack.iam.exceptions.NoSuchEntityException):
        stack.iam.get_user(UserName="tove")
    no_boundary = offboarded(stack, "tyra", boundary=False)
    assert "NO permissions boundary" in restore(stack, "--record", f"s3://{AUDIT_BUCKET}/{no_boundary}").stderr


def quarantined(stack, name: str) -> tuple[str, str]:
    """A user under a 10-minute quarantine, its execution waiting; returns
    (execution ARN, quarantine.json key)."""
    seed_user(stack.iam, name, access_keys=2)
    keys = [k["AccessKeyId"] for k in stack.iam.list_access_keys(UserName=name)["AccessKeyMetadata"]]
    arn = stack.start({"UserName": name, "DeleteAfter": utc(600)}, name=f"{name}-grace")
    key = key_of(name, f"{name}-grace", "quarantine.json")
    for _ in range(300):
        if key in stack.record_keys(f"records/{ACCOUNT}/{name}/"):
            break
        time.sleep(0.2)
    assert key in stack.record_keys(f"records/{ACCOUNT}/{name}/")
    assert len(keys) == 2
    return arn, key


def statuses(stack, name: str) -> dict[str, str]:
    return {k["AccessKeyId"]: k["Status"] for k in stack.iam.list_access_keys(UserName=name)["AccessKeyMetadata"]}


def test_a_planted_deactivation_list_is_refused_and_the_quarantine_holds(stack):
    arn, key = quarantined(stack, "ula")
    # Incident response disabled another key of a colleague; the planted
    # record claims the quarantine deactivated it, so a restore would enable it.
    seed_user(stack.iam, "ula-colleague", access_keys=1)
    [theirs] = [k["AccessKeyId"] for k in stack.iam.list_access_keys(UserName="ula-colleague")["AccessKeyMetadata"]]
    stack.iam.update_access_key(UserName="ula-colleague", AccessKeyId=theirs, Status="Inactive")
    record = stack.record(key)
    record["Quarantine"]["Deactivated"]["AccessKeys"].append(theirs)
    put(stack, key, record)
    before = statuses(stack, "ula")
    stack.clear_calls()
    result = restore(stack, "--user-name", "ula", "--record-bucket", AUDIT_BUCKET, "--yes")
    assert result.returncode == 1, result.stderr
    assert "is not what execution" in result.stderr, result.stderr
    assert iam_writes(stack) == [] and statuses(stack, "ula") == before
    assert stack.sfn.describe_execution(executionArn=arn)["status"] == "RUNNING", "nothing was stopped"
    stack.sfn.stop_execution(executionArn=arn)


def test_two_quarantine_records_for_one_quarantine_are_refused_not_picked(stack):
    arn, key = quarantined(stack, "uma")
    put(stack, key_of("uma", "uma-copy", "quarantine.json"), stack.record(key))
    stack.clear_calls()
    result = restore(stack, "--user-name", "uma", "--record-bucket", AUDIT_BUCKET, "--yes")
    assert result.returncode == 1, result.stderr
    assert "2 quarantine records of uma" in result.stderr and "uma-copy" in result.stderr, result.stderr
    assert iam_writes(stack) == []
    assert stack.sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"
    stack.sfn.stop_execution(executionArn=arn)


def test_a_user_deleted_after_its_quarantine_is_restored_without_the_quarantines_deny(stack):
    seed_user(stack.iam, "una", attached_policies=1)
    own = [p["PolicyArn"] for p in stack.iam.list_attached_user_policies(UserName="una")["AttachedPolicies"]]
    execution = stack.run({"UserName": "una", "DeleteAfter": utc(5)}, name="una-grace")
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert leftovers(stack.iam, "una") == {}
    key = key_of("una", "una-grace", "record.json")
    assert DENY_ALL in [p["PolicyArn"] for p in stack.record(key)["Items"]["AttachedPolicies"]]
    result = restore(stack, "--record", f"s3://{AUDIT_BUCKET}/{key}", "--yes", "--output", "json")
    assert result.returncode == 0, result.stderr
    attached = sorted(p["PolicyArn"] for p in stack.iam.list_attached_user_policies(UserName="una")["AttachedPolicies"])
    assert attached == sorted(own), "the user's own policies, not the quarantine's deny"
    assert any(item.startswith(f"{DENY_ALL}: attached by the quarantine") for item in json.loads(result.stdout)["NotRestored"])


def test_a_record_the_cli_wrote_is_restored_labelled_unverified(stack, tmp_path):
    seed_user(stack.iam, "ugo", groups=1)
    deleted = offboard(stack, "delete", "--user-name", "ugo", "--yes", "--record-dir", str(tmp_path))
    assert deleted.returncode == 0, deleted.stderr
    [record] = (tmp_path / "records" / ACCOUNT / "ugo").glob("cli-*/record.json")
    result = offboard(stack, "restore", "--record", str(record), "--yes")
    assert result.returncode == 0, result.stderr
    assert "UNVERIFIED: written by an operator's offboard CLI" in result.stderr, result.stderr
