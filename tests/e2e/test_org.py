"""Org-wide offboarding end to end (issue 12): one execution of the real
statemachine/offboard.asl.json offboards a user from several accounts, one child
execution of the same state machine per account, every stage of a child working in its
account with the session of its own stage's target role. All binaries behind the local
Lambda host, IAM and Organizations from moto behind the strict emulator.

What the local stack does here, and where it comes from:
- moto keeps IAM per account and maps the credentials STS AssumeRole returns to the role's
  account (docs.getmoto.org, "Multi-Account support"; moto/sts/models.py assume_role); the
  emulator's call log names the account each call acted in (tests/emulator/emulator.py).
- AssumeRole of a role that does not exist answers AccessDenied (HTTP 403) as real STS does;
  stock moto issues credentials for any role ARN (cited in tests/emulator/emulator.py).
- moto's Organizations: ListAccounts/ListAccountsForParent return State and Status, and
  CloseAccount leaves the account SUSPENDED (moto/organizations/models.py); real accounts
  pass through PENDING_CLOSURE first (Organizations API reference, Account: State).
- startExecution.sync:2 and a failed child's Cause (its DescribeExecution, the child's own
  Error in it): tests/emulator/sfn_integration.py, cited there.
The evidence is each account's IAM state, each child's own outcome and the call log, not
only the parent's status."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "emulator"))

from cli import run_offboard  # noqa: E402
from lambda_host import FUNCTIONS, REGION, access_key_for  # noqa: E402
from seed import leftovers, seed_user  # noqa: E402
from stack import ACCOUNT, TARGET_ROLE_NAME, Stack  # noqa: E402

STAGE_BY_KEY = {access_key_for(stage): stage for stage in FUNCTIONS}
A, B, C, D, E = "111111111111", "222222222222", "333333333333", "444444444444", "555555555555"
ONE_OF_EACH = dict(access_keys=1, ssh_keys=1, certificates=1, services=("bedrock.amazonaws.com",), virtual_devices=1,
                   passkeys=1, hardware_tokens=1, groups=1, inline_policies=1, attached_policies=1, boundary=False)
MUTATING_PREFIXES = ("Delete", "Deactivate", "Remove", "Detach", "Update", "Put", "Create", "Attach", "Tag")


@pytest.fixture(scope="module")
def stack():
    with Stack(instances=2, env={"OFFBOARD_TARGET_ROLE_NAME": TARGET_ROLE_NAME}) as running:
        for account in (A, B, C, D):
            running.deploy_target_roles(account)
        yield running


def outcomes(output: dict) -> dict[str, str]:
    return {entry["Account"]: entry["Outcome"] for entry in output["Accounts"]}


def child(stack, entry: dict) -> dict:
    return stack.sfn.describe_execution(executionArn=entry["ExecutionArn"])


def iam_calls(stack) -> list[dict]:
    return [c for c in stack.calls() if c["Service"] == "iam"]


def test_one_execution_offboards_the_user_from_each_listed_account_and_an_account_without_it_is_not_present(stack):
    made = {account: seed_user(stack.iam_in(account), "alice", **ONE_OF_EACH) for account in (A, B)}
    bystander = seed_user(stack.iam_in(D), "alice", **ONE_OF_EACH)  # same name, account not listed

    execution = stack.run({"UserName": "alice", "Accounts": [A, B, C], "Context": {"Ticket": "HR-12"}},
                          name="alice-everywhere")

    assert execution["status"] == "SUCCEEDED", execution
    output = json.loads(execution["output"])
    assert outcomes(output) == {A: "Offboarded", B: "Offboarded", C: "NotPresent"}
    for account in (A, B):
        assert leftovers(stack.iam_in(account), "alice") == {}, account
        [entry] = [e for e in output["Accounts"] if e["Account"] == account]
        assert child(stack, entry)["status"] == "SUCCEEDED"
        assert child(stack, entry)["name"] == f"{account}-alice-everywhere"
        key = entry["RecordUri"].removeprefix("s3://offboard-audit-records/")
        assert key == f"records/{account}/alice/{account}-alice-everywhere/record.json"
        record = stack.record(key)
        assert record["User"]["Arn"] == f"arn:aws:iam::{account}:user/alice"
        assert record["Context"] == {"Ticket": "HR-12"}
        assert {k["AccessKeyId"] for k in record["Items"]["AccessKeys"]} == set(made[account]["AccessKeys"])
    [absent] = [e for e in output["Accounts"] if e["Account"] == C]
    assert child(stack, absent)["status"] == "FAILED" and child(stack, absent)["error"] == "UserNotFound"
    # The account not listed keeps its own alice, whole.
    assert stack.iam_in(D).get_user(UserName="alice")["User"]["Arn"] == f"arn:aws:iam::{D}:user/alice"
    assert stack.iam_in(D).list_access_keys(UserName="alice")["AccessKeyMetadata"][0]["AccessKeyId"] == bystander["AccessKeys"][0]

    calls = iam_calls(stack)
    # Every IAM call was made in a listed account with that account's own session: a
    # temporary key that acts there, never a function's own key (which acts in the hub).
    assert {c["Account"] for c in calls} <= {A, B, C}
    assert all(c["AccessKeyId"] not in STAGE_BY_KEY for c in calls)
    assert not any(c["Account"] == D for c in stack.calls())
    changes = [c for c in calls if c["Action"].startswith(MUTATING_PREFIXES)]
    assert {c["Account"] for c in changes} == {A, B}
    assert {c["Action"] for c in changes if c["Account"] == A} >= {"DeleteUser", "DeactivateMFADevice", "DeleteAccessKey"}
    # Each stage's function assumed its own stage's role and no other.
    assumed = [c for c in stack.calls() if c["Action"] == "AssumeRole"]
    assert assumed and all(c["Params"]["RoleArn"].endswith(f":role/{TARGET_ROLE_NAME}-{STAGE_BY_KEY[c['AccessKeyId']]}")
                           for c in assumed)
    assert {c["Params"]["RoleArn"].split(":")[4] for c in assumed} == {A, B, C}
    # Each session is named after its child execution (CloudTrail in the account says who).
    assert {c["Params"]["RoleSessionName"] for c in assumed} == {f"offboard-{a}-alice-everywhere" for a in (A, B, C)}


def test_an_account_without_the_target_role_fails_alone_and_the_execution_fails_at_the_end_naming_it(stack):
    for account in (A, E):
        seed_user(stack.iam_in(account), "bob", **ONE_OF_EACH)

    execution = stack.run({"UserName": "bob", "Accounts": [E, A]}, name="bob-everywhere")

    assert execution["status"] == "FAILED"
    assert execution["error"] == "SomeAccountsFailed"
    cause = json.loads(execution["cause"])
    assert cause["FailedAccounts"] == [E]
    assert outcomes(cause) == {E: "Failed", A: "Offboarded"}
    [failed] = [e for e in cause["Accounts"] if e["Account"] == E]
    assert failed["Error"] == "AccessDenied"
    assert "sts:AssumeRole" in child(stack, failed)["cause"] and f"{E}:role/{TARGET_ROLE_NAME}-GetUsername" in child(stack, failed)["cause"]
    assert leftovers(stack.iam_in(A), "bob") == {}
    assert stack.iam_in(E).get_user(UserName="bob")["User"]["UserName"] == "bob"
    assert not [c for c in stack.calls() if c["Account"] == E and c["Service"] == "iam"]


def test_a_user_protected_in_one_account_is_refused_there_and_offboarded_elsewhere(stack):
    seed_user(stack.iam_in(A), "carol", **ONE_OF_EACH)
    seed_user(stack.iam_in(B), "carol", **{**ONE_OF_EACH, "tags": {"offboard:protected": "true"}})

    execution = stack.run({"UserName": "carol", "Accounts": [A, B]}, name="carol-everywhere")

    assert execution["status"] == "FAILED" and execution["error"] == "SomeAccountsFailed"
    cause = json.loads(execution["cause"])
    assert cause["FailedAccounts"] == [B]
    assert {e["Account"]: e.get("Error") for e in cause["Accounts"]} == {A: None, B: "ProtectedUser"}
    assert leftovers(stack.iam_in(A), "carol") == {}
    assert stack.iam_in(B).list_access_keys(UserName="carol")["AccessKeyMetadata"], "nothing removed where protected"
    assert not [c for c in iam_calls(stack) if c["Account"] == B and c["Action"].startswith(MUTATING_PREFIXES)]


def test_a_dry_run_plans_in_each_account_and_changes_nothing(stack):
    seed_user(stack.iam_in(C), "dave", **ONE_OF_EACH)

    execution = stack.run({"UserName": "dave", "Accounts": [C], "DryRun": True}, name="dave-plan")

    assert execution["status"] == "SUCCEEDED", execution
    [entry] = json.loads(execution["output"])["Accounts"]
    assert entry["Outcome"] == "Planned"
    plan = stack.record(entry["RecordUri"].removeprefix("s3://offboard-audit-records/"))
    assert plan["DryRun"] is True and plan["User"]["Arn"] == f"arn:aws:iam::{C}:user/dave"
    assert not [c for c in iam_calls(stack) if c["Action"].startswith(MUTATING_PREFIXES)]
    assert stack.iam_in(C).get_user(UserName="dave")


@pytest.mark.parametrize("bad, says", [
    ({"UserName": "erin", "Accounts": ["1111"]}, "12 digits"),
    ({"UserName": "erin", "Accounts": [A, A]}, "twice"),
    ({"UserName": "erin", "Accounts": []}, "give 1 to"),
    ({"UserName": "er in", "Accounts": [A]}, "not an IAM user name"),
    ({"UserName": "erin", "Accounts": [A], "OrganizationalUnits": ["ou-ab12-cdef3456"]}, "both"),
    ({"UserName": "erin", "Accounts": [A], "Account": A}, "Account"),
])
def test_a_malformed_org_wide_input_is_invalid_input_before_any_account_is_touched(stack, bad, says):
    seed_user(stack.iam_in(A), "erin", **ONE_OF_EACH) if "erin" not in {u["UserName"] for u in stack.iam_in(A).list_users()["Users"]} else None
    stack.clear_calls()

    execution = stack.run(bad)

    assert execution["status"] == "FAILED" and execution["error"] == "InvalidInput", execution
    assert says in execution["cause"]
    assert not [c for c in stack.calls() if c["Service"] in ("iam", "sts") and c["Action"] != "GetCallerIdentity"]
    assert not [e for e in stack.history(execution["executionArn"]) if e["type"] == "TaskStateEntered"
                and e["stateEnteredEventDetails"]["name"] == "OffboardInAccount"]
    assert stack.iam_in(A).get_user(UserName="erin")


@pytest.fixture(scope="module")
def org(stack):
    """An organization in moto with the hub (123456789012) as its management account:
    ``"Accounts": "ORGANIZATION"`` and ``OrganizationalUnits`` are listed from it by
    GetUsername's function."""
    organizations = boto3.client("organizations", region_name=REGION)
    organizations.create_organization(FeatureSet="ALL")
    root = organizations.list_roots()["Roots"][0]["Id"]
    unit = organizations.create_organizational_unit(ParentId=root, Name="engineering")["OrganizationalUnit"]["Id"]
    nested = organizations.create_organizational_unit(ParentId=unit, Name="platform")["OrganizationalUnit"]["Id"]
    accounts = {}
    for name in ("member", "in-unit", "in-nested-unit", "suspended"):
        status = organizations.create_account(AccountName=name, Email=f"{name}@example.com")["CreateAccountStatus"]
        accounts[name] = status["AccountId"]
        stack.deploy_target_roles(status["AccountId"])
    organizations.move_account(AccountId=accounts["in-unit"], SourceParentId=root, DestinationParentId=unit)
    organizations.move_account(AccountId=accounts["in-nested-unit"], SourceParentId=root, DestinationParentId=nested)
    organizations.close_account(AccountId=accounts["suspended"])
    return {"unit": unit, **accounts}


