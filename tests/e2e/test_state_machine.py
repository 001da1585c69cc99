"""The real statemachine/offboard.asl.json, executed by moto's interpreter,
invoking the seven real release binaries through the Lambda Runtime API,
against the strict IAM emulator. Each scenario asserts the final IAM state,
the execution status, the error name and which calls were made."""

from __future__ import annotations

import datetime
import json
import re
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "emulator"))

from lambda_host import BIN_DIR, FUNCTIONS, access_key_for  # noqa: E402
from seed import ACCOUNT, hardware_serial, leftovers, passkey_serial, seed_user  # noqa: E402
from stack import Stack  # noqa: E402

STAGE_ACTIONS = json.loads((ROOT / "infra" / "stage-actions.json").read_text())
STAGE_BY_KEY = {access_key_for(stage): stage for stage in FUNCTIONS}
MUTATING_PREFIXES = ("Delete", "Deactivate", "Remove", "Detach", "Update", "Put", "Create", "Attach", "Enable", "Tag", "Untag")
# AWS Managed Policy Reference, AWSDenyAll: "ARN: arn:aws:iam::aws:policy/AWSDenyAll"
# (https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSDenyAll.html).
DENY_ALL = "arn:aws:iam::aws:policy/AWSDenyAll"
QUARANTINE_TAG = "offboard:quarantined-until"


@pytest.fixture(scope="module")
def stack():
    with Stack(instances=2) as running:
        yield running


def function_calls(stack, stage: str | None = None) -> list[str]:
    """The IAM calls the functions made (not the Step Functions calls each
    makes first to confirm that the workflow invoked it)."""
    return [c["Action"] for c in stack.calls()
            if c["AccessKeyId"] in STAGE_BY_KEY and c["Service"] == "iam"
            and (stage is None or STAGE_BY_KEY[c["AccessKeyId"]] == stage)]


def mutating(actions: list[str]) -> list[str]:
    return [a for a in actions if a.startswith(MUTATING_PREFIXES)]


def entered_states(stack, execution_arn: str) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in stack.history(execution_arn) if "stateEnteredEventDetails" in e]


def snapshot(iam, name: str) -> dict:
    """Everything a user holds, to prove bystanders are untouched."""
    return {
        "user": iam.get_user(UserName=name)["User"]["UserId"],
        "keys": sorted(k["AccessKeyId"] for k in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]),
        "ssh": sorted(k["SSHPublicKeyId"] for k in iam.list_ssh_public_keys(UserName=name)["SSHPublicKeys"]),
        "certs": sorted(c["CertificateId"] for c in iam.list_signing_certificates(UserName=name)["Certificates"]),
        "creds": sorted(c["ServiceSpecificCredentialId"] for c in iam.list_service_specific_credentials(UserName=name)["ServiceSpecificCredentials"]),
        "mfa": sorted(d["SerialNumber"] for d in iam.list_mfa_devices(UserName=name)["MFADevices"]),
        "groups": sorted(g["GroupName"] for g in iam.list_groups_for_user(UserName=name)["Groups"]),
        "inline": sorted(iam.list_user_policies(UserName=name)["PolicyNames"]),
        "attached": sorted(p["PolicyArn"] for p in iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]),
        "login": bool(_login(iam, name)),
    }


def _login(iam, name):
    try:
        return iam.get_login_profile(UserName=name)
    except iam.exceptions.NoSuchEntityException:
        return None


