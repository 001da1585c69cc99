"""Least privilege, end to end: every IAM call the seven real functions make
while the state machine offboards users holding every credential type (one
of them through a quarantine's grace period) is checked against the function's policy in infra/template.yaml, resource by
resource, using AWS's Service Authorization Reference (SAR) as PyPI
`parliament` ships it (parliament/iam_definition.json), not action names.

For each call in the emulator's call log (``Action``, ``AccessKeyId``,
``Params`` = the request's form parameters), the SAR names the resource type
the action is authorized on (user, group, mfa, policy, or none). From it and
the parameters we build the ARN IAM authorizes the call against:

- user   -> arn:aws:iam::<account>:user/<path><UserName>
- group  -> arn:aws:iam::<account>:group/<GroupName>
- mfa    -> the SerialNumber (for a virtual device it is the device's ARN:
            "For virtual MFA devices, the serial number is the device ARN",
            IAM API reference, DeactivateMFADevice/DeleteVirtualMFADevice)
- policy -> the PolicyArn
- none   -> "*" (the action supports no resource-level permissions)

and assert that one of the calling function's Allow statements names the
action on a Resource pattern matching that ARN, its Condition (if any) holding
for the request (``condition_holds``: QuarantineUser may attach AWSDenyAll
only, and tag its own key only), and that every mutation
(SAR access level Write or Permissions management) on a *user* resource is
also under the function's protection Deny, whose condition uses the global
key aws:ResourceTag/offboard:protected (IAM User Guide, "Controlling access
to and for IAM users and roles using tags": access_iam-tags.html; the SAR
lists aws:ResourceTag/${TagKey} for the iam user resource type).
"""

from __future__ import annotations

import datetime
import fnmatch
import json
import re
import sys
from pathlib import Path

import pytest
from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "emulator"))

from lambda_host import BIN_DIR, FUNCTIONS, access_key_for  # noqa: E402
from seed import ACCOUNT, leftovers, seed_user  # noqa: E402
from stack import Stack  # noqa: E402

TEMPLATE = ROOT / "infra" / "template.yaml"
STAGE_ACTIONS = json.loads((ROOT / "infra" / "stage-actions.json").read_text())
STAGE_BY_KEY = {access_key_for(stage): stage for stage in FUNCTIONS}
# What every function asks Step Functions before any IAM call: that a running
# execution of the deployment invoked it (crates/core/src/workflow.rs).
WORKFLOW_CHECK_ACTIONS = {"states:DescribeExecution", "states:GetExecutionHistory"}
PARTITION = "aws"
REGION = "us-east-1"
PROTECTION = {"StringEqualsIgnoreCase": {"aws:ResourceTag/offboard:protected": "true"}}
# SAR access levels that change something (the SAR's own classification).
MUTATION_LEVELS = {"Write", "Permissions management", "Tagging"}


def core_constant(name: str, module: str = "quarantine.rs") -> str:
    """A string constant of a core module (what the function sends)."""
    return re.search(rf'pub const {name}: &str = "([^"]+)"', (ROOT / "crates/core/src" / module).read_text())[1]


# --- the Service Authorization Reference, as parliament ships it ------------

def sar_privilege(action: str) -> tuple[dict, dict]:
    """(privilege entry, {resource type: ARN format}) for "service:Action"."""
    from parliament import iam_definition

    prefix, name = action.split(":", 1)
    service = next(s for s in iam_definition if s["prefix"] == prefix)
    privilege = next((p for p in service["privileges"] if p["privilege"] == name), None)
    assert privilege is not None, f"{action} is not in the Service Authorization Reference"
    return privilege, {r["resource"]: r["arn"] for r in service["resources"]}


def sar_resource_types(action: str) -> list[str]:
    """The resource types the action is authorized on; [] = none ("*").
    An entry with an empty type only lists condition keys (e.g. iam:PolicyARN
    for DetachUserPolicy), it is no resource."""
    privilege, _ = sar_privilege(action)
    return [r["resource_type"].rstrip("*") for r in privilege["resource_types"] if r["resource_type"]]


def is_mutation(action: str) -> bool:
    return sar_privilege(action)[0]["access_level"] in MUTATION_LEVELS


