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
- The Distributed Map (OffboardEachAccount). Its MaxConcurrency bounds how many child
  workflow executions run at once (Step Functions developer guide, "Orchestrating large-scale
  parallel workloads": "You can specify the number of child workflow executions that can run
  in parallel"): moto starts that many workers, each taking the next item when it is done
  (moto/stepfunctions/parser/asl/component/state/exec/state_map/iteration/
  distributed_iteration_component.py ``_map_run``). Its ItemSelector builds each item from
  "values selected from the state input using a path, or values accessed from the Context
  object" (developer guide, "ItemSelector (Map)"): ``$`` is the Map's input, as in moto.
  ToleratedFailurePercentage and the ResultWriter's report files: tests/emulator/
  sfn_integration.py, cited there. "Each child workflow execution has its own, separate
  execution history" (developer guide, "Map workflow state"), but moto keeps none of it (the
  same moto file, ``_eval_body``: their events go to a fresh ``EventManager``); each holds
  one Task here, so the evidence is the children it starts, real executions with histories.
- The Map's report is rewritten, in two tests, between the Map's end and SummarizeAccounts: the
  local Lambda host holds the summary's invocation meanwhile (``LambdaHost.hold``, which claims
  nothing about Lambda but that a function may start some time after it is invoked). A writer
  of the report bucket could do the same in real AWS: "ResultWriter" (developer guide) writes
  plain S3 objects, read back by the summary with GetObject.
The evidence is each account's IAM state, each child's own outcome, the Map's report and the
call log, not only the parent's status."""

from __future__ import annotations

import copy
import datetime
import json
import sys
import time
from pathlib import Path

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "emulator"))

from cli import run_offboard  # noqa: E402
from lambda_host import FUNCTIONS, REGION, access_key_for  # noqa: E402
from seed import leftovers, seed_user  # noqa: E402
from stack import ACCOUNT, AUDIT_BUCKET, REPORT_BUCKET, TARGET_ROLE_NAME, Stack  # noqa: E402

STAGE_BY_KEY = {access_key_for(stage): stage for stage in FUNCTIONS}
A, B, C, D, E = "111111111111", "222222222222", "333333333333", "444444444444", "555555555555"
ONE_OF_EACH = dict(access_keys=1, ssh_keys=1, certificates=1, services=("bedrock.amazonaws.com",), virtual_devices=1,
                   passkeys=1, hardware_tokens=1, groups=1, inline_policies=1, attached_policies=1, boundary=False)
MUTATING_PREFIXES = ("Delete", "Deactivate", "Remove", "Detach", "Update", "Put", "Create", "Attach", "Tag")
#: Five accounts with target roles for the grace-period scenarios: more than the stack's
#: AccountConcurrency (2), so the old inline Map (two children at a time, each waiting out
#: its grace period) could not quarantine them all at once.
GRACE_ACCOUNTS = ("610000000001", "610000000002", "610000000003", "610000000004", "610000000005")
#: The stack's OFFBOARD_ACCOUNT_CONCURRENCY (template parameter AccountConcurrency).
ACCOUNT_CONCURRENCY = 2
TAG = "offboard:quarantined-until"
DENY_ALL = "arn:aws:iam::aws:policy/AWSDenyAll"


@pytest.fixture(scope="module")
def stack():
    with Stack(instances=2, env={"OFFBOARD_TARGET_ROLE_NAME": TARGET_ROLE_NAME,
                                 "OFFBOARD_ACCOUNT_CONCURRENCY": str(ACCOUNT_CONCURRENCY)}) as running:
        for account in (A, B, C, D, *GRACE_ACCOUNTS):
            running.deploy_target_roles(account)
        yield running


def child(stack, account: str, parent: str) -> dict:
    """The child execution of org-wide execution ``parent`` in ``account``: named
    ``<account>-<parent>`` cut to 80 characters."""
    name = f"{account}-{parent}"[:80]
    arn = stack.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"
    return stack.sfn.describe_execution(executionArn=arn)


def outcome_of(execution: dict) -> str:
    """An account's outcome read from its child execution itself."""
    if execution["status"] == "SUCCEEDED":
        output = json.loads(execution["output"])
        if output.get("Outcome") == "Restored":
            return "Restored"
        return "Planned" if output.get("DryRun") is True else "Offboarded"
    return "NotPresent" if execution.get("error") == "UserNotFound" else "Failed"


