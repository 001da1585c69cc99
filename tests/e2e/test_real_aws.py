"""What real AWS does that the happy path never shows, run against the local
stack: only the workflow may act (a direct ``lambda:Invoke`` of any function
is refused before any IAM call, whatever execution id it names), the stages'
own re-checks still refuse a user changed after the inventory, protection
compared without case, a bad configuration refused at init, Lambda's own
failures retried by the state machine, and IAM's real MFA denial messages.

Section 1 proves the workflow guard (crates/core/src/workflow.rs): every one
of the eight functions, invoked directly with the payload the state machine
itself would send, answers NotFromWorkflow having made no IAM call (at most
the guard's own Step Functions reads) and changed nothing, whether the
payload names no execution, a made-up one, one that has ended, or a RUNNING
one waiting out a grace period; the attacks of the security review (reading
one user's policies, stripping one MFA device, detaching the quarantine's
AWSDenyAll, replaying a finished step) are each refused so. Since a stage now
acts only as the pending step of a real execution, its re-checks are proven
through real executions: the user tagged protected, deleted, or deleted and
recreated under the same name after the inventory is refused by the first
removing stage before any change. The MFA task's serial checks (a serial
the user does not hold is refused; on a retry, one no longer held is recorded
and its device deleted only if marked as taken from this user) cannot be
driven with a foreign serial that way: the Map sends only serials of the
user's own inventory. They stay covered by the Rust unit tests in
crates/core/tests/stages.rs, an_mfa_serial_the_user_does_not_hold_is_never_touched
and a_retry_deletes_the_virtual_device_its_earlier_attempt_left_unassigned
(tests/e2e/test_state_machine.py runs the workflow's own retry of a device).

Every emulator behaviour a test relies on names its source in a comment: an
AWS documentation page, or a real response quoted in docs/DESIGN.md ("Real AWS is
the reference, not the emulator")."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "emulator"))

from lambda_host import BIN_DIR, FUNCTIONS, REGION, access_key_for  # noqa: E402
from seed import ACCOUNT, leftovers, passkey_serial, seed_user  # noqa: E402
from stack import Stack  # noqa: E402

STAGE_BY_KEY = {access_key_for(stage): stage for stage in FUNCTIONS}
# Any IAM call that changes something. The brief's four (Delete*, Deactivate*,
# Remove*, Detach*) plus every other write prefix, so nothing slips through.
MUTATING_PREFIXES = ("Delete", "Deactivate", "Remove", "Detach", "Update", "Put", "Create", "Attach", "Enable",
                     "Tag", "Untag", "Resync", "Change", "Upload", "Add", "Set", "Reset")
PROTECTION_TAG = {"Key": "Offboard:Protected", "Value": "true"}  # mixed-case key, as an operator may type it
MFA_SESSION_HINT = "--mfa-serial"
# IAM's own answer when an MFA action needs an MFA-authenticated caller, verbatim
# from a real response (docs/DESIGN.md, "Real AWS is the reference, not the emulator").
IAM_MFA_REQUIRED = ("To complete this action, please ensure that you are authenticated with an MFA device that "
                    "is enabled for this user.")
# The guardrail a quarantine attaches (AWS Managed Policy Reference, AWSDenyAll,
# https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSDenyAll.html; stack.py loads it).
DENY_ALL = "arn:aws:iam::aws:policy/AWSDenyAll"
# The only calls a refused invocation may make: the guard's own reads. The emulator
# logs a call under the service of its SigV4 credential scope; Step Functions signs
# as `states` (its endpointPrefix; botocore's model,
# botocore/data/stepfunctions/2016-11-23/service-2.json, names no other signingName).
GUARD_READS = {("states", "DescribeExecution"), ("states", "GetExecutionHistory")}
EXECUTION_IDS = ("none", "made-up", "ended", "waiting")


@pytest.fixture(scope="module")
def stack():
    with Stack(instances=2) as running:
        yield running


@pytest.fixture(scope="module")
def bystander(stack):
    """Another user in the account, holding one of everything (a virtual MFA
    device, a passkey and a hardware token among them)."""
    return seed_user(stack.iam, "bystander")


@pytest.fixture(scope="module")
def bob(stack):
    """bob, holding one of everything, quarantined by a RUNNING execution of
    this deployment that then waits out his 30-day grace period in
    WaitForDeleteAfter: the execution, and what its steps found (from its
    history). Stopped once the module is done."""
    seed_user(stack.iam, "bob")
    name = "bob-quarantine"
    arn = stack.start({"UserName": "bob", "GraceDays": 30}, name=name)
    try:
        wait_for_state(stack, arn, "WaitForDeleteAfter")
        found = {step["Stage"]: step["Output"] for step in lambda_steps(stack, arn) if step["Result"] == "Succeeded"}
        yield {"Arn": arn, "Name": name, "Target": found["GetUsername"],
               "Credentials": found["GetKeysCertificatesMfaAndCredentials"],
               "Permissions": found["GetGroupsAndPolicies"], "Quarantine": found["QuarantineUser"]}
    finally:
        # StopExecution ends a RUNNING execution (Step Functions API Reference,
        # StopExecution, "Stops an execution",
        # https://docs.aws.amazon.com/step-functions/latest/apireference/API_StopExecution.html).
        stack.sfn.stop_execution(executionArn=arn, error="TestsDone", cause="the module's tests are done")


@pytest.fixture(scope="module")
def offboarded(stack):
    """An offboarding of this deployment that has ended: SUCCEEDED."""
    seed_user(stack.iam, "offboarded-earlier")
    execution = stack.run({"UserName": "offboarded-earlier"}, name="offboarded-earlier")
    assert execution["status"] == "SUCCEEDED", (execution.get("error"), execution.get("cause"))
    return execution


# --- helpers ------------------------------------------------------------------


def expect_error(stack, stage: str, payload: dict, error_type: str) -> str:
    function_error, body = stack.invoke(stage, payload)
    assert function_error, f"{stage} succeeded: {body}"
    assert body["errorType"] == error_type, body
    return body["errorMessage"]


def function_calls(stack, stage: str) -> list[tuple[str, str]]:
    """(Service, Action) of every call in the emulator's log made with ``stage``'s access key."""
    return [(c["Service"], c["Action"]) for c in stack.calls() if c["AccessKeyId"] == access_key_for(stage)]


def expect_refused(stack, stage: str, payload: dict) -> tuple[str, list[tuple[str, str]]]:
    """Invokes ``stage`` directly: NotFromWorkflow, and the function made no
    call but the guard's Step Functions reads (no IAM call at all). Returns
    the message and those calls. The caller clears the call log first."""
    message = expect_error(stack, stage, payload, "NotFromWorkflow")
    assert "nothing was changed" in message, message
    calls = function_calls(stack, stage)
    assert [action for service, action in calls if service == "iam"] == [], calls
    assert set(calls) <= GUARD_READS, calls
    return message, calls


def calls_by(stack, stage: str | None = None) -> list[str]:
    return [c["Action"] for c in stack.calls()
            if c["AccessKeyId"] in STAGE_BY_KEY and (stage is None or STAGE_BY_KEY[c["AccessKeyId"]] == stage)]


def mutating_calls(stack) -> list[str]:
    """Every mutating IAM call in the emulator's log, whoever made it (the
    test's own boto3 client talks to moto in-process and is not logged)."""
    return [f"{STAGE_BY_KEY.get(c['AccessKeyId'], c['AccessKeyId'])}:{c['Action']}" for c in stack.calls()
            if c["Action"].startswith(MUTATING_PREFIXES)]


