"""Evidence that outlives the execution: every execution (succeeded, failed,
dry run, quarantined) leaves its record in S3 and puts exactly one outcome event on
EventBridge, whose detail validates against schemas/offboard-event-detail.schema.json.

moto's Step Functions interpreter runs the definition's S3 and EventBridge
service integrations against moto's S3 and Events; events reach the test
through an EventBridge rule with an SQS target, as a consumer would set one up
(Amazon EventBridge user guide, "Amazon EventBridge targets": SQS queues)."""

from __future__ import annotations

import copy
import datetime
import json
import sys
from pathlib import Path

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "emulator"))

from lambda_host import STATE_MACHINE_ARNS  # noqa: E402
from seed import ACCOUNT, leftovers, seed_user  # noqa: E402
from stack import AUDIT_BUCKET, Stack  # noqa: E402

SCHEMA = json.loads((ROOT / "schemas" / "offboard-event-detail.schema.json").read_text())
MUTATING_PREFIXES = ("Delete", "Deactivate", "Remove", "Detach")
DENY_ALL = "arn:aws:iam::aws:policy/AWSDenyAll"


@pytest.fixture(scope="module")
def stack():
    with Stack() as running:
        yield running


def only_event(stack, detail_type: str) -> dict:
    events = stack.events()
    assert [e["detail-type"] for e in events] == [detail_type], events
    event = events[0]
    assert event["source"] == "iam-offboard"
    jsonschema.validate(event["detail"], SCHEMA)
    return event["detail"]


def prefix(user: str, execution: str) -> str:
    return f"records/{ACCOUNT}/{user}/{execution}/"


def test_success_leaves_plan_and_record_and_one_offboarded_event(stack):
    seed_user(stack.iam, "rita")
    execution = stack.run({"UserName": "rita", "Context": {"Ticket": "SEC-42"}}, name="rita-1")
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert stack.record_keys(prefix("rita", "rita-1")) == [prefix("rita", "rita-1") + "plan.json", prefix("rita", "rita-1") + "record.json"]
    record = stack.record(prefix("rita", "rita-1") + "record.json")
    assert record == json.loads(execution["output"]), "the stored record is the execution's output"
    plan = stack.record(prefix("rita", "rita-1") + "plan.json")
    assert plan["DryRun"] is False and plan["UserDeletion"] is None
    assert [k["AccessKeyId"] for k in plan["Items"]["AccessKeys"]] == [k["AccessKeyId"] for k in record["Items"]["AccessKeys"]]
    assert all("Outcome" not in k for k in plan["Items"]["AccessKeys"]), "the plan is written before anything is removed"
    assert record["Items"]["InlinePolicies"][0]["PolicyDocument"]["Statement"], "policy documents are kept"
    detail = only_event(stack, "IAM User Offboarded")
    assert detail["RecordUri"] == f"s3://{AUDIT_BUCKET}/{prefix('rita', 'rita-1')}record.json"
    assert (detail["UserName"], detail["UserId"], detail["Account"]) == ("rita", record["User"]["UserId"], ACCOUNT)
    assert detail["ExecutionArn"] == execution["executionArn"] and detail["Context"] == {"Ticket": "SEC-42"}
    for kind, items in record["Items"].items():
        if isinstance(items, list):
            assert detail["Items"][kind] == len(items), kind
    assert detail["Items"]["LoginProfile"] == record["Items"]["LoginProfile"]
    assert "Secret" not in json.dumps(record) and "Password\"" not in json.dumps(record)
    assert leftovers(stack.iam, "rita") == {}


def test_dry_run_leaves_only_the_plan_and_a_planned_event(stack):
    seed_user(stack.iam, "sam")
    execution = stack.run({"UserName": "sam", "DryRun": True}, name="sam-plan")
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert stack.record_keys(prefix("sam", "sam-plan")) == [prefix("sam", "sam-plan") + "plan.json"]
    plan = stack.record(prefix("sam", "sam-plan") + "plan.json")
    assert plan == json.loads(execution["output"]) and plan["DryRun"] is True
    detail = only_event(stack, "IAM User Offboarding Planned")
    assert detail["DryRun"] is True and detail["RecordUri"].endswith("/sam-plan/plan.json")
    assert detail["Items"]["AccessKeys"] == 2
    assert [c for c in stack.calls() if c["Action"].startswith(MUTATING_PREFIXES)] == []
    assert leftovers(stack.iam, "sam") != {}, "a dry run changes nothing"


