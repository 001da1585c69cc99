"""`offboard` (the release binary) against the strict emulator: final IAM
state, error names, and the IAM calls the call log saw."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "emulator"))

from seed import leftovers, seed_user  # noqa: E402
from lambda_host import BIN_DIR  # noqa: E402
from cli import OFFBOARD, run_offboard  # noqa: E402
from server import start  # noqa: E402

MUTATING_PREFIXES = ("Delete", "Deactivate", "Remove", "Detach", "Update", "Put", "Create", "Attach", "Enable", "Tag", "Untag")


@pytest.fixture(scope="module")
def emulator():
    server = start(0)
    yield server
    server.stop()


@pytest.fixture()
def iam(emulator):
    control(emulator, "faults", {})
    return boto3.client(
        "iam",
        endpoint_url=emulator.url,
        region_name="us-east-1",
        aws_access_key_id="AKIASEEDSEEDSEEDSEED",
        aws_secret_access_key="seed",
    )


def control(emulator, what: str, body=None, method: str | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{emulator.url}/_offboard/{what}", data=data, method=method or ("POST" if data else "GET"))
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


def offboard(emulator, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_offboard(emulator.url, *args, env=env, timeout=120)


def operator_calls(emulator) -> list[dict]:
    return [c for c in control(emulator, "calls") if c["AccessKeyId"] == "AKIAOPERATOROPERATOR"]


def mutating(calls: list[dict]) -> list[str]:
    return [c["Action"] for c in calls if c["Action"].startswith(MUTATING_PREFIXES)]


def test_delete_removes_passkey_hardware_virtual_and_every_credential_in_one_run(emulator, iam):
    made = seed_user(iam, "alice")
    bystander = seed_user(iam, "bob-stays", virtual_devices=1, passkeys=1)
    control(emulator, "calls", method="DELETE")

    result = offboard(emulator, "delete", "--user-name", "alice", "--yes", "--output", "json", "--context", '{"Ticket": "OPS-1"}')
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)

    assert leftovers(iam, "alice") == {}
    items = record["Items"]
    assert sorted(k["AccessKeyId"] for k in items["AccessKeys"]) == sorted(made["AccessKeys"])
    assert {c["ServiceName"] for c in items["ServiceSpecificCredentials"]} == {"codecommit.amazonaws.com", "bedrock.amazonaws.com"}
    handled = {d["SerialNumber"]: d["HandledAs"] for d in items["MFADevices"]}
    assert handled == {made["MFADevices"][0]: "Virtual", made["MFADevices"][1]: "NonVirtual", made["MFADevices"][2]: "NonVirtual"}
    assert items["LoginProfile"]["Outcome"] == "Removed"
    assert items["InlinePolicies"][0]["PolicyDocument"]["Statement"][0]["Action"] == "s3:GetObject"
    assert record["User"]["PermissionsBoundary"] == made["Boundary"]
    assert record["Context"] == {"Ticket": "OPS-1"}
    assert record["UserDeletion"]["Outcome"] == "Removed"
    assert record["DryRun"] is False and record["Rounds"] == 0

    actions = [c["Action"] for c in operator_calls(emulator)]
    assert actions.count("DeleteVirtualMFADevice") == 1, "only the virtual device is deleted as a virtual device"
    assert actions.count("DeactivateMFADevice") == 3
    assert actions.count("DeleteUser") == 1, "one run, no DeleteConflict"
    # Nothing outside the target user is touched.
    assert leftovers(iam, "bob-stays") == {"User": "bob-stays", "VirtualMFADevices": [bystander["MFADevices"][0]]}
    assert len(iam.list_mfa_devices(UserName="bob-stays")["MFADevices"]) == 3


def test_plan_changes_nothing(emulator, iam):
    seed_user(iam, "carol")
    control(emulator, "calls", method="DELETE")
    result = offboard(emulator, "plan", "--user-name", "carol", "--output", "json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["DryRun"] is True and record["UserDeletion"] is None
    assert len(record["Items"]["MFADevices"]) == 3
    assert all("Outcome" not in key for key in record["Items"]["AccessKeys"])
    assert mutating(operator_calls(emulator)) == []
    assert iam.get_user(UserName="carol")["User"]["UserName"] == "carol"


def test_lookup_by_user_id(emulator, iam):
    user_id = iam.create_user(UserName="dave")["User"]["UserId"]
    assert user_id.startswith("AIDA") and len(user_id) == 21
    result = offboard(emulator, "delete", "--user-id", user_id, "--yes", "--output", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["User"]["UserName"] == "dave"
    assert leftovers(iam, "dave") == {}


def test_protected_user_is_refused_with_no_mutating_call(emulator, iam):
    seed_user(iam, "erin", tags={"offboard:protected": "true"})
    control(emulator, "calls", method="DELETE")
    result = offboard(emulator, "delete", "--user-name", "erin", "--yes")
    assert result.returncode == 1
    assert "ProtectedUser" in result.stderr
    assert mutating(operator_calls(emulator)) == []

    seed_user(iam, "frank", path="/breakglass/", tags={"team": "sre"})
    control(emulator, "calls", method="DELETE")
    result = offboard(emulator, "delete", "--user-name", "frank", "--yes", env={"OFFBOARD_PROTECTED_PATH_PREFIXES": "/breakglass/"})
    assert result.returncode == 1 and "ProtectedUser" in result.stderr
    assert mutating(operator_calls(emulator)) == []


def test_delete_without_yes_and_without_a_terminal_is_refused(emulator, iam):
    iam.create_user(UserName="gina")
    result = offboard(emulator, "delete", "--user-name", "gina")
    assert result.returncode == 2 and "--yes" in result.stderr
    assert iam.get_user(UserName="gina")["User"]["UserName"] == "gina"


def test_mfa_required_is_named_not_retried_and_a_rerun_finishes(emulator, iam):
    seed_user(iam, "hank")
    control(emulator, "faults", {"MfaRequiredForDeactivate": True})
    control(emulator, "calls", method="DELETE")
    result = offboard(emulator, "delete", "--user-name", "hank", "--yes")
    assert result.returncode == 1
    assert "MfaAuthenticationRequired" in result.stderr and "--mfa-serial" in result.stderr
    actions = [c["Action"] for c in operator_calls(emulator)]
    assert actions.count("DeactivateMFADevice") == 1, "the first denial stops the run; it is not retried"
    # Part-way: the credentials stage finished before the MFA devices.
    assert iam.list_access_keys(UserName="hank")["AccessKeyMetadata"] == []
    assert len(iam.list_mfa_devices(UserName="hank")["MFADevices"]) == 3

    control(emulator, "faults", {})
    result = offboard(emulator, "delete", "--user-name", "hank", "--yes", "--output", "json")
    assert result.returncode == 0, result.stderr
    assert leftovers(iam, "hank") == {}


def test_unknown_user_is_user_not_found(emulator, iam):
    result = offboard(emulator, "delete", "--user-name", "nobody-here", "--yes")
    assert result.returncode == 1 and "UserNotFound" in result.stderr


@pytest.mark.parametrize("bad_name", ["", "alice smith", "a" * 65, "al*ce", "\u00e5lice", "alice/ops"])
def test_bad_user_names_are_invalid_input_with_no_call(emulator, iam, bad_name):
    control(emulator, "calls", method="DELETE")
    result = offboard(emulator, "delete", "--user-name", bad_name, "--yes")
    assert result.returncode == 1 and "InvalidInput" in result.stderr, result.stderr
    assert operator_calls(emulator) == []


def test_mfa_session_path_uses_sts_get_session_token_credentials(emulator, iam):
    seed_user(iam, "kim", virtual_devices=0)
    control(emulator, "calls", method="DELETE")
    result = offboard(emulator, "--mfa-serial", "arn:aws:iam::123456789012:mfa/operator", "--mfa-token-code", "123456",
                      "delete", "--user-name", "kim", "--yes", "--output", "json")
    assert result.returncode == 0, result.stderr
    assert leftovers(iam, "kim") == {}
    calls = control(emulator, "calls")
    session = [c for c in calls if c["Action"] == "GetSessionToken"]
    assert len(session) == 1 and session[0]["AccessKeyId"] == "AKIAOPERATOROPERATOR"
    iam_keys = {c["AccessKeyId"] for c in calls if c["Service"] == "iam"}
    assert iam_keys and "AKIAOPERATOROPERATOR" not in iam_keys, "IAM calls are made with the MFA session's credentials"


def s3(emulator):
    return boto3.client("s3", endpoint_url=emulator.url, region_name="us-east-1",
                        aws_access_key_id="AKIASEEDSEEDSEEDSEED", aws_secret_access_key="seed")


def test_delete_files_the_plan_and_record_and_records_lists_them(emulator, iam, tmp_path):
    seed_user(iam, "rosa")
    result = offboard(emulator, "delete", "--user-name", "rosa", "--yes", "--output", "json", "--record-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    [execution] = list((tmp_path / "records" / "123456789012" / "rosa").iterdir())
    record = json.loads((execution / "record.json").read_text())
    assert record == json.loads(result.stdout), "the stored record is the printed one"
    plan = json.loads((execution / "plan.json").read_text())
    assert plan["DryRun"] is False and all("Outcome" not in key for key in plan["Items"]["AccessKeys"])
    assert leftovers(iam, "rosa") == {}
    # IAM user names are unique regardless of case; so is the lookup.
    listed = offboard(emulator, "records", "--user-name", "ROSA", "--record-dir", str(tmp_path), "--output", "json")
    assert listed.returncode == 0, listed.stderr
    documents = json.loads(listed.stdout)
    assert [d["Key"].rsplit("/", 1)[1] for d in documents] == ["plan.json", "record.json"]
    assert documents[1]["Record"] == record
    text = offboard(emulator, "records", "--user-name", "rosa", "--record-dir", str(tmp_path))
    assert "record.json  offboarded" in text.stdout and "plan.json  plan" in text.stdout


def test_a_failed_delete_files_a_partial_record_naming_what_was_removed(emulator, iam, tmp_path):
    made = seed_user(iam, "ruth", virtual_devices=0, passkeys=1, hardware_tokens=0)
    control(emulator, "faults", {"MfaRequiredForDeactivate": True})
    result = offboard(emulator, "delete", "--user-name", "ruth", "--yes", "--record-dir", str(tmp_path))
    assert result.returncode == 1
    [execution] = list((tmp_path / "records" / "123456789012" / "ruth").iterdir())
    record = json.loads((execution / "record.json").read_text())
    assert record["Error"] in result.stderr
    assert {k["AccessKeyId"]: k["Outcome"] for k in record["Removed"]["Credentials"]["AccessKeys"]} == {
        key: "Removed" for key in made["AccessKeys"]}
    assert record["Removed"]["MFADevices"] is None and record["Removed"]["Permissions"] is None
    assert record["Plan"]["Items"]["MFADevices"][0]["SerialNumber"] == made["MFADevices"][0]
    listed = offboard(emulator, "records", "--user-name", "ruth", "--record-dir", str(tmp_path))
    assert f"record.json  failed: {record['Error']}" in listed.stdout


def test_records_in_a_bucket(emulator, iam):
    s3(emulator).create_bucket(Bucket="audit-bucket")
    seed_user(iam, "rhea")
    result = offboard(emulator, "delete", "--user-name", "rhea", "--yes", "--record-bucket", "audit-bucket")
    assert result.returncode == 0, result.stderr
    keys = [o["Key"] for o in s3(emulator).list_objects_v2(Bucket="audit-bucket", Prefix="records/123456789012/rhea/")["Contents"]]
    assert sorted(k.rsplit("/", 1)[1] for k in keys) == ["plan.json", "record.json"]
    assert "record.json written to s3://audit-bucket/records/123456789012/rhea/" in result.stderr
    listed = offboard(emulator, "records", "--user-name", "rhea", "--record-bucket", "audit-bucket",
                      "--account", "123456789012", "--output", "json")
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 2


def test_a_plan_that_cannot_be_stored_stops_before_any_change(emulator, iam):
    seed_user(iam, "remy")
    control(emulator, "calls", method="DELETE")
    result = offboard(emulator, "delete", "--user-name", "remy", "--yes", "--record-bucket", "no-such-bucket")
    assert result.returncode == 1 and "RecordNotWritten" in result.stderr, result.stderr
    assert [c for c in operator_calls(emulator) if c["Action"].startswith(MUTATING_PREFIXES) and c["Service"] == "iam"] == []
    assert leftovers(iam, "remy") != {}


def permissions(iam, name: str) -> dict:
    """Everything restore-from-record brings back (credentials never)."""
    user = iam.get_user(UserName=name)["User"]
    return {
        "path": user["Path"],
        "tags": sorted((t["Key"], t["Value"]) for t in user.get("Tags", [])),
        "boundary": user.get("PermissionsBoundary", {}).get("PermissionsBoundaryArn"),
        "groups": sorted(g["GroupName"] for g in iam.list_groups_for_user(UserName=name)["Groups"]),
        "inline": {p: iam.get_user_policy(UserName=name, PolicyName=p)["PolicyDocument"]
                   for p in iam.list_user_policies(UserName=name)["PolicyNames"]},
        "attached": sorted(p["PolicyArn"] for p in iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]),
    }


def offboarded_with_record(emulator, iam, tmp_path, name: str, **seed) -> tuple[dict, dict, Path]:
    made = seed_user(iam, name, path="/engineering/", tags={"team": "payments", "Owner": name}, **seed)
    before = permissions(iam, name)
    result = offboard(emulator, "delete", "--user-name", name, "--yes", "--record-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    [record] = (tmp_path / "records" / "123456789012" / name).glob("*/record.json")
    return made, before, record


def test_restore_from_a_record_rebuilds_the_permissions_never_the_credentials(emulator, iam, tmp_path):
    made, before, record = offboarded_with_record(emulator, iam, tmp_path, "rory", groups=2, inline_policies=2, attached_policies=3)
    assert leftovers(iam, "rory") == {}
    result = offboard(emulator, "restore", "--record", str(record), "--yes", "--output", "json")
    assert result.returncode == 0, result.stderr
    assert permissions(iam, "rory") == before, "path, tags, boundary, groups, inline documents and attachments are back"
    report = json.loads(result.stdout)
    assert report["CouldNotRestore"] == []
    assert {f"access key {key}" for key in made["AccessKeys"]} <= set(report["NotRestored"])
    assert any(item.startswith("MFA device") for item in report["NotRestored"])
    assert iam.list_access_keys(UserName="rory")["AccessKeyMetadata"] == [], "no credential is recreated"
    assert iam.list_mfa_devices(UserName="rory")["MFADevices"] == []
    # A user of that name now exists: a second restore refuses and changes nothing.
    again = offboard(emulator, "restore", "--record", str(record), "--yes")
    assert again.returncode == 1 and "already exists" in again.stderr, again.stderr
    assert permissions(iam, "rory") == before


def test_restore_reports_a_group_that_no_longer_exists_and_restores_the_rest(emulator, iam, tmp_path):
    iam.create_group(GroupName="disbanded-team")
    seed_user(iam, "rolf", groups=1, inline_policies=1, attached_policies=1)
    iam.add_user_to_group(GroupName="disbanded-team", UserName="rolf")
    before = permissions(iam, "rolf")
    result = offboard(emulator, "delete", "--user-name", "rolf", "--yes", "--record-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    iam.delete_group(GroupName="disbanded-team")
    [record] = (tmp_path / "records" / "123456789012" / "rolf").glob("*/record.json")
    restored = offboard(emulator, "restore", "--record", str(record), "--yes")
    assert restored.returncode == 1, "incomplete: a group could not be restored"
    assert "could not restore: membership of group disbanded-team: it no longer exists" in restored.stdout
    assert "disbanded-team" in restored.stderr
    after = permissions(iam, "rolf")
    assert after == {**before, "groups": [g for g in before["groups"] if g != "disbanded-team"]}


def test_restore_dry_run_and_unconfirmed_restore_change_nothing(emulator, iam, tmp_path):
    _, _, record = offboarded_with_record(emulator, iam, tmp_path, "rita2", groups=1, inline_policies=1, attached_policies=1)
    control(emulator, "calls", method="DELETE")
    planned = offboard(emulator, "restore", "--record", str(record), "--dry-run")
    assert planned.returncode == 0, planned.stderr
    assert "would restore" in planned.stdout and "inline policy reports-read-0" in planned.stdout
    unconfirmed = offboard(emulator, "restore", "--record", str(record))
    assert unconfirmed.returncode == 2 and "pass --yes" in unconfirmed.stderr
    assert [c["Action"] for c in operator_calls(emulator) if c["Service"] == "iam"] == ["GetUser"], "only the existence check"
    assert leftovers(iam, "rita2") == {}


def test_restore_from_a_record_in_a_bucket(emulator, iam):
    s3(emulator).create_bucket(Bucket="restore-bucket")
    seed_user(iam, "roza", groups=1, inline_policies=1, attached_policies=1)
    before = permissions(iam, "roza")
    result = offboard(emulator, "delete", "--user-name", "roza", "--yes", "--record-bucket", "restore-bucket")
    assert result.returncode == 0, result.stderr
    [key] = [o["Key"] for o in s3(emulator).list_objects_v2(Bucket="restore-bucket")["Contents"] if o["Key"].endswith("record.json")]
    restored = offboard(emulator, "restore", "--record", f"s3://restore-bucket/{key}", "--yes")
    assert restored.returncode == 0, restored.stderr
    assert permissions(iam, "roza") == before


def test_plan_files_the_plan_and_nothing_is_changed(emulator, iam, tmp_path):
    seed_user(iam, "remo")
    control(emulator, "calls", method="DELETE")
    result = offboard(emulator, "plan", "--user-name", "remo", "--output", "json", "--record-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    [execution] = list((tmp_path / "records" / "123456789012" / "remo").iterdir())
    assert [p.name for p in execution.iterdir()] == ["plan.json"], "a dry run's only record is its plan"
    plan = json.loads((execution / "plan.json").read_text())
    assert plan == json.loads(result.stdout) and plan["DryRun"] is True
    assert [c for c in operator_calls(emulator) if c["Action"].startswith(MUTATING_PREFIXES) and c["Service"] == "iam"] == []
    assert leftovers(iam, "remo") != {}


def unresolved_record(tmp_path: Path) -> dict:
    """The one refusal filed under ``records/<account>/_unresolved/cli-<unix ms>/``, as the
    state machine's RecordRefusal files GetUsername's refusals."""
    [filed] = (tmp_path / "records" / "123456789012" / "_unresolved").glob("cli-*/record.json")
    record = json.loads(filed.read_text())
    assert set(record) == {"User", "Input", "Error", "Cause"} and record["User"] is None
    assert json.loads(record["Cause"])["errorType"] == record["Error"]
    return record


def test_a_user_not_found_files_its_refusal_under_unresolved_from_either_entry_point(emulator, iam, tmp_path):
    alone = offboard(emulator, "delete", "--user-name", "ghost", "--yes", "--record-dir", str(tmp_path / "alone"))
    assert alone.returncode == 1 and "error: UserNotFound: user ghost does not exist" in alone.stderr, alone.stderr
    record = unresolved_record(tmp_path / "alone")
    assert (record["Input"], record["Error"]) == ({"UserName": "ghost"}, "UserNotFound")

    listed = offboard(emulator, "delete", "--user-name", "ghost", "--yes", "--record-dir", str(tmp_path / "listed"),
                      "--accounts", "123456789012")
    # Per account, a user that is not there is NotPresent, not a failure (as in the state machine).
    assert listed.returncode == 0, listed.stderr
    assert "NotPresent UserNotFound: user ghost does not exist" in listed.stderr
    assert listed.stdout == "123456789012  NotPresent\n"
    assert unresolved_record(tmp_path / "listed") == record, "the same record, filed the same way"


def test_an_invalid_input_files_its_refusal_under_unresolved_from_either_entry_point(emulator, iam, tmp_path):
    for where, scope in (("alone", ()), ("listed", ("--accounts", "123456789012"))):
        result = offboard(emulator, "delete", "--user-name", "al*ce", "--yes", "--record-dir", str(tmp_path / where),
                          *scope)
        assert result.returncode == 1 and "error: InvalidInput" in result.stderr, result.stderr
        record = unresolved_record(tmp_path / where)
        assert (record["Input"], record["Error"]) == ({"UserName": "al*ce"}, "InvalidInput"), where