def snapshot(iam, name: str) -> dict:
    """Everything IAM holds for one user, in full."""
    user = iam.get_user(UserName=name)["User"]
    return {
        "user": {k: user.get(k) for k in ("UserId", "Arn", "Path", "CreateDate", "PermissionsBoundary")},
        "tags": sorted((t["Key"], t["Value"]) for t in iam.list_user_tags(UserName=name)["Tags"]),
        "login": _login(iam, name),
        "keys": sorted((k["AccessKeyId"], k["Status"]) for k in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]),
        "ssh": sorted((k["SSHPublicKeyId"], k["Status"]) for k in iam.list_ssh_public_keys(UserName=name)["SSHPublicKeys"]),
        "certs": sorted((c["CertificateId"], c["Status"])
                        for c in iam.list_signing_certificates(UserName=name)["Certificates"]),
        "creds": sorted((c["ServiceSpecificCredentialId"], c["ServiceName"], c["Status"])
                        for c in iam.list_service_specific_credentials(UserName=name)["ServiceSpecificCredentials"]),
        "mfa": sorted((d["SerialNumber"], str(d.get("EnableDate"))) for d in iam.list_mfa_devices(UserName=name)["MFADevices"]),
        "groups": sorted(g["GroupName"] for g in iam.list_groups_for_user(UserName=name)["Groups"]),
        "inline": sorted((p, json.dumps(iam.get_user_policy(UserName=name, PolicyName=p)["PolicyDocument"], sort_keys=True))
                         for p in iam.list_user_policies(UserName=name)["PolicyNames"]),
        "attached": sorted(p["PolicyArn"] for p in iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]),
    }


def _login(iam, name):
    try:
        profile = iam.get_login_profile(UserName=name)["LoginProfile"]
        return (str(profile["CreateDate"]), profile.get("PasswordResetRequired"))
    except iam.exceptions.NoSuchEntityException:
        return None


def virtual_devices(iam) -> list[tuple]:
    """Every virtual MFA device in the account, assigned or not, and to whom
    (ListVirtualMFADevices with AssignmentStatus Any,
    https://docs.aws.amazon.com/IAM/latest/APIReference/API_ListVirtualMFADevices.html)."""
    devices = iam.list_virtual_mfa_devices(AssignmentStatus="Any")["VirtualMFADevices"]
    return sorted((d["SerialNumber"], (d.get("User") or {}).get("UserName"), str(d.get("EnableDate"))) for d in devices)


class Unchanged:
    """Snapshots the given users and the account's virtual MFA devices;
    ``check()`` asserts all are exactly as they were. ``offboarding`` names
    a user being offboarded for real, whose own virtual devices may go."""

    def __init__(self, stack, *names: str, offboarding: str | None = None):
        self.iam, self.names = stack.iam, names
        self.skip = f":mfa/{offboarding}-phone-" if offboarding else None
        self.before = self.take()

    def take(self) -> dict:
        virtual = [d for d in virtual_devices(self.iam) if not (self.skip and self.skip in d[0])]
        return {"users": {name: snapshot(self.iam, name) for name in self.names}, "virtual": virtual}

    def check(self) -> None:
        assert self.take() == self.before


def events(stack, execution_arn: str, event_type: str) -> list[dict]:
    return [e for e in stack.history(execution_arn) if e["type"] == event_type]