def test_every_active_account_of_the_organization_and_a_suspended_one_skipped(stack, org):
    for name in ("member", "in-unit", "suspended"):
        seed_user(stack.iam_in(org[name]), "frank", **ONE_OF_EACH)

    execution = stack.run({"UserName": "frank", "Accounts": "ORGANIZATION"}, name="frank-org")

    assert execution["status"] == "SUCCEEDED", execution
    found = outcomes(json.loads(execution["output"]))
    # The management account (the hub, 123456789012) is a member too: frank is not there.
    assert found == {ACCOUNT: "NotPresent", org["member"]: "Offboarded", org["in-unit"]: "Offboarded",
                     org["in-nested-unit"]: "NotPresent"}
    assert leftovers(stack.iam_in(org["member"]), "frank") == {}
    assert stack.iam_in(org["suspended"]).get_user(UserName="frank"), "a SUSPENDED account is not worked in"
    assert not [c for c in stack.calls() if c["Account"] == org["suspended"]]
    assert [c["Action"] for c in stack.calls() if c["Service"] == "organizations"] == ["ListAccounts"]

def test_organizational_units_cover_the_units_below_them(stack, org):
    for name in ("member", "in-unit", "in-nested-unit"):
        seed_user(stack.iam_in(org[name]), "grace", **ONE_OF_EACH)

    execution = stack.run({"UserName": "grace", "OrganizationalUnits": [org["unit"]]}, name="grace-unit")

    assert execution["status"] == "SUCCEEDED", execution
    assert outcomes(json.loads(execution["output"])) == {org["in-unit"]: "Offboarded", org["in-nested-unit"]: "Offboarded"}
    assert stack.iam_in(org["member"]).get_user(UserName="grace"), "an account outside the unit is untouched"
    assert leftovers(stack.iam_in(org["in-nested-unit"]), "grace") == {}