def arn_from_sar(action: str, resource_type: str, **values: str) -> str:
    """The SAR's ARN format for the type, its ${...} placeholders filled."""
    arn = sar_privilege(action)[1][resource_type]
    arn = arn.replace("${Partition}", PARTITION).replace("${Account}", ACCOUNT).replace("${Region}", REGION)
    for placeholder, value in values.items():
        arn = arn.replace("${%s}" % placeholder, value)
    assert "${" not in arn, f"{action}: unfilled {arn}"
    return arn


def acted_on(action: str, params: dict, paths: dict[str, str]) -> list[str]:
    """The ARN(s) IAM authorizes this call against, from the SAR's resource
    type for the action and the request's parameters. A call acts on one
    resource; where the SAR lists alternatives (DeleteVirtualMFADevice: mfa or
    sms-mfa) the serial decides which."""
    types = sar_resource_types(action)
    if not types:
        return ["*"]
    if "user" in types:
        # Without UserName these actions act on the caller ("If you do not
        # specify a user name, IAM determines the user name implicitly based on
        # the AWS access key ID used to sign the request": IAM API reference,
        # GetUser); a stage always names the user it works on.
        assert "UserName" in params, f"{action} without UserName acts on the caller: {params}"
        name = params["UserName"]
        path = paths.get(name.lower(), "/")
        return [arn_from_sar(action, "user", UserNameWithPath=path.lstrip("/") + name)]
    if "group" in types:
        return [arn_from_sar(action, "group", GroupNameWithPath=params["GroupName"])]
    if "mfa" in types or "sms-mfa" in types:
        serial = params["SerialNumber"]
        virtual = re.fullmatch(r"arn:aws[a-z-]*:iam::\d{12}:(sms-mfa|mfa)/(.+)", serial)
        assert virtual, f"{action} on {serial!r}: only a virtual device's serial is an mfa resource"
        assert virtual[1] in types, f"{action}: {virtual[1]} is not a resource type of it in the SAR"
        return [serial]
    if "policy" in types:
        return [params["PolicyArn"]]
    if "execution" in types:
        # The local stack names its machines offboard and offboard-batch; the
        # template names them <stack name>-offboard and <stack name>-offboard-batch.
        prefix, machine, name = params["executionArn"].rsplit(":", 2)
        return [f"{prefix}:{PSEUDO['AWS::StackName']}-{machine}:{name}"]
    raise AssertionError(f"{action}: resource types {types} not handled here")


# --- the template's policies, rendered ---------------------------------------

PSEUDO = {"AWS::Partition": PARTITION, "AWS::AccountId": ACCOUNT, "AWS::Region": REGION,
          "AWS::StackName": "iam-offboard", "AWS::URLSuffix": "amazonaws.com"}