def failed_lambda_errors(stack, execution_arn: str) -> list[str]:
    return [e["lambdaFunctionFailedEventDetails"]["error"] for e in events(stack, execution_arn, "LambdaFunctionFailed")]


def scheduled(stack, execution_arn: str, stage: str) -> int:
    return sum(1 for e in events(stack, execution_arn, "LambdaFunctionScheduled")
               if e["lambdaFunctionScheduledEventDetails"]["resource"].endswith(f":function:offboard-{stage}"))


def lambda_steps(stack, execution_arn: str) -> list[dict]:
    """Every Lambda task of an execution, in the order scheduled: its
    ``Stage``, exact ``Input``, ``Result`` (Succeeded, Failed, TimedOut or
    None while pending) with its ``Output`` or ``Error`` and ``Cause``.
    A result's ``previousEventId`` is its Started event, whose own is its
    Scheduled event (Step Functions API Reference, HistoryEvent:
    "previousEventId — The id of the previous event", with
    lambdaFunctionScheduledEventDetails.input, lambdaFunctionSucceededEventDetails.output,
    lambdaFunctionFailedEventDetails.error and .cause,
    https://docs.aws.amazon.com/step-functions/latest/apireference/API_HistoryEvent.html;
    the guard reads the history so too: crates/core/src/workflow.rs)."""
    history = stack.history(execution_arn)
    by_id = {event["id"]: event for event in history}
    steps: dict[int, dict] = {}
    for event in history:
        kind = event["type"]
        if kind == "LambdaFunctionScheduled":
            details = event["lambdaFunctionScheduledEventDetails"]
            steps[event["id"]] = {"Stage": details["resource"].rsplit(":function:offboard-", 1)[1],
                                  "Input": json.loads(details["input"]), "Result": None}
        elif kind in ("LambdaFunctionSucceeded", "LambdaFunctionFailed", "LambdaFunctionTimedOut"):
            step = steps[by_id[event["previousEventId"]]["previousEventId"]]
            step["Result"] = kind.removeprefix("LambdaFunction")
            if kind == "LambdaFunctionSucceeded":
                step["Output"] = json.loads(event["lambdaFunctionSucceededEventDetails"]["output"])
            else:
                details = event.get("lambdaFunctionFailedEventDetails") or event.get("lambdaFunctionTimedOutEventDetails") or {}
                step["Error"], step["Cause"] = details.get("error"), details.get("cause")
    return list(steps.values())


def wait_for_state(stack, execution_arn: str, state: str, timeout: float = 90.0) -> None:
    """Polls until the RUNNING execution has entered ``state``; fails at
    once if the execution ends first."""
    deadline = time.monotonic() + timeout
    while not any(e.get("stateEnteredEventDetails", {}).get("name") == state for e in stack.history(execution_arn)):
        execution = stack.sfn.describe_execution(executionArn=execution_arn)
        assert execution["status"] == "RUNNING", (state, execution["status"], execution.get("error"),
                                                  execution.get("cause"))
        assert time.monotonic() < deadline, f"{execution_arn} not in {state} within {timeout} s"
        time.sleep(0.1)


def still_waiting(stack, waiting: dict) -> bool:
    return stack.sfn.describe_execution(executionArn=waiting["Arn"])["status"] == "RUNNING"


def protect(iam, name: str) -> None:
    # IAM compares user tag keys without regard to case (IAM User Guide, "Tags
    # for AWS Identity and Access Management resources" > "Case sensitivity",
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/id_tags.html#case-sensitivity);
    # IAM and moto alike return the key as it was written, so GetUser shows
    # `Offboard:Protected` and the code must compare without case.
    iam.tag_user(UserName=name, Tags=[PROTECTION_TAG])


def workflow_payload(stage: str, waiting: dict) -> dict:
    """What the state machine sends ``stage`` for the user of ``waiting``
    (statemachine/src/offboard.asl.yaml, each task's Parameters), without
    its ExecutionId. With the waiting execution's id, GetUsername's and the
    two inventories' payloads are exactly steps it already ran, and
    QuarantineUser's the step it takes after the wait (CheckQuarantine)."""
    user, credentials = waiting["Target"]["User"], waiting["Credentials"]
    who = {"UserName": user["UserName"], "UserId": user["UserId"]}
    placed = {"Account": waiting["Target"]["Account"], "ExecutionName": waiting["Name"]}
    removable = {**{kind: credentials[kind] for kind in ("LoginProfile", "AccessKeys", "SSHPublicKeys",
                                                         "SigningCertificates", "ServiceSpecificCredentials")},
                 "MFADevices": []}
    return {
        "GetUsername": {"Input": {"UserName": user["UserName"], "GraceDays": 30}},
        "GetKeysCertificatesMfaAndCredentials": {**who, **placed},
        "GetGroupsAndPolicies": {**who, **placed},
        "DeleteKeysCertificatesMfaAndCredentials": {**who, "Credentials": removable, **placed},
        "DeleteGroupsAndPolicies": {**who, "Permissions": waiting["Permissions"], **placed},
        "DeleteIAMUserAndVerify": {
            "Target": waiting["Target"], "Round": 0, "EarlierRounds": [], "Quarantine": waiting["Quarantine"],
            "Removed": {"Credentials": removable, "MFADevices": [], "Permissions": waiting["Permissions"]},
            "Timings": {"GetKeysCertificatesMfaAndCredentials": credentials.get("DurationMs"),
                        "GetGroupsAndPolicies": waiting["Permissions"].get("DurationMs")},
            **placed},
        "QuarantineUser": {"Action": "Check", **who, "DeleteAfter": waiting["Target"]["DeleteAfter"], **placed},
        "OffboardBatch": {"Validate": {"UserNames": [user["UserName"]]}},
    }[stage]