def test_passkey_hardware_and_virtual_devices_succeed_in_one_execution(stack):
    made = seed_user(stack.iam, "alice")
    alice_id = stack.iam.get_user(UserName="alice")["User"]["UserId"]
    bystander = seed_user(stack.iam, "bob")
    before = snapshot(stack.iam, "bob")
    execution = stack.run({"UserName": "alice", "Context": {"Ticket": "OPS-1"}}, name="alice")
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    record = json.loads(execution["output"])
    assert leftovers(stack.iam, "alice") == {}
    virtual = [d["SerialNumber"] for d in stack.iam.list_virtual_mfa_devices()["VirtualMFADevices"]]
    assert made["MFADevices"][0] not in virtual and bystander["MFADevices"][0] in virtual
    actions = function_calls(stack, "DeleteKeysCertificatesMfaAndCredentials")
    assert actions.count("DeleteVirtualMFADevice") == 1
    assert actions.count("DeactivateMFADevice") == 3
    marks = [c["Params"] for c in stack.calls() if c["Action"] == "TagMFADevice"]
    assert marks == [{"SerialNumber": made["MFADevices"][0], "Tags.member.1.Key": "offboard:deactivated-from",
                      "Tags.member.1.Value": alice_id}], "only the virtual device, marked with alice's id"
    states = entered_states(stack, execution["executionArn"])
    assert states.count("DeactivateAndDeleteVirtualDevice") == 1 and states.count("DeactivateOnly") == 2
    assert states.count("DeleteIAMUserAndVerify") == 1, "one round"
    assert {d["SerialNumber"]: d["HandledAs"] for d in record["Items"]["MFADevices"]} == {
        made["MFADevices"][0]: "Virtual", made["MFADevices"][1]: "NonVirtual", made["MFADevices"][2]: "NonVirtual"}
    assert record["Context"] == {"Ticket": "OPS-1"} and record["Rounds"] == 0
    assert set(record["Timings"]) == set(FUNCTIONS) - {"QuarantineUser", "OffboardBatch"}, "no grace period, no quarantine; no batch"
    assert "Quarantine" not in record
    assert snapshot(stack.iam, "bob") == before, "nothing outside the target user is touched"


def test_every_credential_type_at_the_per_user_limits(stack):
    made = seed_user(
        stack.iam, "limits", access_keys=2, ssh_keys=5, certificates=2,
        services=("codecommit.amazonaws.com", "cassandra.amazonaws.com", "bedrock.amazonaws.com"),
        credentials_per_service=2, virtual_devices=3, passkeys=3, hardware_tokens=2,
        groups=10, inline_policies=5, attached_policies=20)
    execution = stack.run({"UserName": "limits"}, name="limits")
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    items = json.loads(execution["output"])["Items"]
    assert leftovers(stack.iam, "limits") == {}
    counts = {kind: len(items[kind]) for kind in items if isinstance(items[kind], list)}
    assert counts == {"AccessKeys": 2, "SSHPublicKeys": 5, "SigningCertificates": 2, "ServiceSpecificCredentials": 6,
                      "MFADevices": 8, "Groups": 10, "InlinePolicies": 5, "AttachedPolicies": 20}
    assert sorted(c["ServiceName"] for c in items["ServiceSpecificCredentials"]).count("bedrock.amazonaws.com") == 2
    assert function_calls(stack).count("DeleteVirtualMFADevice") == 3
    assert all(item.get("Outcome") == "Removed" for kind in counts for item in items[kind] if kind != "MFADevices")
    assert set(made["AccessKeys"]) == {k["AccessKeyId"] for k in items["AccessKeys"]}


def test_id_lookup_among_5000_users(stack):
    from moto.iam.models import iam_backends

    backend = iam_backends[ACCOUNT]["global"]
    for i in range(5000):
        backend.create_user(region_name="us-east-1", user_name=f"crowd{i:04d}")
    target = stack.iam.get_user(UserName="crowd4999")["User"]["UserId"]
    execution = stack.run({"IAMUserId": target, "DryRun": True}, name="crowd4999-lookup")
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert json.loads(execution["output"])["User"]["UserName"] == "crowd4999"
    list_users = function_calls(stack, "GetUsername").count("ListUsers")
    assert 1 <= list_users <= 6, list_users  # ≥ 5,000 users in 1,000-user pages
    for i in range(5000):
        backend.delete_user(f"crowd{i:04d}")


def test_dry_run_changes_nothing(stack):
    seed_user(stack.iam, "carol")
    before = snapshot(stack.iam, "carol")
    execution = stack.run({"UserName": "carol", "DryRun": True}, name="carol-plan")
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    plan = json.loads(execution["output"])
    assert plan["DryRun"] is True and plan["UserDeletion"] is None
    assert len(plan["Items"]["MFADevices"]) == 3 and plan["Items"]["LoginProfile"] is not None
    assert set(plan["Timings"]) == {"GetUsername", "GetKeysCertificatesMfaAndCredentials", "GetGroupsAndPolicies"}
    assert mutating(function_calls(stack)) == []
    assert snapshot(stack.iam, "carol") == before


