"""The target-account template (infra/target-account.yaml, deployed to each
member account as a StackSet): a role per stage that can do in that account
exactly what the stage's function can do in the hub, under the same
protection Deny, assumable only by that stage's function role from inside the
organization. Checked against the hub template, not against a copy."""

from __future__ import annotations

import fnmatch
import re
import subprocess
from pathlib import Path

from cfnlint.decode import decode

from test_infra import ALLOWLIST, STAGE_ACTIONS, as_list, function_statements, lint_findings, render, template

ROOT = Path(__file__).resolve().parents[2]
TARGET = ROOT / "infra" / "target-account.yaml"
#: IAM role names are at most 64 characters (IAM API reference, CreateRole: RoleName, length 1-64).
MAX_ROLE_NAME = 64


def target() -> dict:
    parsed, matches = decode(str(TARGET))
    assert not matches, matches
    return parsed


def role_statements(resources: dict, stage: str) -> list[dict]:
    [policy] = resources[f"{stage}Role"]["Properties"]["Policies"]
    return policy["PolicyDocument"]["Statement"]


def test_cfn_lint_passes():
    result = subprocess.run([str(ROOT / ".venv" / "bin" / "cfn-lint"), str(TARGET)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_stage_role_allows_there_exactly_its_hub_functions_iam_statements_protection_deny_included():
    hub, roles = template()["Resources"], target()["Resources"]
    assert {k.removesuffix("Role") for k, v in roles.items() if v["Type"] == "AWS::IAM::Role"} == set(STAGE_ACTIONS)
    for stage, actions in STAGE_ACTIONS.items():
        iam_only = [s for s in function_statements(hub, f"{stage}Function")
                    if all(a.startswith("iam:") for a in as_list(s["Action"]))]
        assert role_statements(roles, stage) == iam_only, stage
        allowed = {a for s in iam_only if s["Effect"] == "Allow" for a in as_list(s["Action"])}
        assert allowed == set(actions), stage


#: A hub and a deployment of it, as the tests below name them.
HUB_ACCOUNT, OTHER_ACCOUNT, ORGANIZATION = "111122223333", "444455556666", "o-a1b2c3d4e5"


def hub_role(stage: str, name: str = "hub-fn-role-1A2B3C4D", account: str = HUB_ACCOUNT, stack: str = "iam-offboard") -> str:
    """A role ARN of the hub's function roles' shape: SAM-style generated name
    under the stage's path (the hub's <Stage>FunctionRole Path)."""
    return f"arn:aws:iam::{account}:role/iam-offboard/{stack}/{stage}/{name}"


def substitute(node, values: dict):
    """The target template's intrinsics (Ref, Fn::Sub) with parameter values."""
    if isinstance(node, dict):
        if set(node) == {"Ref"}:
            return values[node["Ref"]]
        if set(node) == {"Fn::Sub"}:
            return re.sub(r"\$\{([^}]+)\}", lambda m: values[m[1]], node["Fn::Sub"])
        return {key: substitute(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [substitute(value, values) for value in node]
    return node


def trusts(statement: dict, caller_role_arn: str, caller_org: str | None) -> bool:
    """Whether an Allow sts:AssumeRole statement of a trust policy admits a
    session of the caller role (IAM User Guide, "AWS JSON policy elements:
    Principal": a role ARN principal is that one role, stored as its unique
    ID, "You cannot use a wildcard to match part of a principal name or ARN";
    an account principal ("arn:...:root") delegates to every principal of the
    account. Conditions: aws:PrincipalArn is the role ARN for a role session,
    aws:PrincipalOrgID the caller's organization, absent outside one, "AWS
    global condition context keys"; ARN operators match each of the six
    colon-separated parts with * wildcards, "Condition operators")."""
    assert statement["Effect"] == "Allow" and statement["Action"] == "sts:AssumeRole"
    account = caller_role_arn.split(":")[4]
    admitted = False
    for principal in as_list(statement["Principal"]["AWS"]):
        if principal.endswith(":root") or re.fullmatch(r"\d{12}", principal):
            admitted |= principal.split(":")[4] == account if ":" in principal else principal == account
        else:
            assert "*" not in principal, "IAM refuses a wildcard in a principal ARN"
            admitted |= principal == caller_role_arn
    context = {"aws:PrincipalArn": caller_role_arn, "aws:PrincipalOrgID": caller_org}
    for operator, keys in statement.get("Condition", {}).items():
        for key, wanted in keys.items():
            value = context[key]
            if operator == "StringEquals":
                admitted &= value is not None and value in as_list(wanted)
            elif operator == "ArnLike":
                admitted &= value is not None and any(
                    all(fnmatch.fnmatchcase(part, pattern) for part, pattern in zip(value.split(":", 5), w.split(":", 5)))
                    for w in as_list(wanted))
            else:
                raise AssertionError(f"condition operator {operator} is not evaluated here")
    return admitted


def trust_statement(parsed: dict, stage: str, values: dict) -> dict:
    [statement] = parsed["Resources"][f"{stage}Role"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    return substitute(statement, values)


def deployed_values(parsed: dict) -> dict:
    """The target stack's parameters as the hub's outputs fill them (and
    the parameters the old design took, so that it can be evaluated too)."""
    return {"AWS::Partition": "aws", "OrganizationId": ORGANIZATION, "HubAccountId": HUB_ACCOUNT,
            "HubStackName": "iam-offboard", **{f"{stage}FunctionRoleArn": hub_role(stage) for stage in STAGE_ACTIONS}}


def test_each_role_trusts_exactly_its_stages_hub_function_role_by_arn_from_inside_the_organization():
    parsed, hub = target(), template()
    for stage in STAGE_ACTIONS:
        parameter = parsed["Parameters"][f"{stage}FunctionRoleArn"]
        assert parameter["Type"] == "String" and "Default" not in parameter, stage
        [statement] = parsed["Resources"][f"{stage}Role"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Principal"] == {"AWS": {"Ref": f"{stage}FunctionRoleArn"}}, stage
        assert statement["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": {"Ref": "OrganizationId"}}}, stage
        # The hub outputs it under the parameter's name, from the role its function runs as.
        assert hub["Outputs"][f"{stage}FunctionRoleArn"]["Value"] == {"Fn::GetAtt": [f"{stage}FunctionRole", "Arn"]}, stage
        # Each pattern takes its own stage's role path only: two ARNs cannot be swapped.
        pattern = parameter["AllowedPattern"]
        assert re.fullmatch(pattern, hub_role(stage)), stage
        assert re.fullmatch(pattern, hub_role(stage).replace("arn:aws:", "arn:aws-us-gov:")), stage
        for other in STAGE_ACTIONS:
            if other != stage:
                assert not re.fullmatch(pattern, hub_role(other)), (stage, other)
        assert not re.fullmatch(pattern, f"arn:aws:sts::{HUB_ACCOUNT}:assumed-role/x/{stage}"), "a session is no principal"
    assert set(parsed["Parameters"]) == {f"{stage}FunctionRoleArn" for stage in STAGE_ACTIONS} | {
        "OrganizationId", "TargetRoleName"}, "nothing left that widens the trust to a path or an account"


def test_a_role_of_another_name_on_the_path_or_of_the_name_elsewhere_is_not_trusted():
    """The trust as evaluated: before, any role on /iam-offboard/<hub stack>/<Stage>/
    in the hub account matched, whoever created it (a same-named stack in
    another region puts its roles on the same path). Now only the one role."""
    parsed = target()
    values = deployed_values(parsed)
    for stage in STAGE_ACTIONS:
        statement = trust_statement(parsed, stage, values)
        assert trusts(statement, hub_role(stage), ORGANIZATION), stage
        refused = {
            "another name on the same path": hub_role(stage, name="created-by-someone-else"),
            "the same-named stack's role in another region": hub_role(stage, name="hub-fn-role-9Z8Y7X6W"),
            "the same name in another account": hub_role(stage, account=OTHER_ACCOUNT),
            "another stage's role": hub_role(next(s for s in STAGE_ACTIONS if s != stage)),
            "another stack's role": hub_role(stage, stack="iam-offboard-staging"),
        }
        for case, arn in refused.items():
            assert not trusts(statement, arn, ORGANIZATION), f"{stage}: {case} is trusted"
        assert not trusts(statement, hub_role(stage), None), f"{stage}: a hub outside the organization"
        assert not trusts(statement, hub_role(stage), "o-zzzzzzzzzz"), f"{stage}: a hub in another organization"
    # The evaluation itself: the former trust (the hub account's root narrowed by
    # an ArnLike on the path) admitted a role of any name on that path.
    former = {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": f"arn:aws:iam::{HUB_ACCOUNT}:root"},
              "Condition": {"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{HUB_ACCOUNT}:role/iam-offboard/iam-offboard/GetUsername/*"},
                            "StringEquals": {"aws:PrincipalOrgID": ORGANIZATION}}}
    assert trusts(former, hub_role("GetUsername", name="created-by-someone-else"), ORGANIZATION)
    assert not trusts(former, hub_role("GetUsername", account=OTHER_ACCOUNT), ORGANIZATION)


def test_the_hub_outputs_the_role_each_function_runs_as():
    """What the outputs name is the role the function runs as, after SAM's
    transform, on the stage's path."""
    from sam_translate import translated

    resources = translated()["Resources"]
    for stage in STAGE_ACTIONS:
        role = resources[f"{stage}FunctionRole"]
        assert role["Type"] == "AWS::IAM::Role", stage
        assert role["Properties"]["Path"] == {"Fn::Sub": f"/iam-offboard/${{AWS::StackName}}/{stage}/"}, stage
        assert resources[f"{stage}Function"]["Properties"]["Role"] == {"Fn::GetAtt": [f"{stage}FunctionRole", "Arn"]}, stage


def test_the_hub_may_assume_each_stages_own_target_role_only_and_both_templates_share_its_name():
    hub, parsed = template(), target()
    for parameter in ("TargetRoleName",):
        mine, theirs = hub["Parameters"][parameter], parsed["Parameters"][parameter]
        assert (mine["Default"], mine["AllowedPattern"]) == (theirs["Default"], theirs["AllowedPattern"])
    longest = max(len(stage) for stage in STAGE_ACTIONS)
    most = int(re.search(r"\{1,(\d+)\}", parsed["Parameters"]["TargetRoleName"]["AllowedPattern"])[1])
    assert most + 1 + longest <= MAX_ROLE_NAME, "every <TargetRoleName>-<Stage> is a valid role name"
    # Without an organization the functions name no target role: another account is refused.
    assert hub["Globals"]["Function"]["Environment"]["Variables"]["OFFBOARD_TARGET_ROLE_NAME"] == {
        "Fn::If": ["HasOrganization", {"Ref": "TargetRoleName"}, ""]}
    for stage in STAGE_ACTIONS:
        assert parsed["Resources"][f"{stage}Role"]["Properties"]["RoleName"] == {"Fn::Sub": f"${{TargetRoleName}}-{stage}"}
        raw = hub["Resources"][f"{stage}FunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        [conditional] = [s["Fn::If"] for s in raw if set(s) == {"Fn::If"} and s["Fn::If"][1].get("Sid") == "AssumeTargetRole"]
        assert conditional[0] == "HasOrganization" and conditional[2] == {"Ref": "AWS::NoValue"}, stage
        assert conditional[1] == {
            "Sid": "AssumeTargetRole", "Effect": "Allow", "Action": "sts:AssumeRole",
            "Resource": {"Fn::Sub": f"arn:${{AWS::Partition}}:iam::*:role/${{TargetRoleName}}-{stage}"},
            "Condition": {"StringEquals": {"aws:ResourceOrgID": {"Ref": "OrganizationId"}}},
        }, stage
        granted = [s for s in function_statements(hub["Resources"], f"{stage}Function")
                   if "sts:AssumeRole" in as_list(s["Action"])]
        assert len(granted) == 1, f"{stage} may assume nothing else"


def test_the_target_roles_pass_the_authorization_reference_linter_with_the_hubs_allowlist():
    resources = target()["Resources"]
    allowed = {(entry["Resource"].removesuffix("FunctionRole"), entry["Issue"],
                tuple(sorted(a.lower() for a in entry["Actions"] if not a.startswith("sts:"))))
               for entry in ALLOWLIST}
    documents = [(stage, render(resources[f"{stage}Role"]["Properties"]["Policies"][0]["PolicyDocument"]))
                 for stage in STAGE_ACTIONS]
    findings = lint_findings(documents)
    assert findings <= allowed, f"new findings: {sorted(findings - allowed)}"
