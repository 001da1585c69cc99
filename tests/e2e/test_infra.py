"""The state machine definition and the SAM template: linters, moto's
CreateStateMachine, least privilege per function, retry/catch rules."""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path

import boto3
import pytest
from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parents[2]
ASL = ROOT / "statemachine" / "offboard.asl.json"
TEMPLATE = ROOT / "infra" / "template.yaml"
STAGE_ACTIONS = json.loads((ROOT / "infra" / "stage-actions.json").read_text())
RETRIED = {"Throttled", "ServiceUnavailable", "Lambda.ServiceException", "Lambda.AWSLambdaException",
           "Lambda.SdkClientException", "Lambda.TooManyRequestsException",
           # A stage timed out while queued behind IAM's rate: every stage is idempotent.
           "Sandbox.Timedout"}
NEVER_RETRIED = {"InvalidInput", "UserNotFound", "ProtectedUser", "AccessDenied", "MfaAuthenticationRequired",
                 "DeleteConflict", "VerificationFailed"}
MUTATING = ("Delete", "Deactivate", "Detach", "Remove")


def definition() -> dict:
    return json.loads(ASL.read_text())


def template() -> dict:
    parsed, matches = decode(str(TEMPLATE))
    assert not matches, matches
    return parsed


def substituted(arn_for=lambda stage: f"arn:aws:lambda:us-east-1:123456789012:function:{stage}") -> str:
    text = ASL.read_text()
    for stage in STAGE_ACTIONS:
        text = text.replace("${%sFunctionArn}" % stage, arn_for(stage))
    assert "${" not in text
    return text


def all_states(states: dict):
    for name, state in states.items():
        yield name, state
        if state["Type"] == "Map":
            yield from all_states(state["ItemProcessor"]["States"])


def asl_validator(path: Path) -> subprocess.CompletedProcess:
    validator = ROOT / "node_modules" / ".bin" / "asl-validator"
    assert validator.exists(), "npm install first (make does it)"
    return subprocess.run([str(validator), "--json-path", str(path)], capture_output=True, text=True)