def test_protected_by_tag_is_refused_with_zero_mutating_calls(stack):
    seed_user(stack.iam, "erin", tags={"offboard:protected": "true"})
    execution = stack.run({"UserName": "erin"}, name="erin")
    assert execution["status"] == "FAILED"
    assert execution["error"] == "ProtectedUser" and "offboard:protected" in execution["cause"]
    assert mutating(function_calls(stack)) == []
    assert leftovers(stack.iam, "erin") == {"User": "erin", "VirtualMFADevices": [f"arn:aws:iam::{ACCOUNT}:mfa/erin-phone-0"]}


def test_malformed_inputs_are_invalid_input_with_zero_iam_calls(stack):
    cases = json.loads((ROOT / "tests" / "fixtures" / "malformed-inputs.json").read_text())
    assert len(cases) >= 30
    for number, case in enumerate(cases):
        execution = stack.run(case["Input"], name=f"malformed-{number}")
        assert execution["status"] == "FAILED", case["Why"]
        assert execution["error"] == "InvalidInput", (case["Why"], execution.get("error"), execution.get("cause"))
        states = entered_states(stack, execution["executionArn"])
        assert "GetKeysCertificatesMfaAndCredentials" not in states
    assert function_calls(stack) == []


def test_access_key_created_mid_run_is_caught_by_the_delete_conflict_loop(stack):
    seed_user(stack.iam, "frank")
    late_key = {}

    def create_key():
        late_key["id"] = stack.iam.create_access_key(UserName="frank")["AccessKey"]["AccessKeyId"]

    stack.emulator.app.on_next("DetachUserPolicy", create_key)
    execution = stack.run({"UserName": "frank"}, name="frank")
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    record = json.loads(execution["output"])
    assert record["Rounds"] == 1
    assert late_key["id"] in [k["AccessKeyId"] for k in record["Items"]["AccessKeys"]]
    assert len(record["Items"]["AccessKeys"]) == 3, "both rounds are in the record"
    assert function_calls(stack, "DeleteIAMUserAndVerify").count("DeleteUser") == 2
    assert leftovers(stack.iam, "frank") == {}


def test_throttling_server_errors_and_latency_still_succeed(stack):
    names = [f"storm{i}" for i in range(4)]
    for name in names:
        seed_user(stack.iam, name)
    stack.faults(ThrottleRate=0.3, ServerErrorRate=0.1, LatencyMs=5, Seed=11)
    arns = [stack.start({"UserName": name}, name=name) for name in names]
    results = [stack.wait(arn, timeout=600) for arn in arns]
    stack.faults()
    assert [r["status"] for r in results] == ["SUCCEEDED"] * len(names), [r.get("cause") for r in results]
    injected = [c for c in stack.calls() if c["Injected"]]
    assert len(injected) > 20, "the faults were really injected"
    for name in names:
        assert leftovers(stack.iam, name) == {}


def test_throttling_that_outlasts_the_function_timeout_stops_the_stage_in_time(stack):
    """The stage stops waiting on IAM before the Lambda deadline (from the
    Runtime API) and says what it removed, rather than being killed; the
    state machine's retry finishes once IAM lets calls through again."""
    seed_user(stack.iam, "tina")
    # The first access key is removed; every IAM call after it is throttled.
    execution, failures = stack.run_throttled_after("DeleteAccessKey", "tina")
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert failures, "the throttling really outlasted an invocation"
    assert {failure["error"] for failure in failures} == {"Throttled"}, "never Sandbox.Timedout"
    first = failures[0]["cause"]
    assert "was still waiting for IAM" in first and "Removed before the failure: login profile, access key" in first, first
    assert leftovers(stack.iam, "tina") == {}