def test_a_failure_part_way_leaves_a_partial_record_naming_what_was_removed(stack):
    made = seed_user(stack.iam, "tess", virtual_devices=0, passkeys=1, hardware_tokens=0)
    # Denies DeactivateMFADevice (AccessDenied) after the credential stage has run.
    stack.faults(MfaRequiredForDeactivate=True)
    execution = stack.run({"UserName": "tess"}, name="tess-1")
    assert execution["status"] == "FAILED"
    record = stack.record(prefix("tess", "tess-1") + "record.json")
    assert record["Error"] == execution["error"] and record["Cause"] == execution["cause"]
    removed_keys = {k["AccessKeyId"]: k["Outcome"] for k in record["Removed"]["Credentials"]["AccessKeys"]}
    assert removed_keys == {key: "Removed" for key in made["AccessKeys"]}
    assert record["Removed"]["Permissions"] is None, "the stage after the failure never ran"
    assert record["Plan"]["Items"]["MFADevices"][0]["SerialNumber"] == made["MFADevices"][0]
    assert record["User"]["UserName"] == "tess"
    detail = only_event(stack, "IAM User Offboarding Failed")
    assert detail["Error"] == execution["error"] and detail["UserName"] == "tess"
    assert detail["RecordUri"].endswith("/tess/tess-1/record.json")


def test_a_protected_user_leaves_a_failed_record_and_event_and_nothing_is_deleted(stack):
    seed_user(stack.iam, "uma")
    stack.iam.tag_user(UserName="uma", Tags=[{"Key": "offboard:protected", "Value": "true"}])
    execution = stack.run({"UserName": "uma"}, name="uma-1")
    assert (execution["status"], execution["error"]) == ("FAILED", "ProtectedUser")
    key = f"records/{ACCOUNT}/_unresolved/uma-1/record.json"
    record = stack.record(key)
    assert record["Error"] == "ProtectedUser" and record["Input"] == {"UserName": "uma"}
    detail = only_event(stack, "IAM User Offboarding Failed")
    assert detail["Error"] == "ProtectedUser" and detail["RecordUri"] == f"s3://{AUDIT_BUCKET}/{key}"
    assert [c for c in stack.calls() if c["Action"].startswith(MUTATING_PREFIXES)] == []
    assert leftovers(stack.iam, "uma") != {}


def test_an_unwritable_record_fails_the_execution_before_anything_is_removed(stack):
    seed_user(stack.iam, "vic")
    machine = stack.create_state_machine(name="offboard-no-bucket", AuditBucketName="no-such-audit-bucket")
    # The functions act only for executions of the deployment's state
    # machines: this one joins them, as a deployment's own machine would.
    ours = f"{STATE_MACHINE_ARNS[0]},{STATE_MACHINE_ARNS[1]},{machine}"
    stack.restart_lambdas(env={**stack.env, "OFFBOARD_STATE_MACHINE_ARNS": ours})
    execution = stack.wait(stack.sfn.start_execution(stateMachineArn=machine, name="vic-1",
                                                     input=json.dumps({"UserName": "vic"}))["executionArn"])
    assert (execution["status"], execution["error"]) == ("FAILED", "RecordNotWritten")
    succeeded = [e for e in stack.history(execution["executionArn"]) if e["type"] == "LambdaFunctionSucceeded"]
    assert len(succeeded) == 3, "GetUsername and the inventory ran; the plan could not be written"
    assert [c for c in stack.calls() if c["Action"].startswith(MUTATING_PREFIXES)] == []
    assert leftovers(stack.iam, "vic") != {}
    assert stack.events() == [], "no outcome event claims a record that does not exist"