def after_the_inventory(stack, change, *watched: str) -> dict:
    """Changes the world between an offboarding's inventory and its first
    removal: once GetGroupsAndPolicies has listed the attached policies
    (its last listing), the next GetUser served, which is
    DeleteKeysCertificatesMfaAndCredentials' re-check, first runs
    ``change()``; ``watched`` users are then snapshotted (``["unchanged"]``).
    The emulator runs a hook just before serving the call (EmulatorApp.on_next)."""
    armed: dict = {}

    def at_the_recheck():
        try:
            change()
            armed["unchanged"] = Unchanged(stack, *watched)
        except Exception as error:  # reported by the test, not lost in the emulator's thread
            armed["error"] = error
            raise

    stack.emulator.app.on_next("ListAttachedUserPolicies", lambda: stack.emulator.app.on_next("GetUser", at_the_recheck))
    return armed


def assert_refused_by_the_first_removal(stack, execution: dict, armed: dict, error: str) -> str:
    """The execution ran its whole inventory, then failed with ``error`` at
    DeleteKeysCertificatesMfaAndCredentials, whose only IAM call was its
    re-check (GetUser); no mutating IAM call was made. Returns the cause."""
    assert "error" not in armed and "unchanged" in armed, armed
    assert execution["status"] == "FAILED"
    assert execution["error"] == error, (execution.get("error"), execution.get("cause"))
    steps = lambda_steps(stack, execution["executionArn"])
    assert [(s["Stage"], s["Result"]) for s in steps] == [
        ("GetUsername", "Succeeded"), ("GetKeysCertificatesMfaAndCredentials", "Succeeded"),
        ("GetGroupsAndPolicies", "Succeeded"), ("DeleteKeysCertificatesMfaAndCredentials", "Failed")], steps
    assert steps[-1]["Error"] == error and steps[-1]["Cause"] == execution["cause"]
    assert [a for s, a in function_calls(stack, "DeleteKeysCertificatesMfaAndCredentials") if s == "iam"] == ["GetUser"]
    assert mutating_calls(stack) == []
    armed["unchanged"].check()
    return execution["cause"]


def delete_user(iam, made: dict) -> None:
    """Deletes a user seeded with a login profile, groups and policies only
    (IAM refuses DeleteUser while any remain, [API] DeleteUser; emulator.py)."""
    name = made["UserName"]
    iam.delete_login_profile(UserName=name)
    for group in made["Groups"]:
        iam.remove_user_from_group(GroupName=group, UserName=name)
    for policy in made["InlinePolicies"]:
        iam.delete_user_policy(UserName=name, PolicyName=policy)
    for arn in made["AttachedPolicies"]:
        iam.detach_user_policy(UserName=name, PolicyArn=arn)
    iam.delete_user(UserName=name)


def seed_without_credentials(iam, name: str) -> dict:
    """A user with a password, a group, an inline and an attached policy, and
    nothing else."""
    return seed_user(iam, name, access_keys=0, ssh_keys=0, certificates=0, services=(), virtual_devices=0,
                     passkeys=0, hardware_tokens=0, boundary=False)


# --- 1. only the workflow may act ------------------------------------------------------


@pytest.mark.parametrize("execution", EXECUTION_IDS)
@pytest.mark.parametrize("stage", sorted(FUNCTIONS))
def test_a_direct_invoke_is_refused_before_any_iam_call(stack, bystander, bob, offboarded, stage, execution):
    """The payload the workflow would send about bob, under no execution id,
    a made-up execution of this state machine, an ended (SUCCEEDED) one, or
    bob's own RUNNING quarantine, which waits and so has no pending step."""
    # A made-up execution does not exist: DescribeExecution answers ExecutionDoesNotExist
    # (Step Functions API Reference, DescribeExecution, Errors: "ExecutionDoesNotExist —
    # The specified execution does not exist",
    # https://docs.aws.amazon.com/step-functions/latest/apireference/API_DescribeExecution.html).
    made_up = stack.state_machine_arn.replace(":stateMachine:", ":execution:") + f":made-up-{uuid.uuid4()}"
    execution_id = {"none": None, "made-up": made_up, "ended": offboarded["executionArn"], "waiting": bob["Arn"]}[execution]
    payload = workflow_payload(stage, bob)
    if execution_id:
        payload["ExecutionId"] = execution_id
    unchanged = Unchanged(stack, "bob", "bystander")
    stack.clear_calls()

    message, calls = expect_refused(stack, stage, payload)

    expected = {"none": "names no ExecutionId", "made-up": made_up, "ended": "succeeded",
                "waiting": "no pending step"}[execution]
    assert expected.lower() in message.lower(), message
    if execution == "none":
        assert calls == [], "nothing to ask: refused at once"
    assert still_waiting(stack, bob)
    unchanged.check()