def test_a_stage_stopped_between_deactivating_and_deleting_a_virtual_device_is_finished_by_its_retry(stack):
    """The MFA task deactivates the virtual device, then IAM throttles until
    the invocation must stop: the device is left unassigned. The state
    machine's retry finds the user no longer holds it and deletes it, as it
    carries the mark the first attempt put on it; another person's unassigned
    device, never marked, stays."""
    made = seed_user(stack.iam, "vera", virtual_devices=1, passkeys=0, hardware_tokens=0)
    # [API] CreateVirtualMFADevice creates a device assigned to no one until EnableMFADevice.
    unassigned = stack.iam.create_virtual_mfa_device(VirtualMFADeviceName="new-hire-phone")["VirtualMFADevice"]["SerialNumber"]
    # Served, and every IAM call after it is throttled: DeleteVirtualMFADevice too.
    execution, stopped = stack.run_throttled_after("DeactivateMFADevice", "vera")
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert stopped and {f["error"] for f in stopped} == {"Throttled"}, "stopped by the deadline, never a Lambda timeout"
    assert "was still waiting for IAM" in stopped[0]["cause"], stopped
    served = [c for c in stack.calls() if not c["Injected"]]
    actions = [c["Action"] for c in served]
    assert actions.count("DeactivateMFADevice") == 1 and actions.count("ListMFADeviceTags") >= 1
    assert [c["Params"]["SerialNumber"] for c in served if c["Action"] == "DeleteVirtualMFADevice"] == [made["MFADevices"][0]]
    device = json.loads(execution["output"])["Items"]["MFADevices"][0]
    assert (device["Deactivation"], device["VirtualDeviceDeletion"]) == ("AlreadyAbsent", "Removed"), device
    virtual = [d["SerialNumber"] for d in stack.iam.list_virtual_mfa_devices()["VirtualMFADevices"]]
    assert made["MFADevices"][0] not in virtual and unassigned in virtual
    assert leftovers(stack.iam, "vera") == {}
    stack.iam.delete_virtual_mfa_device(SerialNumber=unassigned)


def test_a_run_stopped_part_way_is_finished_by_a_rerun(stack):
    seed_user(stack.iam, "gina")
    holder = {}

    def stop_execution():
        stack.sfn.stop_execution(executionArn=holder["arn"], error="Killed", cause="operator stopped it")

    # Stopped inside DeleteGroupsAndPolicies. (moto's interpreter crashes when
    # an execution is stopped inside a Map state, so not there.)
    stack.emulator.app.on_next("RemoveUserFromGroup", stop_execution)
    holder["arn"] = stack.start({"UserName": "gina"}, name="gina")
    first = stack.wait(holder["arn"])
    assert first["status"] == "ABORTED"
    assert stack.iam.list_access_keys(UserName="gina")["AccessKeyMetadata"] == [], "credentials were removed before the stop"
    assert stack.iam.list_mfa_devices(UserName="gina")["MFADevices"] == []
    # A stop does not kill the Lambda in flight; the user itself was never deleted.
    assert "DeleteUser" not in function_calls(stack)
    assert stack.iam.get_user(UserName="gina")
    second = stack.run({"UserName": "gina"}, name="gina-rerun")
    assert second["status"] == "SUCCEEDED", second.get("cause")
    assert leftovers(stack.iam, "gina") == {}


def test_mfa_required_denial_is_named_and_not_retried(stack):
    seed_user(stack.iam, "hank", virtual_devices=0, passkeys=1, hardware_tokens=0)
    stack.faults(MfaRequiredForDeactivate=True)
    execution = stack.run({"UserName": "hank"}, name="hank")
    assert execution["status"] == "FAILED"
    assert execution["error"] == "MfaAuthenticationRequired"
    assert "--mfa-serial" in execution["cause"]
    assert function_calls(stack).count("DeactivateMFADevice") == 1, "neither the SDK nor the state machine retried it"
    assert stack.iam.list_access_keys(UserName="hank")["AccessKeyMetadata"] == []
    assert [d["SerialNumber"] for d in stack.iam.list_mfa_devices(UserName="hank")["MFADevices"]] == [passkey_serial("hank")]


def test_config_compliance_event_input(stack):
    seed_user(stack.iam, "ivan", virtual_devices=0, passkeys=0)
    user_id = stack.iam.get_user(UserName="ivan")["User"]["UserId"]
    cases = json.loads((ROOT / "tests" / "fixtures" / "malformed-inputs.json").read_text())
    event = next(case["Input"] for case in cases if case["Why"] == "COMPLIANT Config event")
    event["detail"]["newEvaluationResult"]["complianceType"] = "NON_COMPLIANT"
    event["detail"]["resourceId"] = user_id
    execution = stack.run(event, name="ivan-config")
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    record = json.loads(execution["output"])
    assert record["User"]["UserName"] == "ivan"
    assert record["Context"]["ConfigRuleName"] == "iam-user-unused-credentials-check"
    assert leftovers(stack.iam, "ivan") == {}