def test_a_grace_period_leaves_a_quarantine_record_and_event_then_the_deletions_own(stack):
    seed_user(stack.iam, "wes")
    delete_after = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    execution = stack.run({"UserName": "wes", "DeleteAfter": delete_after, "Context": {"Ticket": "HR-7"}}, name="wes-1")
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    at = prefix("wes", "wes-1")
    assert stack.record_keys(at) == [at + name for name in ("deletion-plan.json", "plan.json", "quarantine.json", "record.json")]
    plan, quarantine = stack.record(at + "plan.json"), stack.record(at + "quarantine.json")
    deletion_plan, record = stack.record(at + "deletion-plan.json"), stack.record(at + "record.json")
    assert record == json.loads(execution["output"])
    # plan.json is the inventory before the quarantine and is never overwritten;
    # the deletion's own plan is the fresh inventory, AWSDenyAll attached.
    assert DENY_ALL not in [p["PolicyArn"] for p in plan["Items"]["AttachedPolicies"]]
    assert DENY_ALL in [p["PolicyArn"] for p in deletion_plan["Items"]["AttachedPolicies"]]
    assert {k["AccessKeyId"]: k["Status"] for k in plan["Items"]["AccessKeys"]} == dict.fromkeys(
        quarantine["Quarantine"]["Deactivated"]["AccessKeys"], "Active")
    assert {k["Status"] for k in deletion_plan["Items"]["AccessKeys"]} == {"Inactive"}
    # quarantine.json: the audit record's shape for the quarantine phase.
    assert quarantine["Items"] == plan["Items"] and quarantine["UserDeletion"] is None and quarantine["DryRun"] is False
    assert quarantine["Context"] == {"Ticket": "HR-7"} and quarantine["Quarantine"] == record["Quarantine"]
    assert record["Quarantine"]["QuarantinedUntil"] == delete_after
    events = stack.events()
    assert [e["detail-type"] for e in events] == ["IAM User Quarantined", "IAM User Offboarded"]
    for event in events:
        assert event["source"] == "iam-offboard"
        jsonschema.validate(event["detail"], SCHEMA)
    quarantined, offboarded = (e["detail"] for e in events)
    assert quarantined["DeleteAfter"] == delete_after and quarantined["Context"] == {"Ticket": "HR-7"}
    assert quarantined["RecordUri"] == f"s3://{AUDIT_BUCKET}/{at}quarantine.json"
    assert quarantined["Items"]["AccessKeys"] == len(plan["Items"]["AccessKeys"])
    assert offboarded["RecordUri"] == f"s3://{AUDIT_BUCKET}/{at}record.json" and "DeleteAfter" not in offboarded
    assert leftovers(stack.iam, "wes") == {}


def test_the_event_schema_takes_a_quarantined_detail_and_keeps_each_outcome_to_its_own_fields():
    """No stack: the schema itself, on details shaped as the state machine's."""
    validator = jsonschema.Draft202012Validator(SCHEMA)
    items = {"LoginProfile": None, "AccessKeys": 2, "SSHPublicKeys": 0, "SigningCertificates": 0,
             "ServiceSpecificCredentials": 1, "MFADevices": 3, "Groups": 1, "InlinePolicies": 0, "AttachedPolicies": 1}
    at = f"s3://{AUDIT_BUCKET}/{prefix('wes', 'wes-1')}"
    quarantined = {"Outcome": "Quarantined", "UserName": "wes", "UserId": "AIDAEXAMPLE1234567890",
                   "UserArn": f"arn:aws:iam::{ACCOUNT}:user/wes", "Account": ACCOUNT,
                   "ExecutionArn": f"arn:aws:states:us-east-1:{ACCOUNT}:execution:offboard:wes-1",
                   "RecordUri": at + "quarantine.json", "DryRun": False, "Context": None, "Items": items,
                   "DeleteAfter": "2026-12-01T17:00:00Z"}
    assert list(validator.iter_errors(quarantined)) == []

    def invalid(**changes) -> bool:
        detail = copy.deepcopy(quarantined)
        for key, value in changes.items():
            if value is None and key != "Context":
                detail.pop(key)
            else:
                detail[key] = value
        return bool(list(validator.iter_errors(detail)))

    assert invalid(DeleteAfter=None), "a quarantine names its deadline"
    assert invalid(DeleteAfter="2026-12-01 17:00:00"), "UTC, ISO 8601 with T and Z"
    assert invalid(DeleteAfter="2026-12-01T17:00:00+01:00")
    assert invalid(RecordUri=at + "plan.json") and invalid(RecordUri=at + "record.json")
    assert invalid(DryRun=True)
    assert invalid(Items=None), "Items are required outside failures"
    assert invalid(Error="AlreadyQuarantined")
    assert invalid(Outcome="Offboarded"), "DeleteAfter belongs to the Quarantined outcome only"
    assert invalid(Outcome="Offboarded", DeleteAfter=None), "and quarantine.json to it too"
    assert not invalid(Outcome="Offboarded", DeleteAfter=None, RecordUri=at + "record.json")
    assert invalid(Outcome="Restored"), "Restored is an execution output, not an event"