def test_cfn_lint_passes():
    result = subprocess.run([str(ROOT / ".venv" / "bin" / "cfn-lint"), str(TEMPLATE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_asl_validator_passes_and_would_catch_a_broken_definition(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(substituted())
    result = asl_validator(good)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = definition()
    broken["States"]["GetGroupsAndPolicies"]["Next"] = "NoSuchState"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(broken))
    assert asl_validator(bad).returncode != 0


def test_moto_accepts_the_definition():
    from moto import mock_aws

    with mock_aws():
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        iam = boto3.client("iam", region_name="us-east-1")
        role = iam.create_role(RoleName="offboard-sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        arn = sfn.create_state_machine(name="offboard", definition=substituted(), roleArn=role)["stateMachineArn"]
        assert json.loads(sfn.describe_state_machine(stateMachineArn=arn)["definition"])["StartAt"] == "GetUsername"


def function_statements(resources: dict, logical_id: str) -> list[dict]:
    statements = []
    for policy in resources[logical_id]["Properties"].get("Policies", []):
        assert isinstance(policy, dict) and "Statement" in policy, f"{logical_id}: only inline statements, no managed policies"
        statements += policy["Statement"]
    return statements


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def test_each_function_role_allows_exactly_what_its_stage_calls():
    resources = template()["Resources"]
    functions = {k: v for k, v in resources.items() if v["Type"] == "AWS::Serverless::Function"}
    assert {k.removesuffix("Function") for k in functions} == set(STAGE_ACTIONS)
    for logical_id in functions:
        stage = logical_id.removesuffix("Function")
        statements = function_statements(resources, logical_id)
        allowed = {a for s in statements if s["Effect"] == "Allow" for a in as_list(s["Action"])}
        assert allowed == set(STAGE_ACTIONS[stage]), f"{stage}: {sorted(allowed ^ set(STAGE_ACTIONS[stage]))}"
        for statement in statements:
            assert not any("*" in a for a in as_list(statement["Action"])), statement
            if statement["Effect"] == "Allow":
                for resource in as_list(statement["Resource"]):
                    assert resource != "*", f"{stage}: Resource * in {statement}"
                    text = json.dumps(resource)
                    assert re.search(r":(user|mfa|group)/\*", text), f"{stage}: {text}"


def test_mutating_functions_deny_protected_users():
    resources = template()["Resources"]
    for stage, actions in STAGE_ACTIONS.items():
        user_mutations = {a for a in actions if a.split(":")[1].startswith(MUTATING)} - {"iam:DeleteVirtualMFADevice", "iam:RemoveUserFromGroup"}
        denies = [s for s in function_statements(resources, f"{stage}Function") if s["Effect"] == "Deny"]
        denied = {a for s in denies for a in as_list(s["Action"])}
        assert denied == user_mutations, f"{stage}: {sorted(denied ^ user_mutations)}"
        for statement in denies:
            assert statement["Condition"] == {"StringEqualsIgnoreCase": {"iam:ResourceTag/offboard:protected": "true"}}
    environment = template()["Globals"]["Function"]["Environment"]["Variables"]
    assert environment["OFFBOARD_PROTECTED_TAG_KEY"] == "offboard:protected"


def test_state_machine_invokes_only_the_six_functions():
    machine = template()["Resources"]["OffboardStateMachine"]["Properties"]
    substitutions = machine["DefinitionSubstitutions"]
    assert set(substitutions) == {f"{stage}FunctionArn" for stage in STAGE_ACTIONS}
    placeholders = set(re.findall(r"\$\{(\w+)\}", ASL.read_text()))
    assert placeholders == set(substitutions)
    invoked = {p["LambdaInvokePolicy"]["FunctionName"]["Ref"] for p in machine["Policies"] if "LambdaInvokePolicy" in p}
    assert invoked == {f"{stage}Function" for stage in STAGE_ACTIONS}
    other = [s for p in machine["Policies"] if "Statement" in p for s in p["Statement"]]
    assert all(a.startswith("logs:") for s in other for a in as_list(s["Action"]))
    assert machine["Logging"]["Level"] == "ERROR" and machine["Logging"]["IncludeExecutionData"] is True


def test_config_trigger_yields_the_accepted_input_shape():
    event = template()["Resources"]["OffboardStateMachine"]["Properties"]["Events"]["NonCompliantIamUser"]["Properties"]
    assert event["Pattern"]["detail"]["resourceType"] == ["AWS::IAM::User"]
    assert event["Pattern"]["detail"]["newEvaluationResult"]["complianceType"] == ["NON_COMPLIANT"]
    assert event["State"] == {"Fn::If": ["HasConfigRule", "ENABLED", "DISABLED"]}
    rendered = event["InputTransformer"]["InputTemplate"]
    for placeholder in ("userId", "ruleName", "eventId"):
        rendered = rendered.replace(f"<{placeholder}>", json.dumps("AIDAEXAMPLE1234567890" if placeholder == "userId" else "x"))
    assert set(json.loads(rendered)) == {"IAMUserId", "Context"}


def test_every_task_retries_transient_errors_with_jitter_and_never_the_others():
    for name, state in all_states(definition()["States"]):
        if state["Type"] != "Task":
            continue
        retried = set()
        for retrier in state["Retry"]:
            retried |= set(retrier["ErrorEquals"])
            assert retrier["JitterStrategy"] == "FULL" and retrier["MaxDelaySeconds"] <= 120, name
            assert 1 < retrier["MaxAttempts"] <= 20 and retrier["BackoffRate"] >= 1.5, name
        assert retried == RETRIED, f"{name}: {retried ^ RETRIED}"
        assert not retried & NEVER_RETRIED


def test_mfa_choice_uses_the_cores_virtual_pattern():
    core_pattern = re.search(r'VIRTUAL_MFA_SERIAL_PATTERN: &str = "([^"]+)"', (ROOT / "crates/core/src/mfa.rs").read_text())[1]
    states = definition()["States"]["RemoveMFADevices"]["ItemProcessor"]["States"]
    choice = states["RouteBySerial"]
    assert choice["Choices"] == [{"Variable": "$.MFADevice.SerialNumber", "StringMatches": core_pattern,
                                  "Next": "DeactivateAndDeleteVirtualDevice"}]
    assert states["DeactivateAndDeleteVirtualDevice"]["Parameters"]["HandledAs"] == "Virtual"
    assert states[choice["Default"]]["Parameters"]["HandledAs"] == "NonVirtual"


def test_delete_conflict_loops_back_at_most_three_rounds_and_other_failures_fail():
    states = definition()["States"]
    catches = states["DeleteIAMUserAndVerify"]["Catch"]
    assert catches[0]["ErrorEquals"] == ["DeleteConflict"]
    check = states[catches[0]["Next"]]
    assert check["Choices"][0] == {"Variable": "$.Round", "NumericLessThan": 3, "Next": "NextRound"}
    assert states["NextRound"]["Next"] == "GetKeysCertificatesMfaAndCredentials"
    assert states["NextRound"]["Parameters"]["Round.$"] == "States.MathAdd($.Round, 1)"
    for name, state in states.items():
        if state["Type"] in ("Task", "Map") and name != "GetUsername":
            last = state["Catch"][-1]
            assert last["ErrorEquals"] == ["States.ALL"] and last["Next"] == "OffboardingFailed", name
    # GetUsername's input may not be an object: its failure replaces the state.
    assert states["GetUsername"]["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$", "Next": "GetUsernameFailed"}]
    assert states["GetUsernameFailed"] == {**states["GetUsernameFailed"], "Type": "Fail", "ErrorPath": "$.Error", "CausePath": "$.Cause"}
    assert states["OffboardingFailed"] == {**states["OffboardingFailed"], "Type": "Fail",
                                          "ErrorPath": "$.Failure.Error", "CausePath": "$.Failure.Cause"}


def test_dry_run_plan_has_the_audit_record_shape():
    plan = definition()["States"]["DryRunPlan"]["Parameters"]
    fields = {key.removesuffix(".$") for key in plan}
    assert fields == {"User", "DryRun", "Context", "Items", "UserDeletion", "Rounds", "Timings"}
    record_fields = re.findall(r"pub (\w+):", (ROOT / "crates/core/src/record.rs").read_text().split("pub struct AuditRecord")[1].split("}")[0])
    assert fields == {"".join(part.title() for part in f.split("_")) for f in record_fields}