def outcomes(stack, parent: str, accounts) -> dict[str, str]:
    return {account: outcome_of(child(stack, account, parent)) for account in accounts}


def report(stack, summary: dict) -> list[dict]:
    """Every entry of the Map's report (the ResultWriter's manifest and result files)."""
    bucket, key = summary["ReportUri"].removeprefix("s3://").split("/", 1)
    assert bucket == REPORT_BUCKET
    manifest = json.loads(stack.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    entries = []
    for files in manifest["ResultFiles"].values():
        for file in files:
            entries += json.loads(stack.s3.get_object(Bucket=manifest["DestinationBucket"], Key=file["Key"])["Body"].read())
    return entries


def accounts_in(entries: list[dict]) -> list[str]:
    return sorted(json.loads(entry["Input"])["Placement"]["Account"] for entry in entries)


def counts(summary: dict) -> dict[str, int]:
    return {key: summary[key] for key in ("Total", "Offboarded", "Planned", "Restored", "NotPresent", "Failed")}


def utc(seconds_ahead: float) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    return (now + datetime.timedelta(seconds=seconds_ahead)).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch(timestamp: str) -> float:
    return datetime.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()


def quarantined(iam, name: str) -> str | None:
    """The quarantine tag's value once the user is wholly quarantined (AWSDenyAll attached,
    every access key Inactive, the tag set last); None before."""
    try:
        tags = iam.get_user(UserName=name)["User"].get("Tags", [])
    except iam.exceptions.NoSuchEntityException:
        return None
    until = next((t["Value"] for t in tags if t["Key"].lower() == TAG), None)
    attached = {p["PolicyArn"] for p in iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]}
    keys = {k["Status"] for k in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]}
    return until if until and DENY_ALL in attached and keys <= {"Inactive"} else None


def left_wait(stack, execution_arn: str) -> bool:
    return any(e.get("stateExitedEventDetails", {}).get("name") == "WaitForDeleteAfter"
               for e in stack.history(execution_arn))