@pytest.mark.parametrize("stage", ["GetGroupsAndPolicies", "GetKeysCertificatesMfaAndCredentials"])
def test_reading_one_users_policies_or_credentials_is_refused(stack, bystander, bob, stage):
    """With bob's waiting execution: a crafted inventory request, and the very
    request the workflow sent that step before the wait (it has its result)."""
    user_id = bob["Target"]["User"]["UserId"]
    crafted = {"UserName": "bob", "UserId": user_id, "Account": ACCOUNT, "ExecutionName": "x",
               "ExecutionId": bob["Arn"]}
    replayed = [s["Input"] for s in lambda_steps(stack, bob["Arn"]) if s["Stage"] == stage]
    assert len(replayed) == 1 and replayed[0]["ExecutionId"] == bob["Arn"], replayed
    stack.clear_calls()

    for payload in (crafted, replayed[0]):
        message, _ = expect_refused(stack, stage, payload)
        assert "no pending step" in message, message

    assert not {"ListUserPolicies", "GetUserPolicy"} & set(calls_by(stack)), calls_by(stack)
    assert still_waiting(stack, bob)


def test_stripping_one_users_mfa_device_is_refused(stack, bystander, bob):
    """The Map's MFA task for bob's virtual device alone, under bob's own
    RUNNING quarantine, which keeps MFA devices and is waiting."""
    device = next(d for d in bob["Credentials"]["MFADevices"] if d["HandledAs"] == "Virtual")
    payload = {"UserName": "bob", "UserId": bob["Target"]["User"]["UserId"], "MFADevice": device,
               "HandledAs": "Virtual", "RetryCount": 0, "Account": ACCOUNT, "ExecutionName": bob["Name"],
               "ExecutionId": bob["Arn"]}
    unchanged = Unchanged(stack, "bob", "bystander")
    stack.clear_calls()

    expect_refused(stack, "DeleteKeysCertificatesMfaAndCredentials", payload)

    assert device["SerialNumber"] in [d["SerialNumber"] for d in stack.iam.list_mfa_devices(UserName="bob")["MFADevices"]]
    assert mutating_calls(stack) == []
    assert still_waiting(stack, bob)
    unchanged.check()


def test_detaching_the_quarantine_guardrail_is_refused(stack, bystander, bob):
    """DeleteGroupsAndPolicies listing only AWSDenyAll for bob while his
    quarantine waits: the guardrail stays, his credentials stay inactive."""
    payload = {"UserName": "bob", "UserId": bob["Target"]["User"]["UserId"],
               "Permissions": {"Groups": [], "InlinePolicies": [],
                               "AttachedPolicies": [{"PolicyName": "AWSDenyAll", "PolicyArn": DENY_ALL}]},
               "Account": ACCOUNT, "ExecutionName": bob["Name"], "ExecutionId": bob["Arn"]}
    unchanged = Unchanged(stack, "bob", "bystander")
    stack.clear_calls()

    expect_refused(stack, "DeleteGroupsAndPolicies", payload)

    held = snapshot(stack.iam, "bob")
    assert DENY_ALL in held["attached"]
    statuses = {status for kind in ("keys", "ssh", "certs") for _, status in held[kind]}
    statuses |= {status for *_, status in held["creds"]}
    assert statuses == {"Inactive"}, held
    assert mutating_calls(stack) == []
    assert still_waiting(stack, bob)
    unchanged.check()


def test_replaying_a_finished_step_of_an_ended_execution_is_refused(stack, bystander, offboarded):
    """DeleteGroupsAndPolicies' payload, verbatim from the SUCCEEDED
    execution's history, sent again once the user is back under the same
    name with the same groups and policies."""
    name = "offboarded-earlier"
    steps = [s for s in lambda_steps(stack, offboarded["executionArn"]) if s["Stage"] == "DeleteGroupsAndPolicies"]
    assert steps and steps[-1]["Result"] == "Succeeded", steps
    payload = steps[-1]["Input"]
    made = seed_user(stack.iam, name)
    assert {g["GroupName"] for g in payload["Permissions"]["Groups"]} == set(made["Groups"]), payload
    unchanged = Unchanged(stack, name, "bystander")
    stack.clear_calls()

    message, _ = expect_refused(stack, "DeleteGroupsAndPolicies", payload)

    assert "succeeded" in message.lower(), message
    assert mutating_calls(stack) == []
    unchanged.check()


def test_a_user_tagged_protected_after_the_inventory_is_refused_by_the_first_removal(stack, bystander):
    name = "tagged-mid-run"
    seed_user(stack.iam, name)
    armed = after_the_inventory(stack, lambda: protect(stack.iam, name), name, "bystander")

    execution = stack.run({"UserName": name}, name=name)

    cause = assert_refused_by_the_first_removal(stack, execution, armed, "ProtectedUser")
    assert "Offboard:Protected" in cause, cause


def test_a_user_recreated_after_the_inventory_is_refused_by_the_first_removal(stack, bystander):
    """The inventory is the old user's; the new one under the same name has a
    password, groups and policies of the same names: nothing of it changes."""
    name = "reborn"
    old = seed_without_credentials(stack.iam, name)
    old_id = stack.iam.get_user(UserName=name)["User"]["UserId"]
    new: dict = {}

    def recreate():
        delete_user(stack.iam, old)
        # The new user under the same name has a new unique id (IAM User Guide,
        # "IAM identifiers" > "Unique identifiers": a user deleted and recreated
        # under the same name gets a different id,
        # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html#identifiers-unique-ids;
        # the emulator draws a fresh AIDA... id for every user it creates).
        seed_user(stack.iam, name)
        new["id"] = stack.iam.get_user(UserName=name)["User"]["UserId"]

    armed = after_the_inventory(stack, recreate, name, "bystander")

    execution = stack.run({"UserName": name}, name=name)

    # Someone holds the name, and is not the target: UserReplaced, not UserNotFound.
    cause = assert_refused_by_the_first_removal(stack, execution, armed, "UserReplaced")
    assert new["id"] != old_id and old_id in cause and new["id"] in cause, cause