def test_the_same_user_started_twice_is_refused_by_name(stack):
    """Step Functions (Standard) is idempotent for the same name and input
    while running, and refuses the name otherwise: one offboarding per user."""
    seed_user(stack.iam, "judy", virtual_devices=0, passkeys=0)
    first = stack.start({"UserName": "judy"}, name="judy")
    assert stack.start({"UserName": "judy"}, name="judy") == first, "no second execution is started"
    with pytest.raises(stack.sfn.exceptions.ExecutionAlreadyExists):
        stack.start({"UserName": "judy", "Context": {"Ticket": "other"}}, name="judy")
    assert stack.wait(first)["status"] == "SUCCEEDED"
    with pytest.raises(stack.sfn.exceptions.ExecutionAlreadyExists):
        stack.start({"UserName": "judy"}, name="judy")
    assert function_calls(stack, "DeleteIAMUserAndVerify").count("DeleteUser") == 1


def test_protected_by_list_and_the_functions_own_identity_are_refused(stack):
    stack.iam.create_user(UserName="breakglass")
    runner = stack.iam.create_user(UserName="offboard-runner")["User"]["UserName"]
    key = stack.iam.create_access_key(UserName=runner)["AccessKey"]
    stack.restart_lambdas(env={"OFFBOARD_PROTECTED_USER_NAMES": "BreakGlass"},
                          credentials={"GetUsername": (key["AccessKeyId"], key["SecretAccessKey"])})
    try:
        listed = stack.run({"UserName": "breakglass"}, name="breakglass")
        assert (listed["status"], listed["error"]) == ("FAILED", "ProtectedUser")
        itself = stack.run({"UserName": "offboard-runner"}, name="offboard-runner")
        assert (itself["status"], itself["error"]) == ("FAILED", "ProtectedUser")
        assert "will not delete itself" in itself["cause"]
        assert mutating(function_calls(stack)) == []
    finally:
        stack.restart_lambdas(env={}, credentials=None)
    assert stack.iam.get_user(UserName="offboard-runner")


def test_offboard_start_names_the_execution_after_the_user_and_follows_it(stack):
    import os
    import subprocess

    seed_user(stack.iam, "lena")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
           "AWS_ACCESS_KEY_ID": "AKIAOPERATOROPERATOR", "AWS_SECRET_ACCESS_KEY": "operator", "AWS_EC2_METADATA_DISABLED": "true"}
    command = [str(BIN_DIR / "offboard"), "--endpoint-url", stack.emulator.url, "--region", "us-east-1",
               "start", "--state-machine-arn", stack.state_machine_arn, "--user-name", "lena", "--wait", "--output", "json"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=300)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["User"]["UserName"] == "lena" and record["UserDeletion"]["Outcome"] == "Removed"
    assert "DeleteIAMUserAndVerify" in result.stderr, "progress is shown per stage"
    execution_arn = re.search(r"started (\S+)", result.stderr)[1]
    # [0-9A-Za-z_-] only (StartExecution's guidance for logged executions), the
    # canonical (lower-case) name plus a short hash of it.
    assert re.fullmatch(r"lena-[0-9a-f]{8}", execution_arn.rsplit(":", 1)[1]), execution_arn
    assert stack.sfn.describe_execution(executionArn=execution_arn)["status"] == "SUCCEEDED"
    # IAM user names are unique regardless of case: LENA is the same user, so
    # Step Functions refuses the duplicate execution name.
    upper = [("LENA" if part == "lena" else part) for part in command]
    again = subprocess.run(upper, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=60)
    assert again.returncode == 2 and "already exists" in again.stderr, again.stderr
    assert leftovers(stack.iam, "lena") == {}