def poll(what: str, probe, *, stack, execution_arn: str, timeout: float = 120.0):
    """``probe()``'s first value that is not None; fails at once if the execution ends first."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        execution = stack.sfn.describe_execution(executionArn=execution_arn)
        if execution["status"] != "RUNNING":
            raise AssertionError(f"waiting for {what}: the execution ended first, {execution['status']} "
                                 f"{execution.get('error')}: {execution.get('cause')}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout} s")
        time.sleep(0.2)


def iam_calls(stack) -> list[dict]:
    return [c for c in stack.calls() if c["Service"] == "iam"]


def test_one_execution_offboards_the_user_from_each_listed_account_and_an_account_without_it_is_not_present(stack):
    made = {account: seed_user(stack.iam_in(account), "alice", **ONE_OF_EACH) for account in (A, B)}
    bystander = seed_user(stack.iam_in(D), "alice", **ONE_OF_EACH)  # same name, account not listed

    execution = stack.run({"UserName": "alice", "Accounts": [A, B, C], "Context": {"Ticket": "HR-12"}},
                          name="alice-everywhere")

    assert execution["status"] == "SUCCEEDED", execution
    summary = json.loads(execution["output"])
    assert counts(summary) == {"Total": 3, "Offboarded": 2, "Planned": 0, "Restored": 0, "NotPresent": 1, "Failed": 0}
    assert summary["FailedAccounts"] == {} and summary["DeleteAfter"] is None
    assert accounts_in(report(stack, summary)) == [A, B, C]
    assert outcomes(stack, "alice-everywhere", (A, B, C)) == {A: "Offboarded", B: "Offboarded", C: "NotPresent"}
    for account in (A, B):
        assert leftovers(stack.iam_in(account), "alice") == {}, account
        assert child(stack, account, "alice-everywhere")["name"] == f"{account}-alice-everywhere"
        record = stack.record(f"records/{account}/alice/{account}-alice-everywhere/record.json")
        assert record["User"]["Arn"] == f"arn:aws:iam::{account}:user/alice"
        assert record["Context"] == {"Ticket": "HR-12"}
        assert {k["AccessKeyId"] for k in record["Items"]["AccessKeys"]} == set(made[account]["AccessKeys"])
    absent = child(stack, C, "alice-everywhere")
    assert absent["status"] == "FAILED" and absent["error"] == "UserNotFound"
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
    assert cause["FailedAccounts"] == {"AccessDenied": [E]}
    assert (cause["Offboarded"], cause["Failed"]) == (1, 1)
    assert outcomes(stack, "bob-everywhere", (E, A)) == {E: "Failed", A: "Offboarded"}
    failed = child(stack, E, "bob-everywhere")
    assert "sts:AssumeRole" in failed["cause"] and f"{E}:role/{TARGET_ROLE_NAME}-GetUsername" in failed["cause"]
    assert leftovers(stack.iam_in(A), "bob") == {}
    assert stack.iam_in(E).get_user(UserName="bob")["User"]["UserName"] == "bob"
    assert not [c for c in stack.calls() if c["Account"] == E and c["Service"] == "iam"]


def test_a_user_protected_in_one_account_is_refused_there_and_offboarded_elsewhere(stack):
    seed_user(stack.iam_in(A), "carol", **ONE_OF_EACH)
    seed_user(stack.iam_in(B), "carol", **{**ONE_OF_EACH, "tags": {"offboard:protected": "true"}})

    execution = stack.run({"UserName": "carol", "Accounts": [A, B]}, name="carol-everywhere")

    assert execution["status"] == "FAILED" and execution["error"] == "SomeAccountsFailed"
    cause = json.loads(execution["cause"])
    assert cause["FailedAccounts"] == {"ProtectedUser": [B]}
    assert outcomes(stack, "carol-everywhere", (A, B)) == {A: "Offboarded", B: "Failed"}
    assert leftovers(stack.iam_in(A), "carol") == {}
    assert stack.iam_in(B).list_access_keys(UserName="carol")["AccessKeyMetadata"], "nothing removed where protected"
    assert not [c for c in iam_calls(stack) if c["Account"] == B and c["Action"].startswith(MUTATING_PREFIXES)]


def test_a_dry_run_plans_in_each_account_and_changes_nothing(stack):
    seed_user(stack.iam_in(C), "dave", **ONE_OF_EACH)

    execution = stack.run({"UserName": "dave", "Accounts": [C], "DryRun": True}, name="dave-plan")

    assert execution["status"] == "SUCCEEDED", execution
    summary = json.loads(execution["output"])
    assert counts(summary) == {"Total": 1, "Offboarded": 0, "Planned": 1, "Restored": 0, "NotPresent": 0, "Failed": 0}
    assert summary["DryRun"] is True
    assert outcomes(stack, "dave-plan", [C]) == {C: "Planned"}
    plan = stack.record(f"records/{C}/dave/{C}-dave-plan/plan.json")
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
    assert not [e for e in stack.history(execution["executionArn"]) if e["type"] in ("MapStateEntered", "MapRunStarted")]
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
    summary = json.loads(execution["output"])
    covered = accounts_in(report(stack, summary))
    found = outcomes(stack, "frank-org", covered)
    # The management account (the hub, 123456789012) is a member too: frank is not there.
    assert found == {ACCOUNT: "NotPresent", org["member"]: "Offboarded", org["in-unit"]: "Offboarded",
                     org["in-nested-unit"]: "NotPresent"}
    assert (summary["Total"], summary["Offboarded"], summary["NotPresent"]) == (4, 2, 2)
    assert leftovers(stack.iam_in(org["member"]), "frank") == {}
    assert stack.iam_in(org["suspended"]).get_user(UserName="frank"), "a SUSPENDED account is not worked in"
    assert not [c for c in stack.calls() if c["Account"] == org["suspended"]]
    assert [c["Action"] for c in stack.calls() if c["Service"] == "organizations"] == ["ListAccounts"]

def test_organizational_units_cover_the_units_below_them(stack, org):
    for name in ("member", "in-unit", "in-nested-unit"):
        seed_user(stack.iam_in(org[name]), "grace", **ONE_OF_EACH)

    execution = stack.run({"UserName": "grace", "OrganizationalUnits": [org["unit"]]}, name="grace-unit")

    assert execution["status"] == "SUCCEEDED", execution
    covered = accounts_in(report(stack, json.loads(execution["output"])))
    assert outcomes(stack, "grace-unit", covered) == {org["in-unit"]: "Offboarded", org["in-nested-unit"]: "Offboarded"}
    assert stack.iam_in(org["member"]).get_user(UserName="grace"), "an account outside the unit is untouched"
    assert leftovers(stack.iam_in(org["in-nested-unit"]), "grace") == {}


# --- a grace period holds in every account at once (issue 25.1) -----------------------------


def test_a_grace_period_quarantines_every_account_at_once_and_deletes_in_all_at_one_shared_time(stack):
    """Five accounts, AccountConcurrency 2: with a grace period the Map runs every account at
    once, so each account's user is quarantined before any child leaves its Wait state, all
    on the one DeleteAfter, and the deletion happens in every account after it."""
    for account in GRACE_ACCOUNTS:
        seed_user(stack.iam_in(account), "gina", **ONE_OF_EACH)
    delete_after = utc(45)

    parent = stack.start({"UserName": "gina", "Accounts": list(GRACE_ACCOUNTS), "DeleteAfter": delete_after},
                         name="gina-grace")

    tags = poll("every account's gina quarantined",
                lambda: (lambda found: found if None not in found.values() else None)(
                    {account: quarantined(stack.iam_in(account), "gina") for account in GRACE_ACCOUNTS}),
                stack=stack, execution_arn=parent)
    assert time.time() < epoch(delete_after), "quarantined everywhere before the deletion time"
    assert not [a for a in GRACE_ACCOUNTS if left_wait(stack, child(stack, a, "gina-grace")["executionArn"])]
    assert set(tags.values()) == {delete_after}, "one deletion time, the parent's, in every account"

    execution = stack.wait(parent, timeout=300)

    assert execution["status"] == "SUCCEEDED", (execution.get("error"), execution.get("cause"))
    summary = json.loads(execution["output"])
    assert counts(summary) == {"Total": 5, "Offboarded": 5, "Planned": 0, "Restored": 0, "NotPresent": 0, "Failed": 0}
    assert summary["DeleteAfter"] == delete_after
    deletions = {c["Account"]: c["Time"] for c in stack.calls() if c["Action"] == "DeleteUser"}
    for account in GRACE_ACCOUNTS:
        name = f"{account}-gina-grace"
        assert json.loads(child(stack, account, "gina-grace")["input"])["DeleteAfter"] == delete_after
        record = stack.record(f"records/{account}/gina/{name}/quarantine.json")
        assert record["Quarantine"]["QuarantinedUntil"] == delete_after
        assert stack.record(f"records/{account}/gina/{name}/record.json")["Quarantine"]["QuarantinedUntil"] == delete_after
        assert leftovers(stack.iam_in(account), "gina") == {}, account
        assert deletions[account] >= epoch(delete_after), f"{account} deleted before {delete_after}"


def test_grace_days_become_one_delete_after_computed_by_the_parent_for_every_child(stack):
    """GraceDays is turned into one DeleteAfter when the accounts are resolved: every child's
    input carries that same DeleteAfter and no GraceDays, so every account's user is tagged
    with the same deletion time, however late its child starts."""
    accounts = GRACE_ACCOUNTS[:3]
    for account in accounts:
        seed_user(stack.iam_in(account), "hugo", **ONE_OF_EACH)
    started = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    parent = stack.start({"UserName": "hugo", "Accounts": list(accounts), "GraceDays": 7}, name="hugo-grace")
    try:
        tags = poll("every child of hugo-grace waiting",
                    lambda: (lambda found: found if None not in found.values() else None)(
                        {account: quarantined(stack.iam_in(account), "hugo") for account in accounts}),
                    stack=stack, execution_arn=parent)
        inputs = {account: json.loads(child(stack, account, "hugo-grace")["input"]) for account in accounts}
        finished = datetime.datetime.now(datetime.timezone.utc)
        [delete_after] = {i["DeleteAfter"] for i in inputs.values()}
        assert not [a for a, i in inputs.items() if "GraceDays" in i]
        assert started + datetime.timedelta(days=7) <= datetime.datetime.fromtimestamp(
            epoch(delete_after), datetime.timezone.utc) <= finished + datetime.timedelta(days=7)
        assert set(tags.values()) == {delete_after}
        resolved = [json.loads(e["stateExitedEventDetails"]["output"]) for e in stack.history(parent)
                    if e.get("stateExitedEventDetails", {}).get("name") == "ResolveAccounts"]
        assert resolved[0]["FanOut"]["DeleteAfter"] == delete_after
        assert resolved[0]["FanOut"]["MaxConcurrency"] == len(accounts), "every account at once"
        assert "GraceDays" not in resolved[0]["FanOut"]["ChildInput"]
    finally:
        stack.sfn.stop_execution(executionArn=parent, error="TestOver")
        for account in accounts:
            arn = child(stack, account, "hugo-grace")["executionArn"]
            if stack.sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
                stack.sfn.stop_execution(executionArn=arn, error="TestOver")


def test_the_summary_counts_each_outcome_from_the_report_and_fails_naming_the_failed_accounts(stack):
    """Offboarded (A), Restored (B: its quarantine tag removed during the wait), NotPresent (C)
    and Failed (E, no target roles): the summary is read from the Map's report; the execution
    fails with SomeAccountsFailed naming E, with the counts and the report's S3 URI."""
    for account in (A, B, E):
        seed_user(stack.iam_in(account), "iris", **ONE_OF_EACH)
    delete_after = utc(40)

    parent = stack.start({"UserName": "iris", "Accounts": [A, B, C, E], "DeleteAfter": delete_after},
                         name="iris-grace")
    poll("iris quarantined in A and B",
         lambda: True if quarantined(stack.iam_in(A), "iris") and quarantined(stack.iam_in(B), "iris") else None,
         stack=stack, execution_arn=parent)
    stack.iam_in(B).untag_user(UserName="iris", TagKeys=[TAG])  # restored by hand, during the grace period
    execution = stack.wait(parent, timeout=300)

    assert execution["status"] == "FAILED" and execution["error"] == "SomeAccountsFailed", execution
    cause = json.loads(execution["cause"])
    assert counts(cause) == {"Total": 4, "Offboarded": 1, "Planned": 0, "Restored": 1, "NotPresent": 1, "Failed": 1}
    assert cause["FailedAccounts"] == {"AccessDenied": [E]} and cause["FailedAccountsNotNamed"] == 0
    assert cause["ReportUri"].startswith(f"s3://{REPORT_BUCKET}/org-runs/iris-grace/")
    assert cause["ReportUri"].endswith("/manifest.json")
    entries = report(stack, cause)
    assert accounts_in(entries) == sorted([A, B, C, E])
    by_account = {json.loads(e["Input"])["Placement"]["Account"]: e for e in entries}
    assert {a: e["Status"] for a, e in by_account.items()} == {A: "SUCCEEDED", B: "SUCCEEDED", C: "FAILED",
                                                               E: "FAILED"}
    assert json.loads(by_account[E]["Cause"])["Error"] == "AccessDenied"
    assert json.loads(by_account[C]["Cause"])["Error"] == "UserNotFound"
    assert json.loads(by_account[B]["Output"])["Output"] == {"Outcome": "Restored"}
    # The report keeps only what the summary reads of a child's output; the audit record
    # itself is the child's, in the audit bucket.
    kept = json.loads(by_account[A]["Output"])
    assert kept["ExecutionArn"] == child(stack, A, "iris-grace")["executionArn"]
    assert set(kept["Output"]) == {"DryRun", "UserDeletion"} and kept["Output"]["DryRun"] is False
    assert kept["Output"]["UserDeletion"] == stack.record(f"records/{A}/iris/{A}-iris-grace/record.json")["UserDeletion"]
    assert outcomes(stack, "iris-grace", (A, B, C, E)) == {A: "Offboarded", B: "Restored", C: "NotPresent",
                                                            E: "Failed"}
    assert leftovers(stack.iam_in(A), "iris") == {}
    assert stack.iam_in(B).get_user(UserName="iris"), "restored: nothing deleted"