def test_a_user_deleted_after_the_inventory_is_refused_by_the_first_removal(stack, bystander):
    name = "deleted-mid-run"
    made = seed_without_credentials(stack.iam, name)
    armed = after_the_inventory(stack, lambda: delete_user(stack.iam, made), "bystander")

    execution = stack.run({"UserName": name}, name=name)

    cause = assert_refused_by_the_first_removal(stack, execution, armed, "UserNotFound")
    assert "no longer exists" in cause, cause

# --- 2. protection through the state machine ---------------------------------------


def test_state_machine_refuses_a_user_tagged_with_a_mixed_case_protection_key(stack, bystander):
    name = "tagged-mixed-case"
    seed_user(stack.iam, name, tags={"team": "payments", PROTECTION_TAG["Key"]: PROTECTION_TAG["Value"]})
    unchanged = Unchanged(stack, name, "bystander")

    execution = stack.run({"UserName": name}, name=name)

    assert execution["status"] == "FAILED"
    assert execution["error"] == "ProtectedUser", (execution.get("error"), execution.get("cause"))
    assert "Offboard:Protected" in execution["cause"]
    assert mutating_calls(stack) == []
    assert set(STAGE_BY_KEY[c["AccessKeyId"]] for c in stack.calls() if c["AccessKeyId"] in STAGE_BY_KEY) == {"GetUsername"}
    unchanged.check()


def test_protected_names_and_path_prefixes_from_the_environment(stack, bystander):
    """OFFBOARD_PROTECTED_USER_NAMES=ALICE protects alice (IAM user names are
    unique without regard to case: IAM User Guide, "IAM object quotas and
    names", https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html#reference_iam-quotas-names);
    OFFBOARD_PROTECTED_PATH_PREFIXES=/breakglass/ protects /breakglass/ops/.
    Refused by the state machine at GetUsername, and by the first removal's
    re-check for a user moved under the prefix after the inventory."""
    seed_user(stack.iam, "alice")
    seed_user(stack.iam, "oncall", path="/breakglass/ops/")
    seed_user(stack.iam, "mover", path="/ops/")
    unchanged = Unchanged(stack, "alice", "oncall", "bystander")
    try:
        stack.restart_lambdas(env={"OFFBOARD_PROTECTED_USER_NAMES": "breakglass, ALICE",
                                   "OFFBOARD_PROTECTED_PATH_PREFIXES": "/breakglass/"})
        stack.clear_calls()
        for name, why in (("alice", "OFFBOARD_PROTECTED_USER_NAMES"), ("oncall", "OFFBOARD_PROTECTED_PATH_PREFIXES")):
            execution = stack.run({"UserName": name}, name=f"{name}-configured")
            assert execution["status"] == "FAILED"
            assert execution["error"] == "ProtectedUser", (execution.get("error"), execution.get("cause"))
            assert why in execution["cause"], execution["cause"]
        assert mutating_calls(stack) == []
        # UpdateUser NewPath moves a user (IAM API Reference, UpdateUser: "Updates the
        # name and/or the path of the specified IAM user"; "NewPath — New path for the
        # IAM user", https://docs.aws.amazon.com/IAM/latest/APIReference/API_UpdateUser.html).
        armed = after_the_inventory(stack, lambda: stack.iam.update_user(UserName="mover", NewPath="/breakglass/ops/"),
                                    "mover", "bystander")
        execution = stack.run({"UserName": "mover"}, name="mover-configured")
        cause = assert_refused_by_the_first_removal(stack, execution, armed, "ProtectedUser")
        assert "OFFBOARD_PROTECTED_PATH_PREFIXES" in cause, cause
    finally:
        stack.restart_lambdas(env={})
    unchanged.check()


# --- 3. a bad configuration is refused at init ----------------------------------------


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


BAD_CONFIGURATIONS = {
    # An IAM path always starts and ends with / (IAM API Reference, User:
    # Path pattern `(\\u002F)|(\\u002F[\\u0021-\\u007E]+\\u002F)`,
    # https://docs.aws.amazon.com/IAM/latest/APIReference/API_User.html), so
    # `admin` would protect nobody.
    "path prefix": ({"OFFBOARD_PROTECTED_PATH_PREFIXES": "admin"},
                    ["must start and end with /", "OFFBOARD_PROTECTED_PATH_PREFIXES", '"admin"']),
    # A deployment that believes its IAM calls are capped must not run uncapped.
    "budget rate": ({"OFFBOARD_IAM_CALLS_PER_SECOND": "ten", "OFFBOARD_IAM_BUDGET_TABLE": "budget"},
                    ["OFFBOARD_IAM_CALLS_PER_SECOND", '"ten"', "calls per second"]),
    "budget table": ({"OFFBOARD_IAM_CALLS_PER_SECOND": "5"}, ["OFFBOARD_IAM_BUDGET_TABLE", "names no table"]),
    # A function that knows no state machine of its deployment would admit nothing, or,
    # given anything but a state machine ARN, protect nothing (crates/core/src/workflow.rs).
    "state machines": ({"OFFBOARD_STATE_MACHINE_ARNS": "offboard"},
                       ["OFFBOARD_STATE_MACHINE_ARNS", '["offboard"]', "state machine ARNs"]),
}


