"""What real AWS does that the happy path never shows, run against the local
stack: direct ``lambda:Invoke`` of each mutating function (which skips
GetUsername), protection compared without case, a bad configuration refused
at init, Lambda's own failures retried by the state machine, and IAM's real
MFA denial messages.

Every emulator behaviour a test relies on names its source in a comment: an
AWS documentation page, or a real response quoted in DESIGN.md ("Real AWS is
the reference, not the emulator")."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
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
# from a real response (DESIGN.md, "Real AWS is the reference, not the emulator").
IAM_MFA_REQUIRED = ("To complete this action, please ensure that you are authenticated with an MFA device that "
                    "is enabled for this user.")


@pytest.fixture(scope="module")
def stack():
    with Stack(instances=2) as running:
        yield running


@pytest.fixture(scope="module")
def bystander(stack):
    """Another user in the account, holding one of everything (a virtual MFA
    device, a passkey and a hardware token among them)."""
    return seed_user(stack.iam, "bystander")


# --- helpers ------------------------------------------------------------------


def expect_error(stack, stage: str, payload: dict, error_type: str) -> str:
    function_error, body = stack.invoke(stage, payload)
    assert function_error, f"{stage} succeeded: {body}"
    assert body["errorType"] == error_type, body
    return body["errorMessage"]


def expect_ok(stack, stage: str, payload: dict) -> dict:
    function_error, body = stack.invoke(stage, payload)
    assert function_error is None, f"{stage} failed: {body}"
    return body


def inventories(stack, name: str) -> dict:
    """What the read stages report for ``name`` (read-only calls)."""
    return {
        "Target": expect_ok(stack, "GetUsername", {"UserName": name}),
        "Credentials": expect_ok(stack, "GetKeysCertificatesMfaAndCredentials", {"UserName": name}),
        "Permissions": expect_ok(stack, "GetGroupsAndPolicies", {"UserName": name}),
    }


#: The four request shapes of the mutating functions, built from the read stages' output.
MUTATING_REQUESTS = ("credentials", "mfa-device", "permissions", "user")


def mutating_request(kind: str, found: dict, user_id: str | None = None) -> tuple[str, dict]:
    user = found["Target"]["User"]
    name, user_id = user["UserName"], user_id or user["UserId"]
    if kind == "credentials":
        return "DeleteKeysCertificatesMfaAndCredentials", {
            "UserName": name, "UserId": user_id, "Credentials": found["Credentials"]}
    if kind == "mfa-device":
        # The user's own virtual device: the path that would also DeleteVirtualMFADevice.
        device = next(d for d in found["Credentials"]["MFADevices"] if d["HandledAs"] == "Virtual")
        return "DeleteKeysCertificatesMfaAndCredentials", {
            "UserName": name, "UserId": user_id, "MFADevice": device, "HandledAs": "Virtual", "RetryCount": 0}
    if kind == "permissions":
        return "DeleteGroupsAndPolicies", {"UserName": name, "UserId": user_id, "Permissions": found["Permissions"]}
    if kind == "user":
        target = {**found["Target"], "User": {**user, "UserId": user_id}}
        return "DeleteIAMUserAndVerify", {"Target": target, "Removed": {
            "Credentials": found["Credentials"], "MFADevices": [], "Permissions": found["Permissions"]}}
    raise ValueError(kind)


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


def protect(iam, name: str) -> None:
    # IAM compares user tag keys without regard to case (IAM User Guide, "Tags
    # for AWS Identity and Access Management resources" > "Case sensitivity",
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/id_tags.html#case-sensitivity);
    # IAM and moto alike return the key as it was written, so GetUser shows
    # `Offboard:Protected` and the code must compare without case.
    iam.tag_user(UserName=name, Tags=[PROTECTION_TAG])


# --- 1. direct lambda:Invoke of every mutating function -------------------------------


@pytest.mark.parametrize("kind", MUTATING_REQUESTS)
def test_direct_invoke_on_a_user_tagged_mixed_case_protected_changes_nothing(stack, bystander, kind):
    name = f"guarded-{kind}"
    seed_user(stack.iam, name)
    # Resolved while still unprotected: the request's own copy of the user
    # claims no protection, so only a fresh GetUser can refuse it.
    found = inventories(stack, name)
    protect(stack.iam, name)
    stage, request = mutating_request(kind, found)
    unchanged = Unchanged(stack, name, "bystander")
    stack.clear_calls()

    message = expect_error(stack, stage, request, "ProtectedUser")

    assert "Offboard:Protected" in message, message
    assert mutating_calls(stack) == []
    assert "GetUser" in calls_by(stack, stage), "the stage re-read the user before acting"
    unchanged.check()


@pytest.mark.parametrize("kind", MUTATING_REQUESTS)
def test_direct_invoke_with_the_id_of_a_deleted_and_recreated_user_changes_nothing(stack, bystander, kind):
    name = f"reborn-{kind}"
    stack.iam.create_user(UserName=name)
    old = expect_ok(stack, "GetUsername", {"UserName": name})["User"]["UserId"]
    stack.iam.delete_user(UserName=name)
    # The new user under the same name has a new unique id (IAM User Guide,
    # "IAM identifiers" > "Unique identifiers": a user deleted and recreated
    # under the same name gets a different id,
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html#identifiers-unique-ids;
    # the emulator draws a fresh AIDA... id for every user it creates).
    seed_user(stack.iam, name)
    found = inventories(stack, name)
    assert found["Target"]["User"]["UserId"] != old
    # The request lists the new user's real items, under the old user's id.
    stage, request = mutating_request(kind, found, user_id=old)
    unchanged = Unchanged(stack, name, "bystander")
    stack.clear_calls()

    message = expect_error(stack, stage, request, "UserNotFound")

    assert old in message and found["Target"]["User"]["UserId"] in message, message
    assert mutating_calls(stack) == []
    assert "GetUser" in calls_by(stack, stage)
    unchanged.check()


def test_direct_invoke_after_the_user_is_gone(stack, bystander):
    """No user: the removal stages refuse (UserNotFound), the last stage
    records the deletion as already done; nothing else is touched."""
    name = "vanished"
    stack.iam.create_user(UserName=name)
    stack.iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}))
    found = inventories(stack, name)
    stack.iam.delete_user_policy(UserName=name, PolicyName="p")
    stack.iam.delete_user(UserName=name)
    unchanged = Unchanged(stack, "bystander")
    stack.clear_calls()

    expect_error(stack, *mutating_request("permissions", found), "UserNotFound")
    expect_error(stack, "DeleteKeysCertificatesMfaAndCredentials",
                 mutating_request("credentials", found)[1], "UserNotFound")
    record = expect_ok(stack, *mutating_request("user", found))

    assert record["UserDeletion"]["Outcome"] == "AlreadyAbsent", record
    assert mutating_calls(stack) == []
    unchanged.check()


def unassigned_virtual_device(iam, name: str) -> str:
    # A virtual device created but never enabled belongs to no user
    # (CreateVirtualMFADevice, then EnableMFADevice assigns it:
    # https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateVirtualMFADevice.html).
    return iam.create_virtual_mfa_device(VirtualMFADeviceName=name)["VirtualMFADevice"]["SerialNumber"]


@pytest.mark.parametrize("foreign", ["bystanders-virtual", "unassigned-virtual", "bystanders-passkey"])
def test_direct_invoke_of_the_mfa_task_with_a_serial_the_user_does_not_hold(stack, bystander, foreign):
    name = f"holder-{foreign}"
    seed_user(stack.iam, name)
    user_id = stack.iam.get_user(UserName=name)["User"]["UserId"]
    serial, handled_as = {
        "bystanders-virtual": lambda: (bystander["MFADevices"][0], "Virtual"),
        "unassigned-virtual": lambda: (unassigned_virtual_device(stack.iam, f"spare-{name}"), "Virtual"),
        "bystanders-passkey": lambda: (passkey_serial("bystander"), "NonVirtual"),
    }[foreign]()
    assert serial in [d[0] for d in virtual_devices(stack.iam)] or handled_as == "NonVirtual"
    unchanged = Unchanged(stack, name, "bystander")
    stack.clear_calls()

    message = expect_error(stack, "DeleteKeysCertificatesMfaAndCredentials", {
        "UserName": name, "UserId": user_id,
        "MFADevice": {"SerialNumber": serial, "EnableDate": None, "HandledAs": handled_as},
        "HandledAs": handled_as, "RetryCount": 0}, "InvalidInput")

    assert serial in message, message
    assert mutating_calls(stack) == []
    actions = calls_by(stack, "DeleteKeysCertificatesMfaAndCredentials")
    assert "GetUser" in actions and "ListMFADevices" in actions, actions
    unchanged.check()


def test_a_serial_no_longer_held_on_a_retry_is_recorded_never_deleted(stack, bystander):
    """On the Map's retry (RetryCount > 0) a serial the user no longer holds
    was most likely deactivated by the earlier attempt: recorded as already
    absent, and still never deactivated or deleted (it may be anyone's)."""
    name = "retried-holder"
    seed_user(stack.iam, name)
    user_id = stack.iam.get_user(UserName=name)["User"]["UserId"]
    spare = unassigned_virtual_device(stack.iam, "spare-retried")
    unchanged = Unchanged(stack, name, "bystander")
    stack.clear_calls()

    for serial in (spare, bystander["MFADevices"][0]):
        device = expect_ok(stack, "DeleteKeysCertificatesMfaAndCredentials", {
            "UserName": name, "UserId": user_id,
            "MFADevice": {"SerialNumber": serial, "EnableDate": None, "HandledAs": "Virtual"},
            "HandledAs": "Virtual", "RetryCount": 1})
        assert device["SerialNumber"] == serial and device["Deactivation"] == "AlreadyAbsent", device
        assert device.get("VirtualDeviceDeletion") is None, device

    assert mutating_calls(stack) == []
    unchanged.check()


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
    Refused by the state machine and by every mutating function invoked directly."""
    seed_user(stack.iam, "alice")
    seed_user(stack.iam, "oncall", path="/breakglass/ops/")
    found = {name: inventories(stack, name) for name in ("alice", "oncall")}  # before the protection is configured
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
            for kind in MUTATING_REQUESTS:
                message = expect_error(stack, *mutating_request(kind, found[name]), "ProtectedUser")
                assert why in message, (kind, message)
        assert mutating_calls(stack) == []
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
    # (DESIGN.md, "Real AWS is the reference, not the emulator"):
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
    # (real response quoted in DESIGN.md, "Real AWS is the reference":
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