def utc_in(seconds: float) -> str:
    """A DeleteAfter ``seconds`` from now, in the form Wait's TimestampPath takes."""
    return (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def wait_for_state(stack, execution_arn: str, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while name not in entered_states(stack, execution_arn):
        execution = stack.sfn.describe_execution(executionArn=execution_arn)
        assert execution["status"] == "RUNNING", (execution["status"], execution.get("cause"))
        assert time.monotonic() < deadline, f"{name} not reached in {timeout} s"
        time.sleep(0.1)


def test_a_grace_period_disables_the_user_at_once_and_deletes_it_after_the_wait(stack):
    made = seed_user(stack.iam, "quinn", certificates=1, ssh_keys=1, services=("codecommit.amazonaws.com", "bedrock.amazonaws.com"))
    iam = stack.iam
    # One key already inactive: the quarantine leaves it, and says so.
    iam.update_access_key(UserName="quinn", AccessKeyId=made["AccessKeys"][1], Status="Inactive")
    stack.clear_calls()
    delete_after = utc_in(8)
    arn = stack.start({"UserName": "quinn", "DeleteAfter": delete_after}, name="quinn")
    wait_for_state(stack, arn, "WaitForDeleteAfter")

    # During the wait: every credential Inactive, AWSDenyAll attached, the tag
    # set; login profile and MFA devices kept; nothing deleted. IAM API
    # Reference: UpdateAccessKey "Changes the status of the specified access key
    # from Active to Inactive, or vice versa" (https://docs.aws.amazon.com/IAM/latest/APIReference/API_UpdateAccessKey.html),
    # UpdateSSHPublicKey, UpdateSigningCertificate and UpdateServiceSpecificCredential
    # likewise (Status: Active | Inactive), and the List* calls return each
    # item's Status; stock moto keeps those statuses (emulator.py extends only
    # the service-specific credentials). AWSDenyAll is attachable because the
    # stack loads AWS managed policies (stack.py, beside mock_aws).
    assert {k["Status"] for k in iam.list_access_keys(UserName="quinn")["AccessKeyMetadata"]} == {"Inactive"}
    assert {k["Status"] for k in iam.list_ssh_public_keys(UserName="quinn")["SSHPublicKeys"]} == {"Inactive"}
    assert {c["Status"] for c in iam.list_signing_certificates(UserName="quinn")["Certificates"]} == {"Inactive"}
    assert {c["Status"] for c in iam.list_service_specific_credentials(UserName="quinn")["ServiceSpecificCredentials"]} == {"Inactive"}
    attached = {p["PolicyArn"] for p in iam.list_attached_user_policies(UserName="quinn")["AttachedPolicies"]}
    assert attached == set(made["AttachedPolicies"]) | {DENY_ALL}
    assert {t["Key"]: t["Value"] for t in iam.get_user(UserName="quinn")["User"]["Tags"]}[QUARANTINE_TAG] == delete_after
    assert _login(iam, "quinn") is not None
    assert sorted(d["SerialNumber"] for d in iam.list_mfa_devices(UserName="quinn")["MFADevices"]) == sorted(made["MFADevices"])
    # The order: the tag first (a quarantine failing part-way still holds the user),
    # the deny next, then the deactivations.
    changes = mutating(function_calls(stack, "QuarantineUser"))
    assert changes[:2] == ["TagUser", "AttachUserPolicy"], changes
    assert sorted(changes[2:]) == sorted(["UpdateAccessKey", "UpdateSSHPublicKey", "UpdateSigningCertificate",
                                            "UpdateServiceSpecificCredential", "UpdateServiceSpecificCredential"])
    assert mutating(function_calls(stack)) == changes, "no other function changed anything before the wait"
    assert "CheckQuarantine" not in entered_states(stack, arn), "the checks above ran during the wait"

    execution = stack.wait(arn)
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    record = json.loads(execution["output"])
    quarantine = record["Quarantine"]
    assert quarantine["QuarantinedUntil"] == delete_after and quarantine["ExecutionArn"] == arn
    assert quarantine["Deactivated"]["AccessKeys"] == [made["AccessKeys"][0]]
    assert quarantine["AlreadyInactive"]["AccessKeys"] == [made["AccessKeys"][1]]
    assert quarantine["DenyAllAttachedByQuarantine"] is True and quarantine["Kept"]["LoginProfile"] is True
    # The deletion took a fresh inventory: AWSDenyAll is detached like any attached policy.
    assert DENY_ALL in [p["PolicyArn"] for p in record["Items"]["AttachedPolicies"]]
    states = entered_states(stack, arn)
    assert [states.count(s) for s in ("QuarantineUser", "WaitForDeleteAfter", "CheckQuarantine", "DeletionPhase")] == [1, 1, 1, 1]
    assert states.count("GetKeysCertificatesMfaAndCredentials") == 2
    assert leftovers(stack.iam, "quinn") == {}


def test_zz_each_function_called_only_what_its_role_allows(stack):
    """Runs last: every call of the session, by the function that made it."""
    observed: dict[str, set[str]] = {}
    for call in stack.all_calls():
        stage = STAGE_BY_KEY.get(call["AccessKeyId"])
        if stage and call["Service"] == "iam" and not call["Injected"]:
            observed.setdefault(stage, set()).add(f"iam:{call['Action']}")
    assert set(observed) == set(STAGE_ACTIONS)
    for stage, actions in observed.items():
        assert actions <= set(STAGE_ACTIONS[stage]), f"{stage} called {sorted(actions - set(STAGE_ACTIONS[stage]))}"
    # Every declared action was exercised somewhere in the suite.
    assert {a for actions in observed.values() for a in actions} == {a for v in STAGE_ACTIONS.values() for a in v}



# --- partial failures keep the record whole (issue 25) ---------------------------------------


def test_a_failed_mfa_device_keeps_the_other_devices_outcomes_in_the_record(stack):
    """One device fails (a policy denies deleting the virtual device after its
    deactivation); the passkey was removed: the failure record names both
    outcomes, where a failed Map iteration used to drop every result."""
    made = seed_user(stack.iam, "mona", virtual_devices=1, passkeys=1, hardware_tokens=0)
    stack.faults(PolicyDenyActions=["DeleteVirtualMFADevice"])
    execution = stack.run({"UserName": "mona"}, name="mona")
    stack.faults()
    assert (execution["status"], execution["error"]) == ("FAILED", "AccessDenied"), execution.get("cause")
    record = stack.record(f"records/{ACCOUNT}/mona/mona/record.json")
    devices = {d["SerialNumber"]: d for d in record["Removed"]["MFADevices"]}
    [virtual] = [s for s in made["MFADevices"] if ":mfa/" in s]
    [passkey] = [s for s in made["MFADevices"] if ":u2f/" in s]
    assert devices[passkey]["Deactivation"] == "Removed" and "Error" not in devices[passkey]
    assert devices[virtual]["Error"] == "AccessDenied" and "DeleteVirtualMFADevice" in devices[virtual]["Cause"]
    assert stack.iam.list_mfa_devices(UserName="mona")["MFADevices"] == [], "both deactivated"
    assert "DeleteGroupsAndPolicies" not in entered_states(stack, execution["executionArn"])


def test_a_user_renamed_before_its_deletion_is_not_recorded_as_gone(stack):
    """Gone by name is not gone: a user renamed between the inventory and the
    deletion (UpdateUser NewUserName keeps the user's id: IAM API reference,
    UpdateUser, https://docs.aws.amazon.com/IAM/latest/APIReference/API_UpdateUser.html)
    fails the offboarding as VerificationFailed naming the new name, never Offboarded."""
    seed_user(stack.iam, "otto", access_keys=0, ssh_keys=0, certificates=0, services=(), virtual_devices=0,
              passkeys=0, hardware_tokens=0, groups=0, inline_policies=0, attached_policies=1, login_profile=False)
    user_id = stack.iam.get_user(UserName="otto")["User"]["UserId"]
    stack.emulator.app.on_next("DetachUserPolicy", lambda: stack.iam.update_user(UserName="otto", NewUserName="otto-2"))
    execution = stack.run({"UserName": "otto"}, name="otto")
    assert (execution["status"], execution["error"]) == ("FAILED", "VerificationFailed"), execution.get("cause")
    assert "renamed to otto-2" in execution["cause"]
    assert stack.iam.get_user(UserName="otto-2")["User"]["UserId"] == user_id, "the user still exists"
    assert "DeleteUser" not in function_calls(stack, "DeleteIAMUserAndVerify")