def render(node, template: dict):
    """Resolves the intrinsics a policy statement may hold to concrete values."""
    if isinstance(node, list):
        return [render(item, template) for item in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Fn::If"}:
        # A statement granted under a condition (in an organization) counts
        # as granted: its first branch.
        return render(node["Fn::If"][1], template)
    if set(node) == {"Ref"}:
        name = node["Ref"]
        if name in PSEUDO:
            return PSEUDO[name]
        if name in template.get("Parameters", {}):
            return template["Parameters"][name].get("Default", "")
        resource = template["Resources"][name]
        if resource["Type"] == "AWS::Logs::LogGroup":
            return render(resource["Properties"]["LogGroupName"], template)
        return render(resource["Properties"].get("FunctionName", f"iam-offboard-{name}"), template)
    if set(node) == {"Fn::Sub"}:
        text, extra = (node["Fn::Sub"], {}) if isinstance(node["Fn::Sub"], str) else node["Fn::Sub"]

        def value(match):
            name = match[1]
            if name in extra:
                return str(render(extra[name], template))
            if "." in name:
                return str(render({"Fn::GetAtt": name.split(".", 1)}, template))
            return str(render({"Ref": name}, template))

        return re.sub(r"\$\{([^}!]+)\}", value, text)
    if set(node) == {"Fn::GetAtt"}:
        name, attribute = node["Fn::GetAtt"] if isinstance(node["Fn::GetAtt"], list) else node["Fn::GetAtt"].split(".", 1)
        assert attribute == "Arn", node
        kind = template["Resources"][name]["Type"]
        if kind == "AWS::Serverless::Function":
            return f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{render({'Ref': name}, template)}"
        if kind == "AWS::Logs::LogGroup":
            group = template["Resources"][name]["Properties"].get("LogGroupName", f"iam-offboard-{name}")
            return f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:{render(group, template)}:*"
        if kind == "AWS::S3::Bucket":
            return f"arn:{PARTITION}:s3:::iam-offboard-{name.lower()}"
        if kind == "AWS::DynamoDB::Table":
            return f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/iam-offboard-{name}"
        raise AssertionError(f"no sample ARN for {kind}")
    return {key: render(value, template) for key, value in node.items()}


def function_policies() -> dict[str, list[dict]]:
    template, matches = decode(str(TEMPLATE))
    assert not matches, matches
    policies = {}
    for stage in STAGE_ACTIONS:
        statements = []
        # The function's own role (infra/template.yaml: <Stage>FunctionRole).
        function = template["Resources"][f"{stage}Function"]["Properties"]
        assert function["Role"] == {"Fn::GetAtt": [f"{stage}FunctionRole", "Arn"]}, stage
        role = template["Resources"][f"{stage}FunctionRole"]["Properties"]
        assert "ManagedPolicyArns" not in role, f"{stage}: inline statements only"
        for policy in role["Policies"]:
            statements += render(policy["PolicyDocument"]["Statement"], template)
        policies[stage] = statements
    return policies


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def names(statement: dict, action: str) -> bool:
    return any(fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in as_list(statement["Action"]))


def matches(statement: dict, arn: str) -> bool:
    # IAM matches a Resource pattern against the ARN, * and ? as wildcards that
    # may span "/" (IAM User Guide, "IAM JSON policy elements: Resource").
    return any(fnmatch.fnmatchcase(arn, pattern) for pattern in as_list(statement["Resource"]))


def request_context(key: str, params: dict) -> list[str] | None:
    """The values a condition key has for this request (None: not in the
    request context), from the request's form parameters."""
    if key == "iam:PolicyARN":
        # Service Authorization Reference (IAM): iam:PolicyARN filters by the
        # ARN of the policy the request names, AttachUserPolicy's PolicyArn.
        return [params["PolicyArn"]] if "PolicyArn" in params else None
    if key == "aws:TagKeys":
        # IAM User Guide, "Single-valued vs. multivalued context keys": "when you
        # tag resources in AWS, you can include multiple tag key-value pairs in a
        # single request. Therefore, aws:TagKeys is a multivalued context key."
        # The query protocol sends them as Tags.member.N.Key.
        tag_keys = [value for name, value in sorted(params.items()) if re.fullmatch(r"Tags\.member\.\d+\.Key", name)]
        return tag_keys or None
    raise AssertionError(f"condition key {key} is not evaluated here: add it to request_context")


def arn_matches(pattern: str, arn: str) -> bool:
    # IAM User Guide, "IAM JSON policy elements: Condition operators", ARN
    # condition operators: case-sensitive; each of the six colon-delimited
    # components is checked separately and may hold * and ? wildcards.
    patterns, parts = pattern.split(":", 5), arn.split(":", 5)
    return len(patterns) == len(parts) == 6 and all(fnmatch.fnmatchcase(p, w) for w, p in zip(patterns, parts))


def condition_holds(condition: dict, params: dict) -> bool:
    """Every operator of the Condition block holds for the request (IAM ANDs
    them). Only the operators this project's Allow statements use are known;
    any other fails loudly rather than being assumed true."""
    for operator, keys in condition.items():
        for key, wanted in keys.items():
            values, wanted = request_context(key, params), as_list(wanted)
            if operator == "ArnEquals":
                # Same page: "If the key that you specify in a policy condition is
                # not present in the request context, the values do not match and
                # the condition is false."
                holds = values is not None and all(any(arn_matches(w, v) for w in wanted) for v in values)
            elif operator == "ForAllValues:StringEquals":
                # IAM User Guide, "Multivalued context key examples": "every value
                # in the request context must match at least one value in the
                # policy"; it "also returns true if there are no context keys in
                # the request".
                holds = values is None or all(v in wanted for v in values)
            elif operator == "Null":
                # "Null": "false" = the key is present in the request context.
                holds = (values is None) == (wanted == ["true"])
            else:
                raise AssertionError(f"condition operator {operator} is not evaluated here")
            if not holds:
                return False
    return True


def allowed(statements: list[dict], action: str, arn: str, params: dict | None = None) -> bool:
    return any(s["Effect"] == "Allow" and names(s, action) and matches(s, arn)
               and condition_holds(s.get("Condition", {}), params or {})
               for s in statements)


def denied_when_protected(statements: list[dict], action: str, arn: str) -> bool:
    return any(s["Effect"] == "Deny" and s.get("Condition") == PROTECTION and names(s, action) and matches(s, arn)
               for s in statements)


def check_call(policies: dict[str, list[dict]], stage: str, call: dict, paths: dict[str, str],
               stage_actions: dict[str, list[str]] = STAGE_ACTIONS) -> list[str]:
    """What is wrong with one observed call, [] if nothing."""
    action = f"{call.get('Service') or 'iam'}:{call['Action']}"
    if action == "sts:GetCallerIdentity":
        # STS API reference, GetCallerIdentity: "No permissions are required to
        # perform this operation" (an explicit deny cannot block it either).
        return []
    problems = []
    if action not in stage_actions[stage] and action not in WORKFLOW_CHECK_ACTIONS:
        problems.append(f"{stage} called {action}, not in infra/stage-actions.json")
    for arn in acted_on(action, call["Params"], paths):
        if not allowed(policies[stage], action, arn, call["Params"]):
            problems.append(f"{stage}: no Allow for {action} on {arn}")
        types = sar_resource_types(action)
        if "user" in types and is_mutation(action) and not denied_when_protected(policies[stage], action, arn):
            problems.append(f"{stage}: {action} on {arn} is a user mutation outside the protection Deny")
    return problems


# --- the SAR-based check itself, without the stack ----------------------------

def test_the_resource_arn_comes_from_the_authorization_reference():
    paths = {"alice": "/engineering/"}
    assert acted_on("iam:ListUsers", {"MaxItems": "1000"}, paths) == ["*"]
    assert acted_on("iam:DeleteAccessKey", {"UserName": "alice", "AccessKeyId": "AKIA1"}, paths) == [
        f"arn:aws:iam::{ACCOUNT}:user/engineering/alice"]
    assert acted_on("iam:RemoveUserFromGroup", {"UserName": "alice", "GroupName": "ops"}, paths) == [
        f"arn:aws:iam::{ACCOUNT}:group/ops"]
    serial = f"arn:aws:iam::{ACCOUNT}:mfa/alice-phone"
    assert acted_on("iam:DeleteVirtualMFADevice", {"SerialNumber": serial}, paths) == [serial]
    # DeactivateMFADevice is authorized on the user, not on the device.
    assert acted_on("iam:DeactivateMFADevice", {"UserName": "alice", "SerialNumber": serial}, paths) == [
        f"arn:aws:iam::{ACCOUNT}:user/engineering/alice"]
    with pytest.raises(AssertionError, match="virtual device"):
        acted_on("iam:DeleteVirtualMFADevice", {"SerialNumber": "GAKT00000001"}, paths)
    with pytest.raises(AssertionError, match="acts on the caller"):
        acted_on("iam:GetUser", {}, paths)


def test_the_check_rejects_a_policy_scoped_by_action_name_only():
    """The class of bug: ListUsers granted on user/* never works on real AWS
    (it supports no resource-level permissions), and a user mutation left
    outside the protection Deny."""
    scoped = [{"Effect": "Allow", "Action": ["iam:ListUsers", "iam:GetUser"], "Resource": f"arn:aws:iam::{ACCOUNT}:user/*"}]
    call = {"Service": "iam", "Action": "ListUsers", "Params": {"MaxItems": "1000"}}
    assert check_call({"GetUsername": scoped}, "GetUsername", call, {},
                      {"GetUsername": ["iam:ListUsers", "iam:GetUser"]}) == ["GetUsername: no Allow for iam:ListUsers on *"]
    delete = [{"Effect": "Allow", "Action": "iam:DeleteUser", "Resource": f"arn:aws:iam::{ACCOUNT}:user/*"}]
    call = {"Service": "iam", "Action": "DeleteUser", "Params": {"UserName": "bob"}}
    assert check_call({"DeleteIAMUserAndVerify": delete}, "DeleteIAMUserAndVerify", call, {},
                      {"DeleteIAMUserAndVerify": ["iam:DeleteUser"]}) == [
        f"DeleteIAMUserAndVerify: iam:DeleteUser on arn:aws:iam::{ACCOUNT}:user/bob is a user mutation outside the protection Deny"]
    # With the Deny, and an action the stage does not declare:
    delete.append({"Effect": "Deny", "Action": "iam:DeleteUser", "Resource": f"arn:aws:iam::{ACCOUNT}:user/*", "Condition": PROTECTION})
    assert check_call({"DeleteIAMUserAndVerify": delete}, "DeleteIAMUserAndVerify", call, {},
                      {"DeleteIAMUserAndVerify": ["iam:DeleteUser"]}) == []
    assert check_call({"DeleteIAMUserAndVerify": delete}, "DeleteIAMUserAndVerify", call, {},
                      {"DeleteIAMUserAndVerify": []})[0].startswith("DeleteIAMUserAndVerify called iam:DeleteUser, not in")


def test_the_template_passes_the_check_for_every_declared_action():
    """Without the stack: one sample call per declared action, parameters as
    the functions send them, against the template as it is."""
    policies = function_policies()
    serial = f"arn:aws:iam::{ACCOUNT}:mfa/alice-phone"
    # The policy a quarantine attaches (and the deletion after it detaches), the tag it sets.
    sample = {"UserName": "alice", "GroupName": "ops", "SerialNumber": serial, "PolicyName": "p",
              "PolicyArn": DENY_ALL, "AccessKeyId": "AKIAEXAMPLE",
              "Tags.member.1.Key": core_constant("QUARANTINE_TAG_KEY"), "Tags.member.1.Value": "2026-12-01T17:00:00Z"}
    # The tag the MFA task marks a virtual device with (crates/core/src/mfa.rs).
    mark = {**sample, "Tags.member.1.Key": core_constant("TAKEN_FROM_TAG", "mfa.rs"), "Tags.member.1.Value": "AIDAEXAMPLE"}
    problems = []
    for stage, actions in STAGE_ACTIONS.items():
        for action in actions:
            service, name = action.split(":")
            params = {} if name == "ListUsers" else mark if name == "TagMFADevice" else sample
            problems += check_call(policies, stage, {"Service": service, "Action": name, "Params": params},
                                   {"alice": "/engineering/"})
    assert problems == [], "\n".join(problems)


# --- QuarantineUser: AttachUserPolicy for AWSDenyAll only, TagUser for its key only ---

DENY_ALL = f"arn:{PARTITION}:iam::aws:policy/{core_constant('DENY_ALL_POLICY_NAME')}"


def test_the_condition_evaluation_fails_loudly_on_what_it_does_not_know():
    with pytest.raises(AssertionError, match="operator StringLike"):
        condition_holds({"StringLike": {"aws:TagKeys": "offboard:*"}}, {"Tags.member.1.Key": "offboard:x"})
    with pytest.raises(AssertionError, match="condition key aws:RequestTag/team"):
        condition_holds({"StringEquals": {"aws:RequestTag/team": "x"}}, {})
    assert arn_matches("arn:aws:iam::*:policy/*", "arn:aws:iam::123456789012:policy/p")
    assert not arn_matches("arn:aws:iam::*:policy/*", "arn:aws:iam::123456789012:user/p")
    assert not arn_matches("arn:aws:iam::aws:policy/AWSDenyAll", "arn:aws:iam::aws:policy/awsdenyall"), "case-sensitive"


def test_the_quarantine_role_may_attach_aws_deny_all_and_nothing_else():
    # The Service Authorization Reference lists iam:PolicyARN among
    # AttachUserPolicy's condition keys: IAM evaluates the condition on it.
    privilege, _ = sar_privilege("iam:AttachUserPolicy")
    assert "iam:PolicyARN" in {key for entry in privilege["resource_types"] for key in entry["condition_keys"]}
    # AWS Managed Policy Reference, AWSDenyAll: "ARN: arn:aws:iam::aws:policy/AWSDenyAll".
    assert DENY_ALL == "arn:aws:iam::aws:policy/AWSDenyAll"
    template, _ = decode(str(TEMPLATE))
    raw = [s for p in template["Resources"]["QuarantineUserFunctionRole"]["Properties"]["Policies"]
           for s in p["PolicyDocument"]["Statement"]
           if s.get("Effect") == "Allow" and "iam:AttachUserPolicy" in as_list(s["Action"])]
    assert [s["Condition"] for s in raw] == [
        {"ArnEquals": {"iam:PolicyARN": {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/AWSDenyAll"}}}], \
        "the stack's own partition (aws-cn, aws-us-gov too)"

    policies = function_policies()
    grants = {stage: [s for s in statements if s["Effect"] == "Allow" and names(s, "iam:AttachUserPolicy")]
              for stage, statements in policies.items()}
    assert {stage for stage, found in grants.items() if found} == {"QuarantineUser"}, "no other role may attach"
    [grant] = grants["QuarantineUser"]
    assert as_list(grant["Action"]) == ["iam:AttachUserPolicy"], "the condition binds this action alone"
    assert grant["Condition"] == {"ArnEquals": {"iam:PolicyARN": DENY_ALL}}

    def attach(policy_arn: str) -> dict:
        return {"Service": "iam", "Action": "AttachUserPolicy", "Params": {"UserName": "alice", "PolicyArn": policy_arn}}

    assert check_call(policies, "QuarantineUser", attach(DENY_ALL), {}) == []
    refused = [f"QuarantineUser: no Allow for iam:AttachUserPolicy on arn:aws:iam::{ACCOUNT}:user/alice"]
    for other in ("arn:aws:iam::aws:policy/AdministratorAccess", "arn:aws:iam::aws:policy/IAMFullAccess",
                  f"arn:aws:iam::{ACCOUNT}:policy/AWSDenyAll", "arn:aws:iam::aws:policy/AWSDenyAllExceptMe"):
        assert check_call(policies, "QuarantineUser", attach(other), {}) == refused, other
    assert check_call(policies, "QuarantineUser", {"Service": "iam", "Action": "AttachUserPolicy",
                                                   "Params": {"UserName": "alice"}}, {}) == refused
    # Without the condition, the same check lets AdministratorAccess through.
    unconditioned = {"QuarantineUser": [{**s, "Condition": {}} if s is grant else s for s in policies["QuarantineUser"]]}
    assert check_call(unconditioned, "QuarantineUser", attach("arn:aws:iam::aws:policy/AdministratorAccess"), {}) == []


def test_the_quarantine_role_may_tag_its_own_key_only():
    privilege, _ = sar_privilege("iam:TagUser")
    assert "aws:TagKeys" in {key for entry in privilege["resource_types"] for key in entry["condition_keys"]}
    policies = function_policies()
    key = core_constant("QUARANTINE_TAG_KEY")

    def tag(*keys: str) -> dict:
        params = {"UserName": "alice"}
        for number, tag_key in enumerate(keys, 1):
            params[f"Tags.member.{number}.Key"], params[f"Tags.member.{number}.Value"] = tag_key, "2026-12-01T17:00:00Z"
        return {"Service": "iam", "Action": "TagUser", "Params": params}

    assert check_call(policies, "QuarantineUser", tag(key), {}) == []
    refused = [f"QuarantineUser: no Allow for iam:TagUser on arn:aws:iam::{ACCOUNT}:user/alice"]
    for keys in (("offboard:protected",), (key, "team"), ()):
        assert check_call(policies, "QuarantineUser", tag(*keys), {}) == refused, keys
    assert not any(names(s, "iam:TagUser") for stage, statements in policies.items() if stage != "QuarantineUser"
                   for s in statements if s["Effect"] == "Allow")


def test_the_mfa_task_may_tag_virtual_devices_with_its_mark_only():
    privilege, _ = sar_privilege("iam:TagMFADevice")
    assert "aws:TagKeys" in {key for entry in privilege["resource_types"] for key in entry["condition_keys"]}
    policies = function_policies()
    stage, serial = "DeleteKeysCertificatesMfaAndCredentials", f"arn:aws:iam::{ACCOUNT}:mfa/alice-phone"

    def tag(*keys: str) -> dict:
        params = {"SerialNumber": serial}
        for number, tag_key in enumerate(keys, 1):
            params[f"Tags.member.{number}.Key"], params[f"Tags.member.{number}.Value"] = tag_key, "AIDAEXAMPLE"
        return {"Service": "iam", "Action": "TagMFADevice", "Params": params}

    assert check_call(policies, stage, tag(core_constant("TAKEN_FROM_TAG", "mfa.rs")), {}) == []
    refused = [f"{stage}: no Allow for iam:TagMFADevice on {serial}"]
    for keys in (("offboard:protected",), (core_constant("TAKEN_FROM_TAG", "mfa.rs"), "team")):
        assert check_call(policies, stage, tag(*keys), {}) == refused, keys
    assert not any(names(s, "iam:TagMFADevice") for other, statements in policies.items() if other != stage
                   for s in statements if s["Effect"] == "Allow")


# --- end to end -----------------------------------------------------------------

@pytest.fixture(scope="module")
def stack():
    missing = [b for b in FUNCTIONS.values() if not (BIN_DIR / b).exists()]
    if missing:
        pytest.fail(f"build the functions first (make build): missing {missing} in {BIN_DIR}")
    with Stack(instances=1) as running:
        yield running


def test_every_call_of_a_full_offboarding_is_allowed_on_its_resource_and_mutations_are_denied_when_protected(stack):
    policies = function_policies()
    stack.faults()
    stack.clear_calls()
    # Every credential type; a path, so user ARNs are user/<path><name>.
    paths = {"lp-by-name": "/engineering/", "lp-by-id": "/contractors/team-a/", "lp-quarantined": "/contractors/"}
    for name, path in paths.items():
        seed_user(stack.iam, name, path=path, access_keys=2, ssh_keys=2, certificates=2,
                  services=("codecommit.amazonaws.com", "cassandra.amazonaws.com", "bedrock.amazonaws.com"),
                  virtual_devices=2, passkeys=1, hardware_tokens=1, groups=2, inline_policies=2, attached_policies=2)
    # A grace period a few seconds long: QuarantineUser disables the user, the
    # execution waits, checks, then deletes (AWSDenyAll detached with the rest).
    delete_after = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
    quarantined = stack.start({"UserName": "lp-quarantined", "DeleteAfter": delete_after}, name="lp-quarantined")
    by_name = stack.run({"UserName": "lp-by-name"}, name="lp-by-name")
    assert by_name["status"] == "SUCCEEDED", by_name.get("cause")
    user_id = stack.iam.get_user(UserName="lp-by-id")["User"]["UserId"]
    by_id = stack.run({"IAMUserId": user_id}, name="lp-by-id")  # GetUsername resolves it with ListUsers
    assert by_id["status"] == "SUCCEEDED", by_id.get("cause")
    quarantined = stack.wait(quarantined)
    assert quarantined["status"] == "SUCCEEDED", quarantined.get("cause")
    assert json.loads(quarantined["output"])["Quarantine"]["QuarantinedUntil"] == delete_after
    for name in paths:
        assert leftovers(stack.iam, name) == {}
    retry_of_a_stopped_device_task(stack)
    a_quarantine_failing_part_way(stack)
    a_user_renamed_before_its_deletion(stack)

    calls = [c for c in stack.calls() if c["AccessKeyId"] in STAGE_BY_KEY and not c.get("Injected")]
    lowered = {name.lower(): path for name, path in paths.items()}
    lowered.update({"lp-partial": "/contractors/", "lp-renamed": "/engineering/", "lp-renamed-2": "/engineering/",
                    "lp-retried": "/engineering/"})
    problems = [p for c in calls for p in check_call(policies, STAGE_BY_KEY[c["AccessKeyId"]], c, lowered)]
    assert problems == [], "\n".join(problems)

    # The check covered what matters: every function called IAM, and between
    # the two runs every action of infra/stage-actions.json was exercised.
    observed: dict[str, set[str]] = {}
    for c in calls:
        observed.setdefault(STAGE_BY_KEY[c["AccessKeyId"]], set()).add(f"{c.get('Service') or 'iam'}:{c['Action']}")
    for stage, actions in STAGE_ACTIONS.items():
        unexercised = set(actions) - observed.get(stage, set())
        assert not unexercised, f"{stage}: never called {sorted(unexercised)} in a full offboarding"
    # The conditional grants were exercised with the values they allow.
    attached = {c["Params"].get("PolicyArn") for c in calls if c["Action"] == "AttachUserPolicy"}
    assert attached == {DENY_ALL}
    detached = {c["Params"].get("PolicyArn") for c in calls if c["Action"] == "DetachUserPolicy"}
    assert DENY_ALL in detached, "the deletion after the wait removes the quarantine's policy like any other"
    # The mutation kinds the Deny cannot cover by user tag were exercised too.
    actions = [c["Action"] for c in calls]
    assert "RemoveUserFromGroup" in actions and "DeleteVirtualMFADevice" in actions


def retry_of_a_stopped_device_task(stack) -> None:
    """The one path a full offboarding does not take: the retry of a device
    task whose first attempt marked and deactivated a virtual device and
    stopped before deleting it. IAM throttles every call from the moment
    DeactivateMFADevice is served until the invocation must stop; the state
    machine's retry finds the device no longer held, reads its mark
    (ListMFADeviceTags) and deletes it."""
    seed_user(stack.iam, "lp-retried", path="/engineering/", access_keys=0, ssh_keys=0, certificates=0,
              services=(), virtual_devices=1, passkeys=0, hardware_tokens=0, groups=0, inline_policies=0,
              attached_policies=0, login_profile=False)
    execution, stopped = stack.run_throttled_after("DeactivateMFADevice", "lp-retried")
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert stopped, "the first attempt really stopped part-way"
    assert "ListMFADeviceTags" in [c["Action"] for c in stack.calls()]
    assert leftovers(stack.iam, "lp-retried") == {}


def a_quarantine_failing_part_way(stack) -> None:
    """The partial quarantine's record: QuarantineUser reads the credentials and
    the attached policies as they are now (a policy denies switching SSH keys off)."""
    seed_user(stack.iam, "lp-partial", path="/contractors/", access_keys=1, ssh_keys=1, certificates=0, services=(),
              virtual_devices=0, passkeys=0, hardware_tokens=0, groups=0, inline_policies=0, attached_policies=0)
    delete_after = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    stack.faults(PolicyDenyActions=["UpdateSSHPublicKey"])
    try:
        execution = stack.run({"UserName": "lp-partial", "DeleteAfter": delete_after}, name="lp-partial")
    finally:
        stack.faults()
    assert (execution["status"], execution["error"]) == ("FAILED", "AccessDenied"), execution.get("cause")


def a_user_renamed_before_its_deletion(stack) -> None:
    """Gone by name is verified by id: DeleteIAMUserAndVerify lists the users."""
    seed_user(stack.iam, "lp-renamed", path="/engineering/", access_keys=0, ssh_keys=0, certificates=0, services=(),
              virtual_devices=0, passkeys=0, hardware_tokens=0, groups=0, inline_policies=0, attached_policies=1,
              login_profile=False)
    stack.emulator.app.on_next("DetachUserPolicy",
                               lambda: stack.iam.update_user(UserName="lp-renamed", NewUserName="lp-renamed-2"))
    execution = stack.run({"UserName": "lp-renamed"}, name="lp-renamed")
    assert (execution["status"], execution["error"]) == ("FAILED", "VerificationFailed"), execution.get("cause")


# --- the batch state machine's function: no IAM at all ---------------------------

def expand_if(node):
    """Fn::If as its first branch (the conditional grant counts as granted)."""
    if isinstance(node, list):
        return [expand_if(item) for item in node if not (isinstance(item, dict) and item == {"Ref": "AWS::NoValue"})]
    if isinstance(node, dict):
        if set(node) == {"Fn::If"}:
            return expand_if(node["Fn::If"][1])
        return {key: expand_if(value) for key, value in node.items()}
    return node


def test_the_batch_function_may_make_no_iam_call_and_reads_s3_objects_and_buckets_by_their_sar_types():
    """OffboardBatch is not in infra/stage-actions.json (IAM actions only): it
    validates lists and reads the Map's report. Its role grants no iam: or
    sts: action, and each S3 action on the resource type the Service
    Authorization Reference names for it (GetObject: object, ListBucket: bucket)."""
    assert "OffboardBatch" in FUNCTIONS and "OffboardBatch" not in STAGE_ACTIONS
    template, _ = decode(str(TEMPLATE))
    # The HasBatchListBucket branch, taken when the parameter names a bucket.
    template["Parameters"]["BatchListBucketName"]["Default"] = "offboard-user-lists"
    statements = render(expand_if([s for p in template["Resources"]["OffboardBatchFunctionRole"]["Properties"]["Policies"]
                                   for s in p["PolicyDocument"]["Statement"]]), template)
    actions = {a for s in statements for a in as_list(s["Action"])}
    assert not {a for a in actions if a.split(":")[0] in ("iam", "sts")}, actions
    formats = {"object": r"arn:aws:s3:::[a-z0-9.-]+/.+", "bucket": r"arn:aws:s3:::[a-z0-9.-]+"}
    for statement in statements:
        for action in as_list(statement["Action"]):
            if not action.startswith("s3:"):
                continue
            [kind] = sar_resource_types(action)
            assert kind in formats, (action, kind)
            for resource in as_list(statement["Resource"]):
                assert re.fullmatch(formats[kind], resource), (action, resource)