@pytest.mark.parametrize("binary", sorted(FUNCTIONS.values()))
@pytest.mark.parametrize("configuration", sorted(BAD_CONFIGURATIONS))
def test_a_bad_configuration_refuses_to_start(binary, configuration):
    """The process must stop at init, naming what is wrong, before it asks the
    Runtime API for an invocation (nothing listens on the port)."""
    variables, expected = BAD_CONFIGURATIONS[configuration]
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{unused_port()}",
        "AWS_LAMBDA_FUNCTION_NAME": "offboard-misconfigured",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "AKIAMISCONFIGUREDXXX",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_EC2_METADATA_DISABLED": "true",
        **variables,
    }
    started = time.monotonic()
    finished = subprocess.run([str(BIN_DIR / binary)], env=env, capture_output=True, timeout=10)
    elapsed = time.monotonic() - started
    output = (finished.stdout + finished.stderr).decode("utf-8", "replace")
    assert finished.returncode != 0, output
    for text in expected:
        assert text in output.replace('\\"', '"'), output
    assert elapsed < 5, elapsed


# --- 4. Lambda's own failures ------------------------------------------------------


def test_lambda_service_errors_are_retried_and_the_execution_succeeds(stack, bystander):
    # Step Functions reports a function timeout or out-of-memory as
    # Lambda.Unknown and Lambda's transient 500s as Lambda.<Exception>, e.g.
    # Lambda.ClientExecutionTimeoutException (AWS Step Functions Developer
    # Guide, "Handle Lambda service exceptions",
    # https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html;
    # "Handling errors in Step Functions workflows",
    # https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html).
    # The Lambda host injects them as function errors (LambdaHost.inject_errors):
    # a function-ARN Task reports those under their errorType, as Step Functions
    # reports an Invoke API failure under Lambda.<code> (see the next test).
    name = "lambda-hiccups"
    seed_user(stack.iam, name)
    before = Unchanged(stack, "bystander", offboarding=name)
    stack.lambdas.inject_errors("GetGroupsAndPolicies", ["Lambda.ClientExecutionTimeoutException"])
    stack.lambdas.inject_errors("DeleteGroupsAndPolicies", ["Lambda.Unknown"])

    started = time.monotonic()
    execution = stack.run({"UserName": name}, name=name)
    elapsed = time.monotonic() - started

    assert execution["status"] == "SUCCEEDED", (execution.get("error"), execution.get("cause"))
    assert stack.lambdas.injected == [("GetGroupsAndPolicies", "Lambda.ClientExecutionTimeoutException"),
                                      ("DeleteGroupsAndPolicies", "Lambda.Unknown")]
    arn = execution["executionArn"]
    assert failed_lambda_errors(stack, arn) == ["Lambda.ClientExecutionTimeoutException", "Lambda.Unknown"]
    assert scheduled(stack, arn, "GetGroupsAndPolicies") == 2 and scheduled(stack, arn, "DeleteGroupsAndPolicies") == 2
    # Each retrier's first interval is 2 s with full jitter: at most 2 s per retry.
    assert elapsed < 60, elapsed
    record = json.loads(execution["output"])
    assert record["UserDeletion"]["Outcome"] == "Removed" and record["Rounds"] == 0, record["UserDeletion"]
    assert leftovers(stack.iam, name) == {}
    # The call-log filter the other tests rely on does see the functions' changes.
    assert {"DeleteGroupsAndPolicies:RemoveUserFromGroup", "DeleteIAMUserAndVerify:DeleteUser"} <= set(mutating_calls(stack))
    before.check()


def test_lambda_concurrency_exhausted_is_retried_and_every_execution_succeeds(stack):
    """Each function may run one invocation at a time here (as with reserved
    concurrency 1), and three offboardings start at once: the Invoke API
    answers 429 TooManyRequestsException, which Step Functions reports as
    Lambda.TooManyRequestsException ("When Lambda hits the maximum number of
    invocations, the error is Lambda.TooManyRequestsException", Step Functions
    developer guide, "Handle Lambda service exceptions",
    https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html),
    and the state machine's retrier waits its turn instead of failing."""
    names = [f"crowded{i}" for i in range(3)]
    for name in names:
        seed_user(stack.iam, name, access_keys=1, ssh_keys=0, certificates=0, services=(), virtual_devices=1,
                  passkeys=1, hardware_tokens=0, groups=1, inline_policies=0, attached_policies=0)
    concurrency = stack.max_concurrency
    stack.restart_lambdas(max_concurrency=1)
    try:
        arns = [stack.start({"UserName": name}, name=name) for name in names]
        results = [stack.wait(arn, timeout=600) for arn in arns]
        idle = [function.outstanding for function in stack.lambdas.functions.values()]
    finally:
        stack.restart_lambdas(max_concurrency=concurrency)
    assert [r["status"] for r in results] == ["SUCCEEDED"] * 3, [(r.get("error"), r.get("cause")) for r in results]
    errors = [error for arn in arns for error in failed_lambda_errors(stack, arn)]
    assert errors and set(errors) == {"Lambda.TooManyRequestsException"}, errors
    assert {name: leftovers(stack.iam, name) for name in names} == {name: {} for name in names}
    assert idle == [0] * len(idle), "every invocation the host counted has ended"