# --- a report rewritten before the summary reads it ----------------------------------------

FORGED_BUCKET = "forged-reports"


def report_objects(stack, parent: str) -> tuple[str, dict]:
    """The manifest's key and the manifest of execution ``parent``'s report."""
    listed = stack.s3.list_objects_v2(Bucket=REPORT_BUCKET, Prefix=f"org-runs/{parent}/")["Contents"]
    [key] = [o["Key"] for o in listed if o["Key"].endswith("/manifest.json")]
    return key, json.loads(stack.s3.get_object(Bucket=REPORT_BUCKET, Key=key)["Body"].read())


def forged_success(entry: dict, account: str, parent: str) -> dict:
    """``entry`` (a child that SUCCEEDED) made to say that ``account``'s child of ``parent``
    succeeded too, as a forger who knows the naming would write it."""
    forged = copy.deepcopy(entry)
    item = json.loads(forged["Input"])
    item["Placement"] = {"Account": account, "ExecutionName": f"{account}-{parent}"}
    forged["Input"] = json.dumps(item)
    output = json.loads(forged["Output"])
    output["ExecutionArn"] = output["ExecutionArn"].rsplit(":", 1)[0] + f":{account}-{parent}"
    forged["Output"] = json.dumps(output)
    return forged


@pytest.mark.parametrize("forgery", ["an entry", "another bucket"])
def test_a_report_rewritten_before_the_summary_reads_it_never_counts_a_failed_account_offboarded(stack, forgery):
    """E has no target roles: its child fails (AccessDenied), A's is offboarded. Before the
    summary reads the report, a forger adds a success for E: to the Map's own result file (E
    then has two entries that disagree: ConflictingReport), or in a bucket of its own that the
    rewritten manifest names (the report is not this run's: UntrustedReport). Either way E is
    never counted offboarded, and the execution fails."""
    user = {"an entry": "kim", "another bucket": "lou"}[forgery]
    parent = f"{user}-forged"
    for account in (A, E):
        seed_user(stack.iam_in(account), user, **ONE_OF_EACH)
    held = stack.lambdas.held.get("OffboardBatch", 0)
    stack.lambdas.hold("OffboardBatch")
    try:
        execution_arn = stack.start({"UserName": user, "Accounts": [E, A]}, name=parent)
        poll("the summary invoked", lambda: True if stack.lambdas.held.get("OffboardBatch", 0) > held else None,
             stack=stack, execution_arn=execution_arn)
        key, manifest = report_objects(stack, parent)
        [succeeded] = manifest["ResultFiles"]["SUCCEEDED"]
        entries = json.loads(stack.s3.get_object(Bucket=REPORT_BUCKET, Key=succeeded["Key"])["Body"].read())
        assert accounts_in(entries) == [A]
        forged = json.dumps(entries + [forged_success(entries[0], E, parent)])
        if forgery == "an entry":
            stack.s3.put_object(Bucket=REPORT_BUCKET, Key=succeeded["Key"], Body=forged)
        else:
            if FORGED_BUCKET not in {b["Name"] for b in stack.s3.list_buckets()["Buckets"]}:
                stack.s3.create_bucket(Bucket=FORGED_BUCKET)
            stack.s3.put_object(Bucket=FORGED_BUCKET, Key=succeeded["Key"], Body=forged)
            manifest = {**manifest, "DestinationBucket": FORGED_BUCKET,
                        "ResultFiles": {"FAILED": [], "PENDING": [], "SUCCEEDED": [succeeded]}}
            stack.s3.put_object(Bucket=REPORT_BUCKET, Key=key, Body=json.dumps(manifest))
    finally:
        stack.lambdas.release("OffboardBatch")
    execution = stack.wait(execution_arn)

    assert execution["status"] == "FAILED", execution
    if forgery == "an entry":
        assert execution["error"] == "SomeAccountsFailed", execution
        cause = json.loads(execution["cause"])
        assert (cause["Offboarded"], cause["Failed"]) == (1, 1)
        assert cause["FailedAccounts"] == {"ConflictingReport": [E]}
    else:
        assert execution["error"] == "UntrustedReport", execution
        assert FORGED_BUCKET in execution["cause"] and "no account is counted" in execution["cause"]
    # The children themselves ended as they did.
    assert outcomes(stack, parent, (E, A)) == {E: "Failed", A: "Offboarded"}
    assert stack.iam_in(E).get_user(UserName=user), "nothing was done in E"


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
