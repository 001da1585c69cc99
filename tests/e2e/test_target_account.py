"""The target-account template (infra/target-account.yaml, deployed to each
member account as a StackSet): a role per stage that can do in that account
exactly what the stage's function can do in the hub, under the same
protection Deny, assumable only by that stage's function role from inside the
organization. Checked against the hub template, not against a copy."""

from __future__ import annotations

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


def test_each_role_trusts_only_its_own_stages_hub_function_role_from_inside_the_organization():
    hub, parsed = template()["Resources"], target()
    for stage in STAGE_ACTIONS:
        document = parsed["Resources"][f"{stage}Role"]["Properties"]["AssumeRolePolicyDocument"]
        [trust] = document["Statement"]
        path = f"/iam-offboard/${{AWS::StackName}}/{stage}/"
        assert hub[f"{stage}Function"]["Properties"]["RolePath"] == {"Fn::Sub": path}, stage
        assert trust["Effect"] == "Allow" and trust["Action"] == "sts:AssumeRole", stage
        assert trust["Principal"] == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${HubAccountId}:root"}}
        # The hub's account root as principal, narrowed by the global condition
        # keys (IAM User Guide, "AWS global condition context keys":
        # aws:PrincipalArn, aws:PrincipalOrgID) to the one function role.
        assert trust["Condition"] == {
            "ArnLike": {"aws:PrincipalArn": {"Fn::Sub": "arn:${AWS::Partition}:iam::${HubAccountId}:role"
                                                       + path.replace("${AWS::StackName}", "${HubStackName}") + "*"}},
            "StringEquals": {"aws:PrincipalOrgID": {"Ref": "OrganizationId"}},
        }, stage


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
        raw = hub["Resources"][f"{stage}Function"]["Properties"]["Policies"][0]["Statement"]
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
    allowed = {(entry["Resource"].removesuffix("Function"), entry["Issue"],
                tuple(sorted(a.lower() for a in entry["Actions"] if not a.startswith("sts:"))))
               for entry in ALLOWLIST}
    documents = [(stage, render(resources[f"{stage}Role"]["Properties"]["Policies"][0]["PolicyDocument"]))
                 for stage in STAGE_ACTIONS]
    findings = lint_findings(documents)
    assert findings <= allowed, f"new findings: {sorted(findings - allowed)}"