# --- the CLI: offboard plan|delete --accounts / --organization ------------------------------

CLI_ROLE = "OrganizationAccountAccessRole"


def cli_role_in(stack, account: str) -> None:
    """The role ``offboard --accounts`` assumes by default in each account other than the
    caller's: the one AWS Organizations creates in accounts it creates (Organizations User
    Guide, "Accessing member accounts": OrganizationAccountAccessRole)."""
    iam = stack.iam_in(account)
    if CLI_ROLE not in {r["RoleName"] for r in iam.list_roles()["Roles"]}:
        iam.create_role(RoleName=CLI_ROLE, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))


def test_the_cli_offboards_from_each_account_reports_each_and_fails_naming_an_account_without_its_role(stack):
    for account in (A, B, E):
        seed_user(stack.iam_in(account), "henry", **ONE_OF_EACH)
    for account in (A, B):
        cli_role_in(stack, account)

    result = run_offboard(stack.emulator.url, "delete", "--user-name", "henry", "--accounts", f"{A},{B},{C},{E}",
                          "--yes", "--output", "json")

    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert {o["Account"]: (o["Outcome"], o.get("Error")) for o in report["Accounts"]} == {
        A: ("Offboarded", None), B: ("Offboarded", None), C: ("Failed", "AccessDenied"), E: ("Failed", "AccessDenied")}
    assert report["FailedAccounts"] == [C, E]
    assert f"failed in account(s) {C}, {E}" in result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("account ")] == [
        f"account {a}:" for a in (A, B, C, E)]
    for account in (A, B):
        assert leftovers(stack.iam_in(account), "henry") == {}
    assert stack.iam_in(E).get_user(UserName="henry"), "no session, no change"
    operator = [c for c in stack.calls() if c["AccessKeyId"] == "AKIAOPERATOROPERATOR"]
    assert {c["Action"] for c in operator} <= {"GetCallerIdentity", "AssumeRole"}, "IAM only with the accounts' sessions"
    assert {c["Account"] for c in iam_calls(stack)} == {A, B}