def test_a_function_error_that_is_not_retried_fails_on_the_first_attempt(stack, bystander):
    name = "denied-once"
    seed_user(stack.iam, name)
    stack.lambdas.inject_errors("DeleteGroupsAndPolicies", ["AccessDenied"])

    execution = stack.run({"UserName": name}, name=name)

    assert execution["status"] == "FAILED"
    assert execution["error"] == "AccessDenied", (execution.get("error"), execution.get("cause"))
    assert "injected by the local Lambda host" in execution["cause"]
    arn = execution["executionArn"]
    assert failed_lambda_errors(stack, arn) == ["AccessDenied"]
    assert scheduled(stack, arn, "DeleteGroupsAndPolicies") == 1, "no retry"
    assert [stage for stage, _ in stack.lambdas.invocations].count("DeleteGroupsAndPolicies") == 1
    assert "DeleteIAMUserAndVerify" not in [stage for stage, _ in stack.lambdas.invocations]
    assert calls_by(stack, "DeleteGroupsAndPolicies") == [] and "DeleteUser" not in calls_by(stack)
    stack.iam.get_user(UserName=name)  # still there
    assert stack.iam.list_groups_for_user(UserName=name)["Groups"], "its permissions were not touched"


# --- 5. IAM's real MFA denial messages -----------------------------------------------


def passkey_only_user(iam, name: str) -> str:
    seed_user(iam, name, virtual_devices=0, passkeys=1, hardware_tokens=0)
    return passkey_serial(name)


def test_iams_mfa_required_message_is_named_and_not_retried(stack, bystander):
    # The emulator's MfaRequiredForDeactivate fault answers DeactivateMFADevice
    # with AccessDenied and IAM's own message, verbatim from a real response
    # (docs/DESIGN.md, "Real AWS is the reference, not the emulator"):
    # "To complete this action, please ensure that you are authenticated with
    # an MFA device that is enabled for this user."
    name = "passkey-needs-mfa"
    serial = passkey_only_user(stack.iam, name)
    stack.faults(MfaRequiredForDeactivate=True)

    execution = stack.run({"UserName": name}, name=name)

    assert execution["status"] == "FAILED"
    assert execution["error"] == "MfaAuthenticationRequired", (execution.get("error"), execution.get("cause"))
    assert IAM_MFA_REQUIRED in execution["cause"] and MFA_SESSION_HINT in execution["cause"], execution["cause"]
    actions = calls_by(stack)
    assert actions.count("DeactivateMFADevice") == 1, "named, not retried"
    assert "DeleteUser" not in actions
    assert [d["SerialNumber"] for d in stack.iam.list_mfa_devices(UserName=name)["MFADevices"]] == [serial]


def test_a_policy_deny_of_deactivation_is_access_denied_pointing_to_an_mfa_session(stack, bystander):
    # A policy deny comes back in IAM's generic form, which never says why
    # (real response quoted in docs/DESIGN.md, "Real AWS is the reference":
    # "User: arn:aws:iam::123456789012:user/ops is not authorized to perform:
    # iam:DeactivateMFADevice on resource: arn:aws:iam::123456789012:user/alice
    # with an explicit deny in an identity-based policy"; IAM User Guide,
    # "Troubleshoot access denied error messages",
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html).
    # The emulator's PolicyDenyActions fault answers the listed actions so.
    name = "passkey-policy-denied"
    serial = passkey_only_user(stack.iam, name)
    stack.faults(PolicyDenyActions=["DeactivateMFADevice"])

    execution = stack.run({"UserName": name}, name=name)

    assert execution["status"] == "FAILED"
    assert execution["error"] == "AccessDenied", (execution.get("error"), execution.get("cause"))
    assert "is not authorized to perform: iam:DeactivateMFADevice" in execution["cause"], execution["cause"]
    assert MFA_SESSION_HINT in execution["cause"], execution["cause"]
    actions = calls_by(stack)
    assert actions.count("DeactivateMFADevice") == 1, "not retried"
    assert "DeleteUser" not in actions
    assert [d["SerialNumber"] for d in stack.iam.list_mfa_devices(UserName=name)["MFADevices"]] == [serial]


def test_a_policy_deny_of_a_non_mfa_action_does_not_mention_mfa(stack, bystander):
    # Same generic deny (sources as above), on DeleteAccessKey, for a user
    # whose name contains "mfa": the hint depends on the action, not on text.
    name = "mfa-test"
    made = seed_user(stack.iam, name)
    stack.faults(PolicyDenyActions=["DeleteAccessKey"])

    execution = stack.run({"UserName": name}, name=name)

    assert execution["status"] == "FAILED"
    assert execution["error"] == "AccessDenied", (execution.get("error"), execution.get("cause"))
    assert "is not authorized to perform: iam:DeleteAccessKey" in execution["cause"], execution["cause"]
    assert MFA_SESSION_HINT not in execution["cause"] and "MultiFactorAuthPresent" not in execution["cause"], \
        execution["cause"]
    actions = calls_by(stack)
    # The stage attempts every key even after a failure, each once: not retried.
    assert actions.count("DeleteAccessKey") == len(made["AccessKeys"]), actions
    assert "DeactivateMFADevice" not in actions and "DeleteUser" not in actions
    assert len(stack.iam.list_mfa_devices(UserName=name)["MFADevices"]) == len(made["MFADevices"])