def test_the_cli_plans_across_the_organization_and_an_account_without_the_user_is_not_present(stack, org):
    seed_user(stack.iam_in(org["member"]), "ivy", **ONE_OF_EACH)
    for name in ("member", "in-unit", "in-nested-unit"):
        cli_role_in(stack, org[name])

    result = run_offboard(stack.emulator.url, "plan", "--user-name", "ivy", "--organization", "--output", "json")

    assert result.returncode == 0, result.stderr
    outcomes_by_account = {o["Account"]: o["Outcome"] for o in json.loads(result.stdout)["Accounts"]}
    assert outcomes_by_account == {ACCOUNT: "NotPresent", org["member"]: "Planned", org["in-unit"]: "NotPresent",
                                   org["in-nested-unit"]: "NotPresent"}
    assert not [c for c in iam_calls(stack) if c["Action"].startswith(MUTATING_PREFIXES)]


def test_the_cli_refuses_a_malformed_account_list_before_any_call(stack):
    result = run_offboard(stack.emulator.url, "delete", "--user-name", "henry", "--accounts", f"{A},12", "--yes")

    assert result.returncode == 1
    assert "InvalidInput" in result.stderr and "12 digits" in result.stderr
    assert not [c for c in stack.calls() if c["AccessKeyId"] == "AKIAOPERATOROPERATOR"]
