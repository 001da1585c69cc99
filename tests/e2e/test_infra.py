"""The state machine definition and the SAM template: linters, moto's
CreateStateMachine, least privilege per function, retry/catch rules."""

from __future__ import annotations

import copy
import fnmatch
import json
import re
import subprocess
from pathlib import Path

import boto3
import pytest
from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parents[2]
ASL = ROOT / "statemachine" / "offboard.asl.json"
BATCH_ASL = ROOT / "statemachine" / "offboard-batch.asl.json"
TEMPLATE = ROOT / "infra" / "template.yaml"
STAGE_ACTIONS = json.loads((ROOT / "infra" / "stage-actions.json").read_text())
# Functions that make no IAM call (infra/stage-actions.json lists IAM only):
# the batch state machine's, which reads S3 only (user lists, the Map's report).
#: What every IAM stage may do beyond IAM: take slots of the deployment's budget.
BUDGET_ACTION = "dynamodb:UpdateItem"
#: ... and, in an organization, assume its own stage's role in the target accounts.
ASSUME_ACTION = "sts:AssumeRole"
#: GetUsername's function lists an org-wide input's accounts (crates/core/src/accounts.rs).
ORGANIZATION_LISTING = {"organizations:ListAccounts", "organizations:ListAccountsForParent",
                        "organizations:ListOrganizationalUnitsForParent"}
NON_IAM_FUNCTIONS = {"OffboardBatch": {"s3:GetObject", "s3:ListBucket", "kms:Decrypt", "states:DescribeExecution",
                                       "states:GetExecutionHistory"}}
#: Every function writes its own log group (and no other): Lambda's log delivery.
LOGGING_ACTIONS = {"logs:CreateLogStream", "logs:PutLogEvents"}
#: The workflow guard: every function confirms a RUNNING execution of this
#: deployment's state machines invoked it.
GUARD_ACTIONS = {"states:DescribeExecution", "states:GetExecutionHistory"}
# Step Functions developer guide, "Handle transient Lambda service exceptions":
# Lambda service errors are reported as Lambda.<ErrorName>, and "unhandled
# errors in Lambda are reported as Lambda.Unknown ... out-of-memory errors and
# function timeouts". A real timeout's payload names Sandbox.Timedout.
RETRIED = {"Throttled", "ServiceUnavailable", "Lambda.ServiceException", "Lambda.AWSLambdaException",
           "Lambda.SdkClientException", "Lambda.TooManyRequestsException", "Lambda.Unknown",
           "Lambda.ClientExecutionTimeoutException",
           # A stage timed out while queued behind IAM's rate: every stage is idempotent.
           "Sandbox.Timedout"}
#: A stage refused because its function's reserved concurrency (template
#: parameter StageConcurrency) is in use waits for a free instance: its own
#: retrier, first, with many short waits.
ADMISSION_RETRIER = {"ErrorEquals": ["Lambda.TooManyRequestsException"], "IntervalSeconds": 1, "BackoffRate": 2.0,
                     "MaxAttempts": 120, "MaxDelaySeconds": 60, "JitterStrategy": "FULL"}
NEVER_RETRIED = {"InvalidInput", "UserNotFound", "ProtectedUser", "AccessDenied", "MfaAuthenticationRequired",
                 "DeleteConflict", "VerificationFailed", "LimitExceeded", "RecordNotWritten", "UntrustedReport"}
OTHER_SUBSTITUTIONS = {"AuditBucketName": "offboard-audit", "EventBusName": "default",
                       # An org-wide offboarding: its children (this same machine), its
                       # Distributed Map's report, and the function that summarises it.
                       "OffboardStateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:iam-offboard-offboard",
                       "BatchReportBucketName": "offboard-batch-reports",
                       "OffboardBatchFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:OffboardBatch"}
ALLOWLIST = json.loads((ROOT / "infra" / "policy-lint-allowlist.json").read_text())
MUTATING = ("Delete", "Deactivate", "Detach", "Remove", "Attach", "Tag", "Update")


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
    for name, value in OTHER_SUBSTITUTIONS.items():
        text = text.replace("${%s}" % name, value)
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


# --- cfn-lint with the serverless rules (PyPI cfn-lint-serverless) ----------------

SERVERLESS_ALLOWLIST = json.loads((ROOT / "infra" / "serverless-lint-allowlist.json").read_text())


def serverless_findings(path: Path) -> set[tuple[str, str]]:
    """cfn-lint's findings with cfn-lint-serverless's rules appended
    ("cfn-lint template.yaml -a cfn_lint_serverless.rules", its README), as
    (rule id, resource)."""
    result = subprocess.run([str(ROOT / ".venv" / "bin" / "cfn-lint"), str(path), "-a", "cfn_lint_serverless.rules",
                             "-f", "json"], capture_output=True, text=True)
    assert result.returncode in (0, 2, 4, 6, 8, 10, 12, 14), result.stderr  # a bit per level found, never a crash
    return {(match["Rule"]["Id"], match["Location"]["Path"][1]) for match in json.loads(result.stdout or "[]")}


def test_cfn_lint_serverless_rules_find_only_allowlisted_choices_in_the_template_and_its_translation(tmp_path):
    """Run on infra/template.yaml and on the template as SAM translates it
    (tests/e2e/sam_translate.py): every finding is an allowlisted, reasoned
    choice, and every allowlist entry still matches a finding."""
    from sam_translate import translated

    assert all(set(entry) == {"Rule", "Resource", "In", "Reason"} and entry["Reason"].strip()
               and set(entry["In"]) <= {"template", "translated"} and entry["In"] for entry in SERVERLESS_ALLOWLIST)
    deployed = tmp_path / "translated.json"
    deployed.write_text(json.dumps(translated(), indent=1))
    for name, path in (("template", TEMPLATE), ("translated", deployed)):
        findings = serverless_findings(path)
        allowed = {(entry["Rule"], entry["Resource"]) for entry in SERVERLESS_ALLOWLIST if name in entry["In"]}
        assert findings <= allowed, f"{name}: new findings {sorted(findings - allowed)}"
        assert allowed <= findings, f"{name}: allowlist entries no longer needed {sorted(allowed - findings)}"


def test_the_serverless_rules_run_and_would_catch_the_config_trigger_without_its_dead_letter_queue(tmp_path):
    """The rules are loaded, not silently absent: the translated rule's
    target without DeadLetterConfig is ES4000 ("EventBridge DLQ")."""
    from sam_translate import translated

    deployed = translated()
    [target] = deployed["Resources"]["OffboardStateMachineNonCompliantIamUser"]["Properties"]["Targets"]
    del target["DeadLetterConfig"]
    regressed = tmp_path / "regressed.json"
    regressed.write_text(json.dumps(deployed, indent=1))
    assert ("ES4000", "OffboardStateMachineNonCompliantIamUser") in serverless_findings(regressed)


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
        assert json.loads(sfn.describe_state_machine(stateMachineArn=arn)["definition"])["StartAt"] == "ScopeOfInput"


def function_role(resources: dict, logical_id: str) -> dict:
    """The role a function runs as: its own AWS::IAM::Role <logical id>Role
    (Role: !GetAtt), never one SAM generates (SAM's carries
    AWSLambdaBasicExecutionRole: logs on "*")."""
    function = resources[logical_id]["Properties"]
    assert not {"Policies", "RolePath"} & set(function), f"{logical_id}: no SAM-generated role"
    assert function["Role"] == {"Fn::GetAtt": [f"{logical_id}Role", "Arn"]}, logical_id
    role = resources[f"{logical_id}Role"]
    assert role["Type"] == "AWS::IAM::Role", logical_id
    return role


def function_statements(resources: dict, logical_id: str) -> list[dict]:
    statements = []
    role = function_role(resources, logical_id)["Properties"]
    assert "ManagedPolicyArns" not in role, f"{logical_id}: only inline statements, no managed policies"
    for policy in role["Policies"]:
        # A conditional statement (Fn::If [condition, statement, AWS::NoValue])
        # counts as granted, as render() lints it.
        statements += [s["Fn::If"][1] if set(s) == {"Fn::If"} else s for s in policy["PolicyDocument"]["Statement"]]
    return statements


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def test_each_function_role_allows_exactly_what_its_stage_calls():
    resources = template()["Resources"]
    functions = {k: v for k, v in resources.items() if v["Type"] == "AWS::Serverless::Function"}
    assert {k.removesuffix("Function") for k in functions} == set(STAGE_ACTIONS) | set(NON_IAM_FUNCTIONS)
    for logical_id in functions:
        stage = logical_id.removesuffix("Function")
        statements = function_statements(resources, logical_id)
        allowed = {a for s in statements if s["Effect"] == "Allow" for a in as_list(s["Action"])}
        expected = set(STAGE_ACTIONS[stage]) | {BUDGET_ACTION, ASSUME_ACTION} if stage in STAGE_ACTIONS else NON_IAM_FUNCTIONS[stage]
        if stage == "GetUsername":
            expected |= ORGANIZATION_LISTING
        expected |= LOGGING_ACTIONS | GUARD_ACTIONS
        assert allowed == expected, f"{stage}: {sorted(allowed ^ expected)}"
        for statement in statements:
            assert not any("*" in a for a in as_list(statement["Action"])), statement


def guard_grants(resources: dict, function: str) -> set[tuple[str, str]]:
    """(action, resource) of every states: action the function's role allows."""
    return {(action, render(resource)) for s in function_statements(resources, f"{function}Function")
            if s["Effect"] == "Allow" for action in as_list(s["Action"]) if action.startswith("states:")
            for resource in as_list(s["Resource"])}


def iam_resource_matches(pattern: str, arn: str) -> bool:
    # IAM User Guide, "IAM JSON policy elements: Resource": * and ? wildcards,
    # which may span the ARN's separators.
    return fnmatch.fnmatchcase(arn, pattern)


#: Every way to write an item of a table: the Service Authorization Reference's
#: DynamoDB actions on the table resource that write items (checked below).
ITEM_WRITES = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem",
               "dynamodb:PartiQLInsert", "dynamodb:PartiQLUpdate", "dynamodb:PartiQLDelete"}


def arn_like(pattern: str, arn: str) -> bool:
    # IAM User Guide, "Condition operators", ArnLike: each of the six
    # colon-delimited components is matched separately, * and ? as wildcards.
    patterns, parts = pattern.split(":", 5), arn.split(":", 5)
    return len(patterns) == len(parts) == 6 and all(fnmatch.fnmatchcase(p, w) for w, p in zip(patterns, parts))


def test_only_the_functions_roles_may_write_the_iam_budget_table():
    from test_least_privilege import sar_privilege

    resources = template()["Resources"]
    [statement] = resources["IamBudgetTable"]["Properties"]["ResourcePolicy"]["PolicyDocument"]["Statement"]
    statement = render(statement)
    assert (statement["Effect"], statement["Principal"], statement["Resource"]) == ("Deny", "*", "*")
    assert set(statement["Action"]) == ITEM_WRITES
    for action in ITEM_WRITES:
        privilege, _ = sar_privilege(action)
        assert "table" in [r["resource_type"].rstrip("*") for r in privilege["resource_types"]], action
        assert privilege["access_level"] == "Write", action
    [(operator, condition)] = statement["Condition"].items()
    assert operator == "ArnNotLike" and list(condition) == ["aws:PrincipalArn"]
    path = condition["aws:PrincipalArn"]
    assert path == "arn:aws:iam::123456789012:role/iam-offboard/iam-offboard/*"

    def denied(principal_arn: str | None) -> bool:
        # A negated operator on an absent key is true: anonymous is refused.
        return principal_arn is None or not arn_like(path, principal_arn)

    # Every function's role is on that path (the roles' Path, as SAMPLE's stack
    # name renders it), and may write: the functions take budget slots.
    for function in [*STAGE_ACTIONS, *NON_IAM_FUNCTIONS]:
        role_path = render(resources[f"{function}FunctionRole"]["Properties"]["Path"])
        assert not denied(f"arn:aws:iam::123456789012:role{role_path}iam-offboard-{function}FunctionRole-1A2B"), function
    for other in ("arn:aws:iam::123456789012:role/Admin",
                  "arn:aws:iam::123456789012:role/iam-offboard/iam-offboard-staging/GetUsername/fn",
                  "arn:aws:iam::444455556666:role/iam-offboard/iam-offboard/GetUsername/fn",
                  "arn:aws:iam::123456789012:user/iam-offboard/iam-offboard/someone",
                  "arn:aws:iam::123456789012:role/" + SAMPLE["OffboardStateMachineRole.Arn"].rsplit("/", 1)[1], None):
        assert denied(other), other
    # The functions' own grant is the table's UpdateItem: the Deny never blocks them.
    for stage in STAGE_ACTIONS:
        assert any(BUDGET_ACTION in as_list(s["Action"]) for s in function_statements(resources, f"{stage}Function"))


def test_every_function_may_confirm_the_workflow_invoked_it_and_nothing_more():
    """The workflow guard's permissions: a stage function describes and reads
    the history of executions of <stack>-offboard, and describes the parent
    <stack>-offboard-batch execution of a batch's child; the batch function
    describes and reads its own machine's executions. Each resource is of the
    execution type the Service Authorization Reference names for both actions."""
    from test_least_privilege import sar_privilege, sar_resource_types

    doc = template()
    resources = doc["Resources"]
    prefix = "arn:aws:states:us-east-1:123456789012"
    offboard, batch = f"{prefix}:execution:iam-offboard-offboard:*", f"{prefix}:execution:iam-offboard-offboard-batch:*"
    for stage in STAGE_ACTIONS:
        assert guard_grants(resources, stage) == {("states:DescribeExecution", offboard),
                                                  ("states:GetExecutionHistory", offboard),
                                                  ("states:DescribeExecution", batch)}, stage
    # The batch function also summarises an org-wide offboarding, for the offboarding machine.
    assert guard_grants(resources, "OffboardBatch") == {("states:DescribeExecution", batch),
                                                        ("states:GetExecutionHistory", batch),
                                                        ("states:DescribeExecution", offboard),
                                                        ("states:GetExecutionHistory", offboard)}
    _, formats = sar_privilege("states:DescribeExecution")
    execution = re.escape(formats["execution"]).replace(re.escape("${Partition}"), "aws").replace(
        re.escape("${Region}"), "us-east-1").replace(re.escape("${Account}"), "123456789012").replace(
        re.escape("${StateMachineName}"), "[^:/]+").replace(re.escape("${ExecutionId}"), r"\*")
    for action in GUARD_ACTIONS:
        assert "execution" in sar_resource_types(action), action
    for pattern in (offboard, batch):
        assert re.fullmatch(execution, pattern), pattern
    # What the patterns admit: this deployment's two machines, never another's.
    names = {render(resources[m]["Properties"]["Name"]) for m in ("OffboardStateMachine", "OffboardBatchStateMachine")}
    assert names == {"iam-offboard-offboard", "iam-offboard-offboard-batch"}
    assert iam_resource_matches(offboard, f"{prefix}:execution:iam-offboard-offboard:alice-1a2b3c")
    assert not iam_resource_matches(offboard, f"{prefix}:execution:iam-offboard-offboard-batch:b-1")
    assert not iam_resource_matches(offboard, f"{prefix}:execution:other-offboard:alice")
    assert not iam_resource_matches(batch, f"{prefix}:execution:iam-offboard-offboard-batch-2:b-1")
    # The functions are told the two machines' ARNs, built from the stack's
    # name: no reference to the machines (which reference the functions).
    variable = doc["Globals"]["Function"]["Environment"]["Variables"]["OFFBOARD_STATE_MACHINE_ARNS"]
    assert set(variable) == {"Fn::Sub"} and isinstance(variable["Fn::Sub"], str)
    assert set(re.findall(r"\$\{([^}]+)\}", variable["Fn::Sub"])) == {
        "AWS::Partition", "AWS::Region", "AWS::AccountId", "AWS::StackName"}
    assert render(variable).split(",") == [f"{prefix}:stateMachine:{name}" for name in sorted(names)]
    for function in [*STAGE_ACTIONS, *NON_IAM_FUNCTIONS]:
        own = resources[f"{function}Function"]["Properties"].get("Environment", {}).get("Variables", {})
        assert "OFFBOARD_STATE_MACHINE_ARNS" not in own, f"{function}: the Globals value, unchanged"


def test_every_iam_stage_takes_budget_slots_from_the_budget_table_only():
    """The IAM budget (crates/core/src/budget.rs): each function that calls IAM
    may update the budget table's item and nothing else in DynamoDB, and is told
    the budget and the table; the timeout is the deployer's."""
    doc = template()
    resources = doc["Resources"]
    table = resources["IamBudgetTable"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "Budget", "KeyType": "HASH"}]
    variables = doc["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["OFFBOARD_IAM_CALLS_PER_SECOND"] == {"Ref": "IamCallsPerSecond"}
    assert variables["OFFBOARD_IAM_BUDGET_TABLE"] == {"Ref": "IamBudgetTable"}
    assert doc["Globals"]["Function"]["Timeout"] == {"Ref": "StageTimeoutSeconds"}
    assert doc["Parameters"]["IamCallsPerSecond"]["MinValue"] == 0
    for stage in STAGE_ACTIONS:
        budget = [s for s in function_statements(resources, f"{stage}Function") if BUDGET_ACTION in as_list(s["Action"])]
        assert [(s["Effect"], as_list(s["Action"]), s["Resource"]) for s in budget] == [
            ("Allow", [BUDGET_ACTION], {"Fn::GetAtt": ["IamBudgetTable", "Arn"]})], stage


# --- AWS's Service Authorization Reference, as PyPI parliament ships it -----

SAMPLE = {"AWS::Partition": "aws", "AWS::AccountId": "123456789012", "AWS::Region": "us-east-1",
          "AWS::StackName": "iam-offboard",
          "AuditBucket.Arn": "arn:aws:s3:::offboard-audit", "EventBusName": "default",
          "AuditKmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
          "BatchReportBucket.Arn": "arn:aws:s3:::offboard-batch-reports",
          "IamBudgetTable.Arn": "arn:aws:dynamodb:us-east-1:123456789012:table/iam-offboard-IamBudgetTable-1A2B3C",
          "IamBudgetTable": "iam-offboard-IamBudgetTable-1A2B3C", "BatchListBucketName": "offboard-user-lists",
          "OffboardStateMachine": "arn:aws:states:us-east-1:123456789012:stateMachine:offboard",
          "OffboardStateMachine.Name": "offboard", "OffboardBatchFunction": "iam-offboard-OffboardBatchFunction",
          "TargetRoleName": "iam-offboard-target", "OrganizationId": "o-a1b2c3d4e5",
          "OffboardStateMachineRole.Arn": "arn:aws:iam::123456789012:role/iam-offboard-OffboardStateMachineRole-1A2B3C",
          "OffboardBatchStateMachineRole.Arn":
              "arn:aws:iam::123456789012:role/iam-offboard-OffboardBatchStateMachineRole-4D5E6F",
          "RecordWriterRoleArns": ["arn:aws:iam::123456789012:role/operators/offboard-operator"]}
SAMPLE.update({"ConfigTriggerDeadLetterQueue.Arn": "arn:aws:sqs:us-east-1:123456789012:iam-offboard-ConfigTriggerDLQ-1A2B",
               "OffboardStateMachineNonCompliantIamUser.Arn":
                   "arn:aws:events:us-east-1:123456789012:rule/iam-offboard-OffboardStateMachineNonCompliant-1A2B"})
SAMPLE.update({f"{function}LogGroup": f"/aws/lambda/iam-offboard/{function}"
               for function in [*STAGE_ACTIONS, *NON_IAM_FUNCTIONS]})


def render(node, sample: dict | None = None):
    """The template's intrinsics with sample values (Fn::If: its first branch,
    so that conditional statements are linted too)."""
    sample = SAMPLE if sample is None else sample
    if isinstance(node, dict):
        if set(node) == {"Fn::Sub"}:
            text, extra = (node["Fn::Sub"], {}) if isinstance(node["Fn::Sub"], str) else node["Fn::Sub"]
            values = {**sample, **{name: render(value, sample) for name, value in extra.items()}}
            return re.sub(r"\$\{([^}]+)\}", lambda m: values[m[1]], text)
        if set(node) == {"Fn::Join"}:
            separator, items = node["Fn::Join"]
            return separator.join(render(items, sample))
        if set(node) == {"Fn::Split"}:
            separator, text = node["Fn::Split"]
            return render(text, sample).split(separator)
        if set(node) == {"Ref"}:
            return sample[node["Ref"]]
        if set(node) == {"Fn::GetAtt"}:
            target = node["Fn::GetAtt"]
            return sample[".".join(target) if isinstance(target, list) else target]
        if set(node) == {"Fn::If"}:
            return render(node["Fn::If"][1], sample)
        return {key: render(value, sample) for key, value in node.items()}
    if isinstance(node, list):
        return [render(value, sample) for value in node]
    return node


def policy_documents(resources: dict) -> list[tuple[str, dict]]:
    """Every policy in the template, rendered: the functions' roles' inline
    policies, the state machines' (SAM's LambdaInvokePolicy expanded as SAM
    documents it) and bucket policies."""
    documents = []
    for logical_id, resource in resources.items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::Role":
            documents += [(logical_id, render(policy["PolicyDocument"])) for policy in properties.get("Policies", [])]
        for policy in properties.get("Policies", []) if resource["Type"].startswith("AWS::Serverless::") else []:
            if "LambdaInvokePolicy" in policy:
                # AWS SAM developer guide, "AWS SAM policy template list",
                # LambdaInvokePolicy: lambda:InvokeFunction on
                # arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${functionName}*
                function = policy["LambdaInvokePolicy"]["FunctionName"]["Ref"]
                policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "lambda:InvokeFunction",
                          "Resource": f"arn:aws:lambda:us-east-1:123456789012:function:{function}*"}]}
            documents.append((logical_id, render(policy)))
        if resource["Type"] == "AWS::DynamoDB::Table" and "ResourcePolicy" in properties:
            documents.append((logical_id, render(properties["ResourcePolicy"]["PolicyDocument"])))
        if resource["Type"] in ("AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy"):
            documents.append((logical_id, render(properties["PolicyDocument"])))
    return documents


def lint_findings(documents: list[tuple[str, dict]]) -> set[tuple[str, str, tuple[str, ...]]]:
    """parliament's findings (its community auditors included), each as
    (logical id, issue, the actions it names): an allowlisted finding stops
    matching as soon as the policy grants one more such action."""
    from parliament import analyze_policy_string

    findings = set()
    for logical_id, document in documents:
        policy = analyze_policy_string(json.dumps(document), include_community_auditors=True)
        for finding in policy.findings:
            named = finding.location.get("actions") if isinstance(finding.location, dict) else None
            if named is None and isinstance(finding.detail, list):  # RESOURCE_MISMATCH lists {"action": ...}
                named = [d["action"] for d in finding.detail if isinstance(d, dict) and "action" in d]
            findings.add((logical_id, finding.issue, tuple(sorted({a.lower() for a in named or []}))))
    return findings


def lint(documents: list[tuple[str, dict]]) -> set[tuple[str, str]]:
    return {(logical_id, issue) for logical_id, issue, _ in lint_findings(documents)}


def test_every_policy_passes_the_authorization_reference_linter():
    documents = policy_documents(template()["Resources"])
    expected = {f"{stage}FunctionRole" for stage in [*STAGE_ACTIONS, *NON_IAM_FUNCTIONS]} | {
        "OffboardStateMachine", "AuditBucketPolicy", "OffboardBatchStateMachine", "BatchReportBucketPolicy"}
    assert {name for name, _ in documents} >= expected
    assert all(set(entry) == {"Resource", "Issue", "Actions", "Reason"} and entry["Reason"].strip() for entry in ALLOWLIST)
    allowed = {(entry["Resource"], entry["Issue"], tuple(sorted(a.lower() for a in entry["Actions"]))) for entry in ALLOWLIST}
    findings = lint_findings(documents)
    assert findings <= allowed, f"new findings: {sorted(findings - allowed)}"
    assert allowed <= findings, f"allowlist entries no longer needed: {sorted(allowed - findings)}"


def test_the_allowlist_does_not_hide_a_new_action():
    """An allowlisted finding names its actions: one more permission-management
    action in the same policy is a new finding."""
    documents = dict(policy_documents(template()["Resources"]))
    widened = copy.deepcopy(documents["DeleteIAMUserAndVerifyFunctionRole"])
    [grant] = [s for s in widened["Statement"] if s.get("Sid") == "DeleteAndVerify"]
    grant["Action"] = as_list(grant["Action"]) + ["iam:CreateAccessKey"]
    allowed = {(entry["Resource"], entry["Issue"], tuple(sorted(a.lower() for a in entry["Actions"]))) for entry in ALLOWLIST}
    assert lint_findings([("DeleteIAMUserAndVerifyFunctionRole", widened)]) - allowed


def test_the_linter_catches_list_users_scoped_to_users_and_the_iam_only_tag_key():
    """The two defects the linter found in the first template."""
    scoped = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:ListUsers",
                                                      "Resource": "arn:aws:iam::123456789012:user/*"}]}
    assert ("GetUsername", "RESOURCE_MISMATCH") in lint([("GetUsername", scoped)])
    # The template's own GetUsername policy with ListUsers put back on user/*,
    # as the first template had it: the linter names the action.
    documents = dict(policy_documents(template()["Resources"]))
    regressed = copy.deepcopy(documents["GetUsernameFunctionRole"])
    [list_users] = [s for s in regressed["Statement"] if "iam:ListUsers" in as_list(s["Action"])]
    list_users["Resource"] = "arn:aws:iam::123456789012:user/*"
    assert ("GetUsernameFunctionRole", "RESOURCE_MISMATCH", ("iam:listusers",)) in lint_findings(
        [("GetUsernameFunctionRole", regressed)])
    allowed = {(entry["Resource"], entry["Issue"], tuple(sorted(a.lower() for a in entry["Actions"]))) for entry in ALLOWLIST}
    assert not {f for f in lint_findings([("GetUsernameFunctionRole", documents["GetUsernameFunctionRole"])])
                if f[1] == "RESOURCE_MISMATCH"} - allowed
    iam_key = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "iam:DeleteUser",
               "Resource": "arn:aws:iam::123456789012:user/*",
               "Condition": {"StringEqualsIgnoreCase": {"iam:ResourceTag/offboard:protected": "true"}}}]}
    assert ("Delete", "UNKNOWN_CONDITION_FOR_ACTION") in lint([("Delete", iam_key)])


def test_an_action_with_resource_types_is_never_granted_on_star():
    """Resource-level least privilege per declared action (the ARN of the
    type the Service Authorization Reference names, and user mutations under
    the Deny) is test_least_privilege.py's check; here, the one thing it does
    not look at: a scoped action is never also granted on "*"."""
    from test_least_privilege import function_policies, names, sar_resource_types

    policies = function_policies()
    for stage, actions in STAGE_ACTIONS.items():
        for action in actions:
            granted = [r for s in policies[stage] if s["Effect"] == "Allow" and names(s, action) for r in as_list(s["Resource"])]
            if sar_resource_types(action):
                assert "*" not in granted, f"{stage}: {action} is scoped, so no Resource *"
            else:
                assert granted == ["*"], f"{stage}: {action} supports no resource-level permissions, so only *"


def test_each_function_logs_to_its_own_group_with_the_retention_parameter():
    resources = template()["Resources"]
    for stage in [*STAGE_ACTIONS, *NON_IAM_FUNCTIONS]:
        config = resources[f"{stage}Function"]["Properties"]["LoggingConfig"]
        group = resources[config["LogGroup"]["Ref"]]
        assert group["Type"] == "AWS::Logs::LogGroup" and config["LogFormat"] == "JSON"
        assert group["Properties"]["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/${{AWS::StackName}}/{stage}"}, stage
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionInDays"}, stage


#: The AWS managed policies a role of the deployed template may carry, with
#: their documents; any other fails the test below. AWS Managed Policy
#: Reference, AWSLambdaBasicExecutionRole: logs:CreateLogGroup,
#: logs:CreateLogStream and logs:PutLogEvents on "*".
MANAGED_POLICIES = {"arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": [
    {"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
     "Resource": "*"}]}


def deployed_role_statements(resources: dict) -> dict[str, list[dict]]:
    """Every role of the template as CloudFormation receives it (after SAM's
    transform, so roles SAM generates count too): its statements, managed
    policies expanded."""
    roles = {}
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        statements = []
        for arn in resource["Properties"].get("ManagedPolicyArns", []):
            assert arn in MANAGED_POLICIES, f"{logical_id}: managed policy {arn} is not known here"
            statements += MANAGED_POLICIES[arn]
        for policy in resource["Properties"].get("Policies", []):
            statements += [s["Fn::If"][1] if set(s) == {"Fn::If"} else s for s in policy["PolicyDocument"]["Statement"]]
        roles[logical_id] = statements
    return roles


def log_grant_problems(roles: dict[str, list[dict]]) -> list[str]:
    """A function's role may write (CreateLogStream, PutLogEvents) its own
    function's log group and nothing else of CloudWatch Logs; no role may be
    granted a logs: action that the Service Authorization Reference scopes
    to a resource on "*" or on a function's group (other than its own). The
    log delivery actions the state machines' logging needs support no
    resource type, so "*" is their only form (the Reference: no resource)."""
    from test_least_privilege import sar_resource_types

    groups = {f"{function}FunctionRole": f"arn:aws:logs:us-east-1:123456789012:log-group:{SAMPLE[function + 'LogGroup']}:*"
              for function in [*STAGE_ACTIONS, *NON_IAM_FUNCTIONS]}
    problems = []
    for role, statements in roles.items():
        for statement in statements:
            actions = [a for a in as_list(statement["Action"]) if a.startswith("logs:")]
            if statement["Effect"] != "Allow" or not actions:
                continue
            resources = [render(r) for r in as_list(statement["Resource"])]
            for action in actions:
                scoped = bool(sar_resource_types(action))
                if role in groups:
                    if action not in LOGGING_ACTIONS or resources != [groups[role]]:
                        problems.append(f"{role}: {action} on {resources}")
                elif scoped and ("*" in resources or set(resources) & set(groups.values())):
                    problems.append(f"{role}: {action} on {resources}")
                elif not scoped and role.endswith("FunctionRole"):
                    problems.append(f"{role}: {action} (no resource type) for a function")
    return problems


def test_no_role_may_write_logs_but_its_own_functions_group():
    from sam_translate import translated

    resources = translated()["Resources"]
    roles = deployed_role_statements(resources)
    assert {f"{function}FunctionRole" for function in [*STAGE_ACTIONS, *NON_IAM_FUNCTIONS]} <= set(roles)
    assert log_grant_problems(roles) == []
    # Each function runs as its role, and logs to the group that role may write.
    for function in [*STAGE_ACTIONS, *NON_IAM_FUNCTIONS]:
        properties = resources[f"{function}Function"]["Properties"]
        assert properties["Role"] == {"Fn::GetAtt": [f"{function}FunctionRole", "Arn"]}, function
        assert properties["LoggingConfig"]["LogGroup"] == {"Ref": f"{function}LogGroup"}, function
    # The check itself: another function's group, "*", or SAM's managed policy is refused.
    swapped = copy.deepcopy(roles)
    [own] = [s for s in swapped["GetUsernameFunctionRole"] if s.get("Sid") == "WriteOwnLogs"]
    own["Resource"] = {"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${OffboardBatchLogGroup}:*"}
    assert log_grant_problems(swapped) == [
        f"GetUsernameFunctionRole: {a} on ['arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/iam-offboard/OffboardBatch:*']"
        for a in ("logs:CreateLogStream", "logs:PutLogEvents")]
    basic = {**roles, "OffboardBatchFunctionRole": roles["OffboardBatchFunctionRole"] + MANAGED_POLICIES[
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"]}
    assert len(log_grant_problems(basic)) == 3
    machine = {"OffboardStateMachineRole": [{"Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": "*"}]}
    assert log_grant_problems(machine) == ["OffboardStateMachineRole: logs:PutLogEvents on ['*']"]


def test_mutating_functions_deny_protected_users():
    from test_least_privilege import sar_resource_types

    resources = template()["Resources"]
    for stage, actions in STAGE_ACTIONS.items():
        # Only actions on the user resource can carry the user's tag in a condition.
        user_mutations = {a for a in actions if a.split(":")[1].startswith(MUTATING) and "user" in sar_resource_types(a)}
        denies = [s for s in function_statements(resources, f"{stage}Function") if s["Effect"] == "Deny"]
        denied = {a for s in denies for a in as_list(s["Action"])}
        assert denied == user_mutations, f"{stage}: {sorted(denied ^ user_mutations)}"
        for statement in denies:
            # The global key (IAM User Guide, "Controlling access to IAM users and
            # roles using tags": aws:ResourceTag/key-name).
            assert statement["Condition"] == {"StringEqualsIgnoreCase": {"aws:ResourceTag/offboard:protected": "true"}}
    environment = template()["Globals"]["Function"]["Environment"]["Variables"]
    assert environment["OFFBOARD_PROTECTED_TAG_KEY"] == "offboard:protected"


def test_state_machine_invokes_the_seven_functions_and_the_batch_function_for_an_org_wide_summary():
    machine = template()["Resources"]["OffboardStateMachine"]["Properties"]
    substitutions = machine["DefinitionSubstitutions"]
    assert set(substitutions) == {f"{stage}FunctionArn" for stage in STAGE_ACTIONS} | set(OTHER_SUBSTITUTIONS)
    placeholders = set(re.findall(r"\$\{(\w+)\}", ASL.read_text()))
    assert placeholders == set(substitutions)
    # Its own ARN is built from its name (a reference to itself would be circular).
    assert render(substitutions["OffboardStateMachineArn"]) == OTHER_SUBSTITUTIONS["OffboardStateMachineArn"]
    assert substitutions["BatchReportBucketName"] == {"Ref": "BatchReportBucket"}
    assert substitutions["OffboardBatchFunctionArn"] == {"Fn::GetAtt": ["OffboardBatchFunction", "Arn"]}
    invoked = {p["LambdaInvokePolicy"]["FunctionName"]["Ref"] for p in machine["Policies"] if "LambdaInvokePolicy" in p}
    assert invoked == {f"{stage}Function" for stage in [*STAGE_ACTIONS, *NON_IAM_FUNCTIONS]}
    other = [render(s) for p in machine["Policies"] if "Statement" in p for s in p["Statement"]]
    statements = {s["Sid"]: s for s in other}
    actions = {a for s in other for a in as_list(s["Action"])}
    # An org-wide offboarding starts one child execution of this same machine
    # per account (startExecution.sync:2) from its Distributed Map, whose
    # ResultWriter writes the report.
    children = {"states:StartExecution", "states:DescribeExecution", "states:StopExecution",
                "events:PutTargets", "events:PutRule", "events:DescribeRule"}
    report = {"s3:GetObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"}
    assert {a for a in actions if not a.startswith("logs:")} == {
        "s3:PutObject", "s3:ListBucket", "events:PutEvents", "kms:GenerateDataKey", "kms:Decrypt"} | children | report
    started = next(s for s in other if "states:StartExecution" in as_list(s["Action"]))
    assert started["Resource"] == "arn:aws:states:us-east-1:123456789012:stateMachine:iam-offboard-offboard", "only itself"
    assert machine["Name"] == {"Fn::Sub": "${AWS::StackName}-offboard"}
    assert statements["WriteRecords"]["Resource"] == "arn:aws:s3:::offboard-audit/records/*", "only the records prefix"
    # Whether offboard restore filed restore.json: a listing under records/ only.
    lists = next(s for s in other if "s3:ListBucket" in as_list(s["Action"]))
    assert lists["Resource"] == "arn:aws:s3:::offboard-audit"
    assert lists["Condition"] == {"StringLike": {"s3:prefix": "records/*"}}
    # The Distributed Map: its own labelled map run's executions, its report's prefix.
    each = definition()["States"]["OffboardEachAccount"]
    assert statements["FollowAccountMapRunExecutions"]["Resource"] == \
        f"arn:aws:states:us-east-1:123456789012:execution:iam-offboard-offboard/{each['Label']}:*"
    assert set(statements["FollowAccountMapRunExecutions"]["Action"]) == {"states:DescribeExecution", "states:StopExecution"}
    prefix = re.search(r"'([\w-]+)/\{\}'", each["ResultWriter"]["Parameters"]["Prefix.$"])[1]
    assert prefix == "org-runs"
    assert statements["WriteAccountReports"]["Resource"] == f"arn:aws:s3:::offboard-batch-reports/{prefix}/*"
    assert set(statements["WriteAccountReports"]["Action"]) == {"s3:PutObject"} | report
    assert [s["Resource"] for s in other if "s3:PutObject" in as_list(s["Action"])] == [
        "arn:aws:s3:::offboard-audit/records/*", "arn:aws:s3:::offboard-batch-reports/org-runs/*"]
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


# --- the Config trigger: retried for an hour, then kept and alarmed on ----------

#: The rule SAM generates for the state machine's event: LogicalId
#: <statemachine-LogicalId><event-LogicalId> (AWS SAM developer guide,
#: "CloudFormation resources generated when AWS::Serverless::StateMachine is specified").
CONFIG_RULE = "OffboardStateMachineNonCompliantIamUser"
DLQ = "ConfigTriggerDeadLetterQueue"


def config_trigger() -> dict:
    return template()["Resources"]["OffboardStateMachine"]["Properties"]["Events"]["NonCompliantIamUser"]["Properties"]


def test_the_config_trigger_retries_for_an_hour_then_keeps_the_event_in_an_encrypted_queue():
    """EventBridge's default is "24 hours and up to 185 times ... the event is
    dropped" (EventBridge User Guide, "Event retry policy and using
    dead-letter queues"). RetryPolicy's bounds: MaximumRetryAttempts 0-185,
    MaximumEventAgeInSeconds 60-86400 (EventBridge API reference, RetryPolicy)."""
    from sam_translate import translated

    event = config_trigger()
    assert event["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [DLQ, "Arn"]}}
    retry = event["RetryPolicy"]
    assert 0 <= retry["MaximumRetryAttempts"] <= 185 and retry["MaximumRetryAttempts"] > 0
    assert 60 <= retry["MaximumEventAgeInSeconds"] <= 3600, "surfaced within the hour, not after a day"
    queue = template()["Resources"][DLQ]
    assert queue["Type"] == "AWS::SQS::Queue"
    # "Only standard queues are supported" (same page); encrypted at rest.
    assert not queue["Properties"].get("FifoQueue", False)
    assert queue["Properties"].get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in queue["Properties"]
    assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600, "SQS's longest: time to replay by hand"
    # SAM passes both to the rule's one target: what CloudFormation creates.
    resources = translated()["Resources"]
    rule = resources[CONFIG_RULE]
    assert rule["Type"] == "AWS::Events::Rule"
    [target] = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Ref": "OffboardStateMachine"}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [DLQ, "Arn"]}}
    assert target["RetryPolicy"] == retry


def test_only_the_config_trigger_rule_may_send_to_its_dead_letter_queue():
    """"you must manually grant permissions to the queue" when the target is
    set through the API: events.amazonaws.com, sqs:SendMessage, for the rule
    alone (aws:SourceArn), as the EventBridge User Guide's policy has it."""
    from sam_translate import translated

    resources = template()["Resources"]
    policy = resources["ConfigTriggerDeadLetterQueuePolicy"]["Properties"]
    assert policy["Queues"] == [{"Ref": DLQ}]
    [statement] = policy["PolicyDocument"]["Statement"]
    assert (statement["Effect"], statement["Principal"], statement["Action"]) == (
        "Allow", {"Service": "events.amazonaws.com"}, "sqs:SendMessage")
    assert statement["Resource"] == {"Fn::GetAtt": [DLQ, "Arn"]}
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [CONFIG_RULE, "Arn"]}}}
    # The rule the condition names is the one that sends there.
    deployed = translated()["Resources"]
    assert deployed[CONFIG_RULE]["Properties"]["Targets"][0]["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": [DLQ, "Arn"]}
    assert sum(1 for r in deployed.values() if r["Type"] == "AWS::Events::Rule") == 1


def test_alarms_notify_when_the_config_trigger_loses_or_parks_an_event():
    """EventBridge sends FailedInvocations and InvocationsFailedToBeSentToDlq
    (AWS/Events, dimension RuleName) "only if it isn't zero" (EventBridge User
    Guide, "Monitoring Amazon EventBridge"); SQS sends
    ApproximateNumberOfMessagesVisible (AWS/SQS, QueueName)."""
    from sam_translate import translated

    resources = template()["Resources"]
    alarms = {r["Properties"]["MetricName"]: r["Properties"] for r in resources.values()
              if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"]["Namespace"] in ("AWS/Events", "AWS/SQS")}
    assert set(alarms) == {"FailedInvocations", "InvocationsFailedToBeSentToDlq", "ApproximateNumberOfMessagesVisible"}
    for metric in ("FailedInvocations", "InvocationsFailedToBeSentToDlq"):
        assert alarms[metric]["Namespace"] == "AWS/Events"
        assert alarms[metric]["Dimensions"] == [{"Name": "RuleName", "Value": {"Ref": CONFIG_RULE}}], metric
        assert alarms[metric]["Statistic"] == "Sum"
    parked = alarms["ApproximateNumberOfMessagesVisible"]
    assert parked["Namespace"] == "AWS/SQS"
    assert parked["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [DLQ, "QueueName"]}}]
    assert parked["Statistic"] == "Maximum"
    for metric, alarm in alarms.items():
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold"), metric
        assert alarm["TreatMissingData"] == "notBreaching", metric
        assert alarm["AlarmActions"] == {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    # The dimension is the rule CloudFormation creates (Ref: its name, on the default bus).
    rule = translated()["Resources"][CONFIG_RULE]
    assert rule["Type"] == "AWS::Events::Rule" and "EventBusName" not in rule["Properties"]


def lambda_tasks(states: dict):
    return [(n, s) for n, s in all_states(states) if s["Type"] == "Task" and s["Resource"].startswith("${")]


def test_every_function_task_retries_transient_errors_with_jitter_and_never_the_others():
    tasks = lambda_tasks(definition()["States"])
    assert len(tasks) == 13, ("six stages, the MFA Map's two routes counted apart, QuarantineUser's quarantine, its "
                              "record of a partial one and its check, GetUsername's listing of an org-wide input's "
                              "accounts, and its summary")
    assert {s["Resource"] for _, s in tasks} == {"${%sFunctionArn}" % stage for stage in [*STAGE_ACTIONS, *NON_IAM_FUNCTIONS]}
    for name, state in tasks:
        admission, *others = state["Retry"]
        assert admission == ADMISSION_RETRIER, name
        retried = set(admission["ErrorEquals"])
        for retrier in others:
            retried |= set(retrier["ErrorEquals"])
            assert retrier["JitterStrategy"] == "FULL" and retrier["MaxDelaySeconds"] <= 120, name
            assert 1 < retrier["MaxAttempts"] <= 20 and retrier["BackoffRate"] >= 1.5, name
        assert retried == RETRIED, f"{name}: {retried ^ RETRIED}"
        assert not retried & NEVER_RETRIED


def test_a_stage_refused_for_its_reserved_concurrency_waits_its_turn_for_about_an_hour():
    """The admission retrier's total wait: with FULL jitter each attempt waits
    a uniform share of min(IntervalSeconds x BackoffRate^n, MaxDelaySeconds)
    (Step Functions developer guide, "Handling errors in Step Functions
    workflows", Retrier fields), so its expectation is half the sum of the caps."""
    caps = [min(ADMISSION_RETRIER["IntervalSeconds"] * ADMISSION_RETRIER["BackoffRate"] ** n,
                ADMISSION_RETRIER["MaxDelaySeconds"]) for n in range(ADMISSION_RETRIER["MaxAttempts"])]
    assert 45 * 60 <= sum(caps) / 2 <= 75 * 60
    # A refused stage asks again within a minute: with hundreds waiting, a free instance is
    # taken at once; fewer asks keep the waiting cheap (each is a state transition).
    assert ADMISSION_RETRIER["MaxDelaySeconds"] <= 60


def test_stage_concurrency_reserves_each_functions_concurrency_only_when_set():
    """StageConcurrency is the functions' ReservedConcurrentExecutions; its
    default 0 reserves nothing, so the template deploys in an account whose
    concurrency quota leaves no room to reserve: "You can reserve up to the
    Unreserved account concurrency value that is shown, minus 100 for functions
    that don't have reserved concurrency" (Lambda developer guide, "Configuring
    reserved concurrency for a function",
    https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html)."""
    doc = template()
    parameter = doc["Parameters"]["StageConcurrency"]
    assert (parameter["Default"], parameter["MinValue"]) == (0, 0)
    assert doc["Conditions"]["HasStageConcurrency"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "StageConcurrency"}, 0]}]}
    assert doc["Globals"]["Function"]["ReservedConcurrentExecutions"] == {
        "Fn::If": ["HasStageConcurrency", {"Ref": "StageConcurrency"}, {"Ref": "AWS::NoValue"}]}
    for name, resource in doc["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            assert "ReservedConcurrentExecutions" not in resource["Properties"], name


def test_record_and_event_tasks_are_bounded_and_fail_loudly():
    states = definition()["States"]
    sdk = {n: s for n, s in states.items() if s["Type"] == "Task" and not s["Resource"].startswith("${")}
    assert set(sdk) == {"WritePlan", "WriteRecord", "WriteFailureRecord", "WriteQuarantineRecord", "WriteRestoredRecord",
                        "FindRestoreRecord", "PublishPlanned", "PublishOffboarded", "PublishFailed", "PublishQuarantined",
                        "PublishRestored"}
    for name, state in sdk.items():
        assert [r["MaxAttempts"] for r in state["Retry"]] == [3], name
        assert state["Catch"][0]["Next"] in ("RecordNotWritten", "EventNotPublished"), name
        if state["Resource"] == "arn:aws:states:::aws-sdk:s3:putObject":
            assert state["Parameters"]["Bucket"] == "${AuditBucketName}" and state["ResultPath"] is None
        elif state["Resource"] == "arn:aws:states:::aws-sdk:s3:listObjectsV2":
            assert state["Parameters"]["Bucket"] == "${AuditBucketName}"
            assert state["Parameters"]["Prefix.$"] == "States.Format('{}restore.json', $.RecordPrefix)"
        else:
            assert state["Resource"] == "arn:aws:states:::events:putEvents"
            entry = state["Parameters"]["Entries"][0]
            assert entry["Source"] == "iam-offboard" and entry["EventBusName"] == "${EventBusName}"
            assert states[state["Next"]]["Choices"][0] == {"Variable": "$.Published.FailedEntryCount",
                                                         "NumericGreaterThan": 0, "Next": "EventNotPublished"}
    # The plan is written before the first change, on the first round only.
    assert states["GetGroupsAndPolicies"]["Next"] == "BuildPlan" and states["BuildPlan"]["Next"] == "FirstRound"
    assert states["FirstRound"]["Choices"][0] == {"Variable": "$.Round", "NumericEquals": 0, "Next": "WritePlan"}
    assert states["WritePlan"]["Next"] == "IsDryRun"
    assert states["DeleteIAMUserAndVerify"]["Next"] == "WriteRecord"


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
    for name, state in lambda_tasks(states) + [("RemoveMFADevices", states["RemoveMFADevices"])]:
        # Before a user is resolved, inside the MFA Map, QuarantineUser (its own catchers), or an
        # org-wide execution's summary (no user of its own: its children hold the records).
        if name in ("GetUsername", "ResolveAccounts", "DeactivateAndDeleteVirtualDevice", "DeactivateOnly",
                    "QuarantineUser", "SummarizeAccounts"):
            continue
        last = state["Catch"][-1]
        assert last["ErrorEquals"] == ["States.ALL"] and last["Next"] == "RecordFailure", name
    # A quarantine that fails part-way is recorded (what it changed) before the failure record.
    assert states["QuarantineUser"]["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.Failure", "Next": "RecordPartialQuarantine"}]
    assert states["RecordPartialQuarantine"]["Next"] == "QuarantineRecord"
    assert states["QuarantineComplete"]["Choices"] == [
        {"Variable": "$.Quarantine.Error", "IsPresent": True, "Next": "RecordFailure"}]
    # A failed MFA device is an entry of its own; the first one's error fails the offboarding.
    device_states = states["RemoveMFADevices"]["ItemProcessor"]["States"]
    for route in ("DeactivateAndDeleteVirtualDevice", "DeactivateOnly"):
        assert device_states[route]["Catch"] == [
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.DeviceFailure", "Next": "DeviceFailed"}], route
    assert states["RemoveMFADevices"]["Next"] == "FindFailedDevices"
    assert states["AnyDeviceFailed"]["Default"] == "DeleteGroupsAndPolicies"
    assert states["DeviceFailure"]["Next"] == "RecordFailure"
    # Credentials left when the groups and policies were to go: another round.
    assert states["DeleteGroupsAndPolicies"]["Catch"][0] == {
        "ErrorEquals": ["DeleteConflict"], "ResultPath": "$.Conflict", "Next": "CollectRemovalsBeforeConflict"}
    assert states["CollectRemovalsBeforeConflict"]["Next"] == catches[0]["Next"]
    # GetUsername's input may not be an object: its failure replaces the state.
    assert states["GetUsername"]["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$", "Next": "RecordRefusal"}]
    assert states["ResolveAccounts"]["Catch"] == states["GetUsername"]["Catch"]
    assert states["ConflictPersisted"]["Next"] == "RecordFailure"
    for recorded in ("RecordRefusal", "RecordFailure"):
        assert states[recorded]["Next"] == "WriteFailureRecord"
    assert states["FailedEventAccepted"]["Default"] == "OffboardingFailed"
    assert states["OffboardingFailed"] == {**states["OffboardingFailed"], "Type": "Fail",
                                          "ErrorPath": "$.Failure.Error", "CausePath": "$.Failure.Cause"}


def test_dry_run_plan_and_quarantine_record_have_the_audit_record_shape():
    states = definition()["States"]
    fields = {key.removesuffix(".$") for key in states["BuildPlan"]["Parameters"]}
    assert fields == {"User", "DryRun", "Context", "Items", "UserDeletion", "Rounds", "Timings"}
    record_fields = re.findall(r"pub (\w+):", (ROOT / "crates/core/src/record.rs").read_text().split("pub struct AuditRecord")[1].split("}")[0])
    record_fields = {"".join(part.title() for part in f.split("_")) for f in record_fields}
    # Quarantine: only in the records of an offboarding that began with one.
    assert fields == record_fields - {"Quarantine"}
    quarantine = states["QuarantineRecord"]["Parameters"]
    assert {key.removesuffix(".$") for key in quarantine} == record_fields
    assert (quarantine["DryRun"], quarantine["UserDeletion"], quarantine["Rounds"]) == (False, None, 0)
    assert (quarantine["Items.$"], quarantine["Timings.$"], quarantine["Quarantine.$"]) == (
        "$.Plan.Items", "$.Plan.Timings", "$.Quarantine")


@pytest.mark.parametrize("name, arn", [("AuditBucket", "arn:aws:s3:::offboard-audit"),
                                       ("BatchReportBucket", "arn:aws:s3:::offboard-batch-reports")])
def test_the_audit_and_batch_report_buckets_are_private_versioned_encrypted_and_tls_only(name, arn):
    resources = template()["Resources"]
    bucket = resources[name]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert all(bucket["PublicAccessBlockConfiguration"][k] is True for k in
               ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"))
    encryption = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert encryption["Fn::If"][0] == "HasKmsKey" and encryption["Fn::If"][2] == {"SSEAlgorithm": "AES256"}
    assert resources[name]["DeletionPolicy"] == "Retain"
    # S3 user guide, "Enforce encryption in transit": deny every request whose
    # aws:SecureTransport is false, on the bucket and its objects.
    assert resources[f"{name}Policy"]["Properties"]["Bucket"] == {"Ref": name}
    [tls] = [s for s in resources[f"{name}Policy"]["Properties"]["PolicyDocument"]["Statement"] if s["Sid"] == "TlsOnly"]
    assert (tls["Effect"], tls["Principal"], tls["Action"]) == ("Deny", "*", "s3:*")
    assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert render(tls["Resource"]) == [arn, f"{arn}/*"]


# --- records: only the workflow (and the operators' roles it names) writes them ---

#: What could replace or remove an object under records/ (each checked
#: against the Service Authorization Reference below): a new version
#: (PutObject, multipart uploads included), a delete marker or a version's
#: deletion, an ACL, a shorter Object Lock retention or a lifted legal hold, a
#: replica written from another bucket.
RECORD_MUTATIONS = {"s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectAcl",
                    "s3:PutObjectVersionAcl", "s3:PutObjectRetention", "s3:PutObjectLegalHold",
                    "s3:BypassGovernanceRetention", "s3:ReplicateObject", "s3:ReplicateDelete"}


def evaluate_if(node, conditions: dict[str, bool]):
    """Fn::If decided by the given condition values (for a parameter's
    effect), everything else left as it is."""
    if isinstance(node, dict):
        if set(node) == {"Fn::If"}:
            name, yes, no = node["Fn::If"]
            return evaluate_if(yes if conditions[name] else no, conditions)
        return {key: evaluate_if(value, conditions) for key, value in node.items()}
    if isinstance(node, list):
        return [evaluate_if(value, conditions) for value in node]
    return node


def record_writers(writers: list[str]) -> tuple[dict, list[str]]:
    """The records statement with RecordWriterRoleArns = writers, and the
    principal ARNs it exempts."""
    doc = template()
    # CloudFormation gives an empty CommaDelimitedList as [""]; the condition joins it.
    assert doc["Conditions"]["HasRecordWriters"] == {
        "Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "RecordWriterRoleArns"}]}, ""]}]}
    has_writers = "".join(writers or [""]) != ""
    [statement] = [s for s in doc["Resources"]["AuditBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
                   if s.get("Sid") == "OnlyTheWorkflowWritesRecords"]
    rendered = render(evaluate_if(statement, {"HasRecordWriters": has_writers}),
                      {**SAMPLE, "RecordWriterRoleArns": writers or [""]})
    return rendered, as_list(rendered["Condition"]["ArnNotEquals"]["aws:PrincipalArn"])


def denied_by(statement: dict, action: str, key: str, principal_arn: str | None,
              bucket: str = "arn:aws:s3:::offboard-audit") -> bool:
    """Whether a Deny with one ArnNotEquals condition on aws:PrincipalArn
    refuses the request (IAM User Guide, "IAM JSON policy elements: Condition
    operators": a negated operator holds when the key matches none of the
    values, and "If the policy condition requires that the key is not matched
    ... and the right key is not present, the condition is true")."""
    if action not in as_list(statement["Action"]):
        return False
    if not any(fnmatch.fnmatchcase(f"{bucket}/{key}", r) for r in as_list(statement["Resource"])):
        return False
    [(operator, condition)] = statement["Condition"].items()
    assert operator == "ArnNotEquals" and set(condition) == {"aws:PrincipalArn"}, statement["Condition"]
    if principal_arn is None:
        return True
    return not any(fnmatch.fnmatchcase(principal_arn, value) for value in as_list(condition["aws:PrincipalArn"]))


def test_only_the_state_machine_and_the_record_writer_roles_may_replace_or_remove_a_record():
    from test_least_privilege import sar_privilege

    doc = template()
    parameter = doc["Parameters"]["RecordWriterRoleArns"]
    assert (parameter["Type"], parameter["Default"]) == ("CommaDelimitedList", "")
    machine_role = SAMPLE["OffboardStateMachineRole.Arn"]
    operator = "arn:aws:iam::123456789012:role/operators/offboard-operator"
    # Empty (the default): the state machine's role alone.
    statement, exempted = record_writers([])
    assert exempted == [machine_role]
    assert (statement["Effect"], statement["Principal"]) == ("Deny", "*")
    assert statement["Resource"] == "arn:aws:s3:::offboard-audit/records/*", "the records prefix, nothing else"
    assert set(as_list(statement["Action"])) == RECORD_MUTATIONS
    for action in RECORD_MUTATIONS:
        privilege, _ = sar_privilege(action)
        assert [r["resource_type"] for r in privilege["resource_types"] if r["resource_type"]] == ["object*"], action
        assert privilege["access_level"] in ("Write", "Permissions management"), action
    # The generated role, by its logical id (no name of its own).
    raw = [s for s in doc["Resources"]["AuditBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
           if s.get("Sid") == "OnlyTheWorkflowWritesRecords"][0]
    assert raw["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]["Fn::If"][2] == [
        {"Fn::GetAtt": ["OffboardStateMachineRole", "Arn"]}]
    key = "records/123456789012/alice/alice-1/record.json"
    for action in RECORD_MUTATIONS:
        assert not denied_by(statement, action, key, machine_role), action
        for other in (operator, "arn:aws:iam::123456789012:role/Admin",
                      "arn:aws:iam::123456789012:role/iam-offboard/iam-offboard/GetUsername/fn-role", None):
            assert denied_by(statement, action, key, other), (action, other)
    assert not denied_by(statement, "s3:GetObject", key, operator), "reading records stays as it is"
    assert not denied_by(statement, "s3:PutObject", "lists/users.csv", operator), "only records/"
    # Operators' roles listed: exactly the state machine's and theirs.
    second = "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Offboarding_0123"
    statement, exempted = record_writers([operator, second])
    assert exempted == [machine_role, operator, second]
    for principal in (machine_role, operator, second):
        assert not denied_by(statement, "s3:PutObject", key, principal)
    assert denied_by(statement, "s3:DeleteObject", key, "arn:aws:iam::123456789012:role/operators/other")
    # The state machine's own grant is on that prefix: the Deny never blocks the workflow.
    machine = [render(s) for p in doc["Resources"]["OffboardStateMachine"]["Properties"]["Policies"] if "Statement" in p
               for s in p["Statement"]]
    writes = next(s for s in machine if s.get("Sid") == "WriteRecords")
    assert writes["Resource"] == statement["Resource"]


def test_only_the_map_that_writes_a_report_may_replace_or_remove_it():
    """An org-wide offboarding's report (org-runs/) decides how each account is counted, a
    batch's (batches/) each user: only the state machine whose ResultWriter writes that prefix
    may write or delete there, as only the workflow writes records."""
    from test_least_privilege import sar_privilege

    resources = template()["Resources"]
    statements = {s["Sid"]: s for s in resources["BatchReportBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]}
    bucket = "arn:aws:s3:::offboard-batch-reports"
    org_role, batch_role = SAMPLE["OffboardStateMachineRole.Arn"], SAMPLE["OffboardBatchStateMachineRole.Arn"]
    others = ("arn:aws:iam::123456789012:role/Admin", "arn:aws:iam::123456789012:role/operators/offboard-operator",
              "arn:aws:iam::123456789012:role/iam-offboard/iam-offboard/OffboardBatch/fn-role", None)
    machines = {"org-runs": ("OnlyTheOrgWideOffboardingWritesAccountReports", "OffboardStateMachineRole", org_role,
                             ASL, "OffboardEachAccount", "OffboardStateMachine", "WriteAccountReports"),
                "batches": ("OnlyTheBatchWritesBatchReports", "OffboardBatchStateMachineRole", batch_role,
                            BATCH_ASL, "OffboardUsers", "OffboardBatchStateMachine", "WriteBatchReports")}
    for prefix, (sid, role, role_arn, asl, map_state, machine, grant) in machines.items():
        raw = statements[sid]
        # The generated role, by its logical id (AWS SAM developer guide, "CloudFormation
        # resources generated when AWS::Serverless::StateMachine is specified").
        assert raw["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": {"Fn::GetAtt": [role, "Arn"]}}}
        statement = render(raw)
        assert (statement["Effect"], statement["Principal"]) == ("Deny", "*")
        assert statement["Resource"] == f"{bucket}/{prefix}/*", "the prefix, nothing else"
        assert set(as_list(statement["Action"])) == RECORD_MUTATIONS
        # Each machine's ResultWriter writes that prefix, and its role may write it there.
        written = json.loads(asl.read_text())["States"][map_state]["ResultWriter"]["Parameters"]["Prefix.$"]
        assert written == f"States.Format('{prefix}/{{}}', $$.Execution.Name)"
        writes = next(render(s) for p in resources[machine]["Properties"]["Policies"] if "Statement" in p
                      for s in p["Statement"] if s.get("Sid") == grant)
        assert writes["Resource"] == statement["Resource"]
        key = f"{prefix}/run-1/0f1e2d3c/manifest.json"
        for action in RECORD_MUTATIONS:
            assert not denied_by(statement, action, key, role_arn, bucket), (prefix, action)
            for other in (*others, org_role if role_arn == batch_role else batch_role):
                assert denied_by(statement, action, key, other, bucket), (prefix, action, other)
        assert not denied_by(statement, "s3:GetObject", key, others[0], bucket), "reading stays as it is"
        assert not denied_by(statement, "s3:PutObject", "lists/users.csv", others[1], bucket), "user lists are the operators'"
    for action in RECORD_MUTATIONS:
        privilege, _ = sar_privilege(action)
        assert [r["resource_type"] for r in privilege["resource_types"] if r["resource_type"]] == ["object*"], action


def test_reports_expire_with_the_records():
    """RecordExpirationDays expires the audit bucket's records/ and, alike, the reports that
    summarise them (org-runs/, batches/); 0 (the default) keeps everything; user lists stay."""
    doc = template()
    assert doc["Parameters"]["RecordExpirationDays"]["Default"] == 0
    assert doc["Conditions"]["HasRecordExpiration"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "RecordExpirationDays"}, 0]}]}
    records = doc["Resources"]["AuditBucket"]["Properties"]["LifecycleConfiguration"]["Fn::If"]
    reports = doc["Resources"]["BatchReportBucket"]["Properties"]["LifecycleConfiguration"]["Fn::If"]
    assert records[0] == reports[0] == "HasRecordExpiration" and records[2] == reports[2] == {"Ref": "AWS::NoValue"}
    [expire_records] = records[1]["Rules"]
    rules = {rule["Prefix"]: rule for rule in reports[1]["Rules"]}
    assert set(rules) == {"org-runs/", "batches/"}
    for prefix, rule in rules.items():
        assert {k: v for k, v in rule.items() if k not in ("Id", "Prefix")} == \
            {k: v for k, v in expire_records.items() if k not in ("Id", "Prefix")}, prefix
    assert expire_records["ExpirationInDays"] == {"Ref": "RecordExpirationDays"}


def test_object_lock_is_off_by_default_and_cfn_lint_accepts_it_on(tmp_path):
    parameters = template()["Parameters"]
    assert parameters["ObjectLockMode"]["Default"] == ""
    assert set(parameters["ObjectLockMode"]["AllowedValues"]) == {"", "GOVERNANCE", "COMPLIANCE"}
    bucket = template()["Resources"]["AuditBucket"]["Properties"]
    assert bucket["ObjectLockConfiguration"]["Fn::If"][0] == "HasObjectLock"
    assert bucket["ObjectLockConfiguration"]["Fn::If"][1]["Rule"]["DefaultRetention"] == {
        "Mode": {"Ref": "ObjectLockMode"}, "Days": {"Ref": "ObjectLockRetentionDays"}}
    for mode in ("GOVERNANCE", "COMPLIANCE"):
        text = re.sub(r'(ObjectLockMode:\n    Type: String\n    Default: )""', rf"\g<1>{mode}", TEMPLATE.read_text())
        assert f"Default: {mode}" in text
        locked = tmp_path / f"{mode}.yaml"
        locked.write_text(text)
        result = subprocess.run([str(ROOT / ".venv" / "bin" / "cfn-lint"), str(locked)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_alarms_watch_failed_timed_out_and_aborted_executions():
    resources = template()["Resources"]
    alarms = {r["Properties"]["MetricName"]: r["Properties"] for r in resources.values()
              if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"]["Namespace"] == "AWS/States"}
    assert set(alarms) == {"ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"}
    for alarm in alarms.values():
        assert alarm["Namespace"] == "AWS/States"
        assert alarm["Dimensions"] == [{"Name": "StateMachineArn", "Value": {"Ref": "OffboardStateMachine"}}]
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
        assert alarm["AlarmActions"] == {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}


# --- the quarantine (issue 14): disable now, wait, check, then delete ---------

def path_value(document: dict, path: str):
    """A JSONPath of the plain $.a.b form; KeyError when absent."""
    value = document
    for part in path.removeprefix("$.").split("."):
        value = value[part]
    return value


def rule_matches(rule: dict, document: dict) -> bool:
    """One Choice rule, for the comparison operators this definition uses
    (Step Functions developer guide, "Choice workflow state")."""
    if "And" in rule:
        return all(rule_matches(r, document) for r in rule["And"])
    if "Or" in rule:
        return any(rule_matches(r, document) for r in rule["Or"])
    if "Not" in rule:
        return not rule_matches(rule["Not"], document)
    if "IsPresent" in rule:
        try:
            path_value(document, rule["Variable"])
            present = True
        except (KeyError, TypeError):  # TypeError: a path through null
            present = False
        return present is rule["IsPresent"]
    value = path_value(document, rule["Variable"])
    operators = {"IsNull": lambda v, w: (v is None) == w, "BooleanEquals": lambda v, w: v is w,
                 "NumericEquals": lambda v, w: v == w, "NumericLessThan": lambda v, w: v < w,
                 "NumericGreaterThan": lambda v, w: v > w, "StringMatches": lambda v, w: fnmatch.fnmatchcase(v, w),
                 "StringEquals": lambda v, w: v == w}
    [operator] = [key for key in rule if key in operators]
    return operators[operator](value, rule[operator])


def walk(states: dict, start: str, document: dict, stop: str | None = None) -> list[str]:
    """The states an execution passes through from ``start`` when every Task
    succeeds and each Choice is decided on ``document``: up to an End, a Fail,
    ``stop`` or a state already visited."""
    visited, name = [], start
    while name not in visited and name != stop:
        visited.append(name)
        state = states[name]
        if state["Type"] == "Choice":
            name = next((c["Next"] for c in state["Choices"] if rule_matches(c, document)), state.get("Default"))
        elif state["Type"] in ("Fail", "Succeed") or state.get("End"):
            break
        else:
            name = state["Next"]
    return visited


#: Where every stage after GetUsername works: the account the user was
#: resolved in, with a session named after the execution (crates/core/src/sessions.rs).
# Where a stage works, and the execution it works for (the function admits the
# invocation only as that running execution's pending step: crates/core/src/workflow.rs).
PLACEMENT = {"Account.$": "$.Target.Account", "ExecutionName.$": "$$.Execution.Name",
             "ExecutionId.$": "$$.Execution.Id"}

SAMPLE_STATE = {"Target": {"DryRun": False, "DeleteAfter": "2026-12-01T17:00:00Z"}, "Round": 0, "Quarantine": None,
                "QuarantineCheck": None, "Published": {"FailedEntryCount": 0}}
DELETIONS = {"DeleteKeysCertificatesMfaAndCredentials", "RemoveMFADevices", "DeleteGroupsAndPolicies", "DeleteIAMUserAndVerify"}


def test_a_grace_period_quarantines_waits_until_delete_after_checks_and_only_then_deletes():
    d = definition()
    states = d["States"]
    before = walk(states, d["StartAt"], SAMPLE_STATE, stop="StillQuarantined")
    assert before[before.index("IsDryRun"):] == [
        "IsDryRun", "QuarantineRequested", "QuarantineUser", "QuarantineRecord", "WriteQuarantineRecord",
        "QuarantineComplete", "QuarantinedDetail", "PublishQuarantined", "QuarantinedEventAccepted",
        "WaitForDeleteAfter", "CheckQuarantine"]
    assert states["CheckQuarantine"]["Next"] == "StillQuarantined"
    assert before[:before.index("IsDryRun")] == [
        "ScopeOfInput", "GetUsername", "GetKeysCertificatesMfaAndCredentials", "GetGroupsAndPolicies", "BuildPlan", "FirstRound", "WritePlan"]
    assert states["WaitForDeleteAfter"]["TimestampPath"] == "$.Target.DeleteAfter"
    assert not {"Seconds", "SecondsPath", "Timestamp"} & set(states["WaitForDeleteAfter"])
    # Still quarantined: a fresh inventory, its own plan file, then today's deletion.
    still = {**SAMPLE_STATE, "QuarantineCheck": {"StillQuarantined": True, "Reason": "tagged"}}
    assert walk(states, "StillQuarantined", still, stop="GetKeysCertificatesMfaAndCredentials") == ["StillQuarantined", "DeletionPhase"]
    phase = states["DeletionPhase"]["Parameters"]
    after = {**SAMPLE_STATE, "Quarantine": {"QuarantinedUntil": SAMPLE_STATE["Target"]["DeleteAfter"]}}
    assert phase["Round"] == 0 and phase["Quarantine.$"] == "$.Quarantine" and phase["PlanFile"] == "deletion-plan.json"
    deletion = walk(states, "DeletionPhase", after)
    assert deletion[-1] == "Offboarded" and "WritePlan" in deletion and DELETIONS <= set(deletion)
    assert "QuarantineUser" not in deletion, "a second pass through QuarantineRequested goes to the deletion"
    # Restored meanwhile: nothing deleted, and that is recorded and announced.
    for check in ({"StillQuarantined": False, "Reason": "tag removed"}, {"StillQuarantined": None, "Reason": "?"}):
        ended = walk(states, "StillQuarantined", {**SAMPLE_STATE, "QuarantineCheck": check})
        assert ended == ["StillQuarantined", "FindRestoreRecord", "RestoredRecord", "WriteRestoredRecord",
                         "RestoredDetail", "PublishRestored", "RestoredEventAccepted", "Restored"], check
    assert states["RestoredRecord"]["Parameters"] == {
        "Outcome": "Restored", "User.$": "$.Target.User", "Context.$": "$.Target.Context", "Quarantine.$": "$.Quarantine",
        "Reason.$": "$.QuarantineCheck.Reason", "FoundAt.$": "$$.State.EnteredTime",
        "TagExpected.$": "$.QuarantineCheck.TagExpected", "TagFound.$": "$.QuarantineCheck.TagFound",
        "RestoreRecords.$": "$.RestoreRecords.Count"}
    assert states["Restored"] == {**states["Restored"], "Type": "Pass", "End": True, "InputPath": "$.Record"}
    assert not DELETIONS & set(before)
    # Without a grace period, or on a dry run: no quarantine at all.
    plain = walk(states, d["StartAt"], {**SAMPLE_STATE, "Target": {"DryRun": False, "DeleteAfter": None}})
    assert plain[-1] == "Offboarded" and not {"QuarantineUser", "WaitForDeleteAfter"} & set(plain)
    dry = walk(states, d["StartAt"], {**SAMPLE_STATE, "Target": {"DryRun": True, "DeleteAfter": "2026-12-01T17:00:00Z"}})
    assert dry[-1] == "Planned" and "QuarantineUser" not in dry


FANOUT_RS = (ROOT / "crates" / "core" / "src" / "fanout.rs").read_text()
ACCOUNT_SUMMARY_RS = (ROOT / "crates" / "core" / "src" / "account_summary.rs").read_text()


def test_every_account_is_a_child_of_a_distributed_map_whose_report_is_summarised():
    """OffboardEachAccount: a Distributed Map over the account ids alone, each item a child
    execution of this machine named <account>-<suffix>, its input the shared child input with
    the item's placement; every item's end in the report (ResultWriter), none in the state;
    one account failing never fails the Map; the summary decides the execution's end."""
    states = definition()["States"]
    each = states["OffboardEachAccount"]
    assert each["Type"] == "Map" and each["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED",
                                                                                   "ExecutionType": "STANDARD"}
    assert each["ItemsPath"] == "$.FanOut.Accounts" and each["MaxConcurrencyPath"] == "$.FanOut.MaxConcurrency"
    assert each["ToleratedFailurePercentage"] == 100, "one account's failure never stops the others"
    assert each["ItemSelector"] == {
        "Placement": {"Account.$": "$$.Map.Item.Value",
                      "ExecutionName.$": "States.Format('{}-{}', $$.Map.Item.Value, $.FanOut.ChildNameSuffix)"},
        "ChildInput.$": "$.FanOut.ChildInput"}
    # Every path into the fan-out names a field of the function's answer (AccountFanOut).
    fan_out = rust_struct_fields(FANOUT_RS, "AccountFanOut")
    used = set(re.findall(r"\$\.FanOut\.(\w+)", ASL.read_text()))
    assert used and used <= fan_out, used - fan_out
    processor = each["ItemProcessor"]["States"]
    task = processor["OffboardInAccount"]
    assert each["ItemProcessor"]["StartAt"] == "OffboardInAccount" and task["Next"] == "KeepWhatTheSummaryReads"
    assert task["Resource"] == "arn:aws:states:::states:startExecution.sync:2"
    assert task["Parameters"] == {"StateMachineArn": "${OffboardStateMachineArn}", "Name.$": "$.Placement.ExecutionName",
                                  "Input.$": "States.JsonMerge($.ChildInput, $.Placement, false)"}
    # The placement is what a stage payload names its account with (crates/core/src/sessions.rs).
    sessions = (ROOT / "crates/core/src/sessions.rs").read_text()
    assert {re.search(rf'pub const {c}: &str = "(\w+)";', sessions)[1] for c in ("ACCOUNT_FIELD", "EXECUTION_FIELD")} \
        == {k.removesuffix(".$") for k in each["ItemSelector"]["Placement"]}
    assert task["ResultSelector"] == {"ExecutionArn.$": "$.ExecutionArn", "Output.$": "$.Output"}
    [retrier] = task["Retry"]
    assert all(error.startswith("StepFunctions.") for error in retrier["ErrorEquals"]), "never the child's own failure"
    assert not [s for s in processor.values() if "Catch" in s], "a failed child fails its item, and only its item"
    # The item's result (what the report keeps of a child that SUCCEEDED) is the child's ARN
    # and the few fields the summary tells its ends apart by, each taken only where the
    # child's output has it; never the audit record, which the child wrote to S3 itself.
    summary_reads = {"Outcome", "DryRun", "UserDeletion"}
    child_output = ACCOUNT_SUMMARY_RS.split("struct ChildOutput {", 1)[1].split("\n}", 1)[0]
    assert summary_reads == {"".join(part.title() for part in name.split("_"))
                             for name in re.findall(r"^\s+(\w+):", child_output, re.M)}
    arn = "arn:aws:states:us-east-1:123456789012:execution:iam-offboard-offboard:111122223333-alice-org"
    record = {"User": {"UserName": "alice"}, "DryRun": False, "Items": {"AccessKeys": [{"AccessKeyId": "AKIA"}]},
              "UserDeletion": {"Outcome": "Removed", "VerificationAttempts": 1}, "Rounds": 0, "Timings": {}}
    plan = {"User": {"UserName": "alice"}, "DryRun": True, "Items": {}, "UserDeletion": None}
    restored = {"Outcome": "Restored", "User": {"UserName": "alice"}, "Quarantine": {}, "Reason": "tag removed"}
    kept = {}
    for what, output in [("record", record), ("plan", plan), ("restored", restored), ("other", {"Unexpected": 1})]:
        result = {"ExecutionArn": arn, "Output": output}
        path = walk(processor, "KeepWhatTheSummaryReads", result)
        assert len(path) == 2 and processor[path[-1]]["Type"] == "Pass" and processor[path[-1]]["End"] is True
        parameters = processor[path[-1]]["Parameters"]
        assert parameters["ExecutionArn.$"] == "$.ExecutionArn"
        kept[what] = {key.removesuffix(".$"): path_value(result, value) if key.endswith(".$") else value
                      for key, value in parameters["Output"].items()}
    assert kept == {"record": {"DryRun": False, "UserDeletion": {"Outcome": "Removed", "VerificationAttempts": 1}},
                    "plan": {"DryRun": True, "UserDeletion": None}, "restored": {"Outcome": "Restored"}, "other": {}}
    # Every field a Pass state takes was found present by the Choice that leads to it.
    for rule in processor["KeepWhatTheSummaryReads"]["Choices"]:
        checked = {r["Variable"] for r in rule.get("And", [rule]) if r.get("IsPresent") is True}
        taken = {v for k, v in processor[rule["Next"]]["Parameters"]["Output"].items() if k.endswith(".$")}
        assert taken == checked, rule
    assert not [k for k in processor[processor["KeepWhatTheSummaryReads"]["Default"]]["Parameters"]["Output"]]
    assert each["ResultWriter"] == {"Resource": "arn:aws:states:::s3:putObject", "Parameters": {
        "Bucket": "${BatchReportBucketName}", "Prefix.$": "States.Format('org-runs/{}', $$.Execution.Name)"}}
    assert (each["ResultPath"], each["Next"]) == ("$.Report", "SummarizeAccounts")
    assert each["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.MapFailure", "Next": "AccountsNotRun"}]
    assert states["AccountsNotRun"] == {**states["AccountsNotRun"], "Type": "Fail", "Error": "MapRunFailed",
                                        "CausePath": "States.JsonToString($.MapFailure)"}
    # The summary: the batch function's SummarizeAccounts call, every field of its request.
    summarize = states["SummarizeAccounts"]
    assert summarize["Resource"] == "${OffboardBatchFunctionArn}"
    assert set(summarize["Parameters"]) == {"SummarizeAccounts", "ExecutionId.$"}
    request = rust_struct_fields(ACCOUNT_SUMMARY_RS, "AccountsSummaryRequest")
    assert {k.removesuffix(".$") for k in summarize["Parameters"]["SummarizeAccounts"]} == request
    # What the report is checked against: the Map's own output (its location and Map Run),
    # the deployment's report bucket (the ResultWriter's), and this execution (its name
    # bounds the report's keys and names each child).
    asked = summarize["Parameters"]["SummarizeAccounts"]
    assert asked["ResultWriterDetails.$"] == "$.Report.ResultWriterDetails"
    assert asked["MapRunArn.$"] == "$.Report.MapRunArn"
    assert asked["ReportBucket"] == each["ResultWriter"]["Parameters"]["Bucket"] == "${BatchReportBucketName}"
    assert asked["ExecutionId.$"] == summarize["Parameters"]["ExecutionId.$"] == "$$.Execution.Id"
    prefix = re.search(r"'([\w-]+)/\{\}'", each["ResultWriter"]["Parameters"]["Prefix.$"])[1]
    assert re.search(r'pub const REPORT_PREFIX: &str = "([\w-]+)";', ACCOUNT_SUMMARY_RS)[1] == prefix == "org-runs"
    assert summarize["ResultPath"] == "$", "the summary replaces the state: the account list goes no further"
    assert summarize["Catch"][0]["Next"] == "AccountsNotSummarized"
    # Fail only when some account failed, the summary (bounded) as the cause.
    summary = rust_struct_fields(ACCOUNT_SUMMARY_RS, "AccountsSummary")
    assert states["AnyAccountFailed"]["Choices"] == [{"Variable": "$.Failed", "NumericGreaterThan": 0,
                                                      "Next": "SomeAccountsFailed"}] and "Failed" in summary
    assert walk(states, "AnyAccountFailed", {"Failed": 1})[-1] == "SomeAccountsFailed"
    assert walk(states, "AnyAccountFailed", {"Failed": 0})[-1] == "AccountsDone"
    assert states["SomeAccountsFailed"] == {**states["SomeAccountsFailed"], "Type": "Fail", "Error": "SomeAccountsFailed",
                                            "CausePath": "States.JsonToString($)"}
    assert states["AccountsDone"] == {"Type": "Succeed"}
    d = definition()
    assert walk(states, d["StartAt"], {"Accounts": ["111122223333"], "Failed": 0}) == [
        "ScopeOfInput", "ResolveAccounts", "OffboardEachAccount", "SummarizeAccounts", "AnyAccountFailed", "AccountsDone"]


def test_account_concurrency_has_the_range_the_functions_accept():
    """AccountConcurrency reaches GetUsername's function as OFFBOARD_ACCOUNT_CONCURRENCY, which
    refuses to start outside 1..MAX_ACCOUNT_CONCURRENCY (crates/core/src/accounts.rs): the
    template must not allow a value the function refuses, nor refuse one it takes."""
    source = (ROOT / "crates/core/src/accounts.rs").read_text()
    most = int(re.search(r"pub const MAX_ACCOUNT_CONCURRENCY: u32 = ([\d_]+);", source)[1].replace("_", ""))
    default = int(re.search(r"pub const DEFAULT_ACCOUNT_CONCURRENCY: u32 = ([\d_]+);", source)[1].replace("_", ""))
    doc = template()
    parameter = doc["Parameters"]["AccountConcurrency"]
    assert (parameter["MinValue"], parameter["MaxValue"], parameter["Default"]) == (1, most, default) == (1, 1000, 10)
    variables = doc["Resources"]["GetUsernameFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["OFFBOARD_ACCOUNT_CONCURRENCY"] == {"Ref": "AccountConcurrency"}


def test_the_quarantine_tasks_send_the_contracts_requests_and_carry_the_quarantine_along():
    states = definition()["States"]
    assert states["RecordPartialQuarantine"]["Parameters"] == {
        "Action": "Record", "UserName.$": "$.Target.User.UserName", "UserId.$": "$.Target.User.UserId",
        "DeleteAfter.$": "$.Target.DeleteAfter", "ExecutionArn.$": "$$.Execution.Id",
        "Credentials.$": "$.Credentials", "Permissions.$": "$.Permissions", "Failure.$": "$.Failure", **PLACEMENT}
    assert states["QuarantineUser"]["Parameters"] == {
        "Action": "Quarantine", "UserName.$": "$.Target.User.UserName", "UserId.$": "$.Target.User.UserId",
        "DeleteAfter.$": "$.Target.DeleteAfter", "ExecutionArn.$": "$$.Execution.Id",
        "Credentials.$": "$.Credentials", "Permissions.$": "$.Permissions", **PLACEMENT}
    assert states["CheckQuarantine"]["Parameters"] == {
        "Action": "Check", "UserName.$": "$.Target.User.UserName", "UserId.$": "$.Target.User.UserId",
        "DeleteAfter.$": "$.Target.DeleteAfter", **PLACEMENT}
    assert states["QuarantineUser"]["Resource"] == states["CheckQuarantine"]["Resource"] == "${QuarantineUserFunctionArn}"
    assert (states["QuarantineUser"]["ResultPath"], states["CheckQuarantine"]["ResultPath"]) == ("$.Quarantine", "$.QuarantineCheck")
    assert states["CheckQuarantine"]["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.Failure", "Next": "RecordFailure"}]
    # The same retriers on every function task, the new ones included.
    reference = states["GetUsername"]["Retry"]
    for name, state in lambda_tasks(states):
        assert state["Retry"] == reference, name
    # plan.json first, deletion-plan.json after the wait; plan.json is never overwritten.
    assert states["WritePlan"]["Parameters"]["Key.$"] == "States.Format('{}{}', $.RecordPrefix, $.PlanFile)"
    first = states["GetUsername"]["ResultSelector"]
    assert (first["PlanFile"], first["Quarantine"], first["QuarantineCheck"]) == ("plan.json", None, None)
    # Every state-resetting Pass keeps the same fields as GetUsername's.
    for name in ("NextRound", "DeletionPhase"):
        fields = {key.removesuffix(".$") for key in states[name]["Parameters"]}
        assert fields == {key.removesuffix(".$") for key in first}, (name, fields ^ set(first))
    assert states["NextRound"]["Parameters"]["PlanFile.$"] == "$.PlanFile"
    assert states["NextRound"]["Parameters"]["Quarantine.$"] == "$.Quarantine"
    # The final record and the failure record carry it.
    assert states["DeleteIAMUserAndVerify"]["Parameters"]["Quarantine.$"] == "$.Quarantine"
    assert states["RecordFailure"]["Parameters"]["FailureRecord"]["Quarantine.$"] == "$.Quarantine"
    write = states["WriteQuarantineRecord"]["Parameters"]
    assert write["Key.$"] == "States.Format('{}quarantine.json', $.RecordPrefix)"
    assert write["Body.$"] == "States.JsonToString($.QuarantineRecord)" == f"States.JsonToString({states['QuarantineRecord']['ResultPath']})"
    entry = states["PublishQuarantined"]["Parameters"]["Entries"][0]
    assert entry["DetailType"] == "IAM User Quarantined" and entry["Detail.$"] == "States.JsonToString($.EventDetail)"


def test_the_quarantined_event_detail_fits_the_schema():
    schema = json.loads((ROOT / "schemas" / "offboard-event-detail.schema.json").read_text())
    detail = definition()["States"]["QuarantinedDetail"]["Parameters"]
    fields = {key.removesuffix(".$") for key in detail}
    assert set(schema["required"]) | {"Items", "DeleteAfter"} == fields, fields ^ set(schema["required"])
    assert fields <= set(schema["properties"])
    assert detail["Outcome"] == "Quarantined" and detail["DeleteAfter.$"] == "$.Target.DeleteAfter"
    assert detail["RecordUri.$"] == "States.Format('s3://${AuditBucketName}/{}quarantine.json', $.RecordPrefix)"
    assert {key.removesuffix(".$") for key in detail["Items"]} == set(schema["properties"]["Items"]["required"])


# --- the definition executed by moto's interpreter, with stand-in functions ----

STAND_IN = r'''
"""A stand-in for every function (which one: AWS_LAMBDA_FUNCTION_NAME), on the
Lambda Runtime API: canned answers shaped as the contract's, each request
logged to $STUB_LOG/<stage>.jsonl."""
import json, os, time, urllib.request

STAGE = os.environ["AWS_LAMBDA_FUNCTION_NAME"].removeprefix("offboard-")
EMPTY_CREDENTIALS = {"LoginProfile": None, "AccessKeys": [], "SSHPublicKeys": [], "SigningCertificates": [],
                     "ServiceSpecificCredentials": [], "MFADevices": []}
IDS = {"AccessKeys": [], "SSHPublicKeys": [], "SigningCertificates": [], "ServiceSpecificCredentials": []}


def answer(event):
    if STAGE == "GetUsername":
        event = event["Input"]  # the state machine sends {"Input": <execution input>, "ExecutionId": ...}
        name = event["UserName"]
        user = {"UserName": name, "UserId": "AIDA" + "".join(c for c in name.upper() if c.isalnum()),
                "Arn": f"arn:aws:iam::123456789012:user/{name}", "Path": "/", "CreateDate": "2026-01-01T00:00:00Z",
                "PasswordLastUsed": None, "Tags": [], "PermissionsBoundary": None}
        return {"User": user, "Account": "123456789012", "DryRun": False, "Context": None,
                "DeleteAfter": event.get("DeleteAfter"), "DurationMs": 1}
    if STAGE == "GetKeysCertificatesMfaAndCredentials":
        return {**EMPTY_CREDENTIALS, "AccessKeys": [{"AccessKeyId": "AKIASTANDIN000000001", "Status": "Active",
                                                     "CreateDate": "2026-01-01T00:00:00Z"}], "DurationMs": 1}
    if STAGE == "GetGroupsAndPolicies":
        return {"Groups": [], "InlinePolicies": [], "AttachedPolicies": [], "DurationMs": 1}
    if STAGE == "QuarantineUser" and event["Action"] == "Quarantine":
        return {"QuarantinedUntil": event["DeleteAfter"], "ExecutionArn": event["ExecutionArn"],
                "TagKey": "offboard:quarantined-until", "DenyAllPolicyArn": "arn:aws:iam::aws:policy/AWSDenyAll",
                "DenyAllAttachedByQuarantine": True,
                "Deactivated": {**IDS, "AccessKeys": ["AKIASTANDIN000000001"]}, "AlreadyInactive": IDS,
                "Kept": {"LoginProfile": False, "MFADevices": []}, "DurationMs": 1}
    if STAGE == "QuarantineUser":
        if event["UserName"].startswith("gone"):
            raise LookupError("UserNotFound")
        still = event["UserName"].startswith("still")
        return {"StillQuarantined": still, "Reason": "tagged by this quarantine" if still else "tag removed",
                "TagExpected": event["DeleteAfter"], "TagFound": event["DeleteAfter"] if still else None, "DurationMs": 1}
    if STAGE == "DeleteIAMUserAndVerify":
        items = {**EMPTY_CREDENTIALS, "Groups": [], "InlinePolicies": [], "AttachedPolicies": []}
        return {"User": event["Target"]["User"], "DryRun": False, "Context": None, "Items": items,
                "UserDeletion": {"Outcome": "Removed", "VerificationAttempts": 1}, "Rounds": 0, "Timings": {},
                "Quarantine": event.get("Quarantine")}
    return {**EMPTY_CREDENTIALS, "Groups": [], "InlinePolicies": [], "AttachedPolicies": []}


base = f"http://{os.environ['AWS_LAMBDA_RUNTIME_API']}/2018-06-01/runtime/invocation"
while True:
    with urllib.request.urlopen(f"{base}/next") as response:
        request_id = response.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(response.read() or b"{}")
    with open(os.path.join(os.environ["STUB_LOG"], f"{STAGE}.jsonl"), "a") as log:
        log.write(json.dumps({"Time": time.time(), "Event": event}) + "\n")
    try:
        body, outcome = answer(event), "response"
    except LookupError as error:
        body, outcome = {"errorType": str(error), "errorMessage": "stand-in: the user is gone"}, "error"
    urllib.request.urlopen(urllib.request.Request(f"{base}/{request_id}/{outcome}", data=json.dumps(body).encode(),
                                                  method="POST")).read()
'''


@pytest.fixture()
def stand_in_stack(tmp_path, monkeypatch):
    """The local stack (moto's interpreter, S3, EventBridge) running the real
    definition, its functions replaced by STAND_IN: the definition's own
    behaviour, whatever the binaries do."""
    import sys
    import stat

    sys.path.insert(0, str(ROOT / "tests" / "emulator"))
    from lambda_host import FUNCTIONS
    from stack import Stack

    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN)
    bin_dir, log_dir = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir()
    log_dir.mkdir()
    for binary in FUNCTIONS.values():
        launcher = bin_dir / binary
        launcher.write_text(f"#!/bin/sh\nexec {sys.executable} {script}\n")
        launcher.chmod(launcher.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("OFFBOARD_BIN_DIR", str(bin_dir))
    with Stack(env={"STUB_LOG": str(log_dir)}) as stack:
        stack.invoked = lambda stage: [json.loads(line) for line in (log_dir / f"{stage}.jsonl").read_text().splitlines()] \
            if (log_dir / f"{stage}.jsonl").exists() else []
        yield stack


def test_the_definition_quarantines_waits_and_then_deletes_or_ends_restored(stand_in_stack):
    import datetime

    import jsonschema
    from stack import AUDIT_BUCKET

    stack = stand_in_stack
    schema = json.loads((ROOT / "schemas" / "offboard-event-detail.schema.json").read_text())
    delete_after = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    due = datetime.datetime.strptime(delete_after, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()
    arns = {name: stack.start({"UserName": name, "DeleteAfter": delete_after}, name=name)
            for name in ("still-q", "restored-q", "gone-q")}
    results = {name: stack.wait(arn, timeout=120) for name, arn in arns.items()}
    account = "123456789012"

    def keys(name):
        return [key.rsplit("/", 1)[1] for key in stack.record_keys(f"records/{account}/{name}/{name}/")]

    quarantine_calls = {c["Event"]["UserName"] + ":" + c["Event"]["Action"]: c for c in stack.invoked("QuarantineUser")}
    for name, arn in arns.items():
        request = quarantine_calls[f"{name}:Quarantine"]["Event"]
        assert request["ExecutionArn"] == arn and request["DeleteAfter"] == delete_after
        assert request["Credentials"]["AccessKeys"][0]["AccessKeyId"] == "AKIASTANDIN000000001"
        check = quarantine_calls[f"{name}:Check"]
        assert set(check["Event"]) == {"Action", "UserName", "UserId", "DeleteAfter", "Account", "ExecutionName",
                                       "ExecutionId"}
        assert (check["Event"]["Account"], check["Event"]["ExecutionName"]) == (account, name)
        # moto's Wait truncates to whole seconds (int(delta.total_seconds()) in
        # moto's wait_function/timestamp.py): up to 1 s early, never more.
        assert check["Time"] >= due - 1, "the check runs after the wait"
        record = stack.record(f"records/{account}/{name}/{name}/quarantine.json")
        assert set(record) == {"User", "DryRun", "Context", "Items", "UserDeletion", "Rounds", "Timings", "Quarantine"}
        assert record["Quarantine"]["QuarantinedUntil"] == delete_after and record["DryRun"] is False
        assert record["Items"]["AccessKeys"][0]["AccessKeyId"] == "AKIASTANDIN000000001"

    still = results["still-q"]
    assert still["status"] == "SUCCEEDED", still.get("cause")
    assert keys("still-q") == ["deletion-plan.json", "plan.json", "quarantine.json", "record.json"]
    final = json.loads(still["output"])
    assert final["Quarantine"] == stack.record("records/123456789012/still-q/still-q/quarantine.json")["Quarantine"]
    assert [e["Event"]["Target"]["User"]["UserName"] for e in stack.invoked("DeleteIAMUserAndVerify")] == ["still-q"]
    assert len([e for e in stack.invoked("GetKeysCertificatesMfaAndCredentials") if e["Event"]["UserName"] == "still-q"]) == 2, \
        "a fresh inventory after the wait"

    restored = results["restored-q"]
    assert restored["status"] == "SUCCEEDED", restored.get("cause")
    output = json.loads(restored["output"])
    assert (output["Outcome"], output["Reason"], output["User"]["UserName"]) == ("Restored", "tag removed", "restored-q")
    assert output["Quarantine"]["QuarantinedUntil"] == delete_after
    assert keys("restored-q") == ["plan.json", "quarantine.json", "record.json"]
    assert stack.record("records/123456789012/restored-q/restored-q/record.json") == output
    assert (output["TagExpected"], output["TagFound"], output["RestoreRecords"]) == (delete_after, None, 0)

    gone = results["gone-q"]
    assert (gone["status"], gone["error"]) == ("FAILED", "UserNotFound")
    failure = stack.record("records/123456789012/gone-q/gone-q/record.json")
    assert failure["Error"] == "UserNotFound" and failure["Quarantine"]["QuarantinedUntil"] == delete_after

    deleted = {e["Event"]["UserName"] for stage in ("DeleteKeysCertificatesMfaAndCredentials", "DeleteGroupsAndPolicies")
               for e in stack.invoked(stage)}
    assert deleted == {"still-q"}, "nothing is deleted for a restored or vanished user"

    events = {}
    for event in stack.events():
        jsonschema.validate(event["detail"], schema)
        events.setdefault(event["detail"]["UserName"], []).append((event["detail-type"], event["detail"]))
    assert [kind for kind, _ in events["still-q"]] == ["IAM User Quarantined", "IAM User Offboarded"]
    assert [kind for kind, _ in events["restored-q"]] == ["IAM User Quarantined", "IAM User Offboarding Restored"]
    assert [kind for kind, _ in events["gone-q"]] == ["IAM User Quarantined", "IAM User Offboarding Failed"]
    quarantined = events["still-q"][0][1]
    assert quarantined["DeleteAfter"] == delete_after and quarantined["Outcome"] == "Quarantined"
    assert quarantined["RecordUri"] == f"s3://{AUDIT_BUCKET}/records/{account}/still-q/still-q/quarantine.json"
    assert quarantined["Items"]["AccessKeys"] == 1


# --- the batch state machine (issue 13): statemachine/offboard-batch.asl.json ---

BATCH_SUBSTITUTIONS = {"OffboardBatchFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:OffboardBatch",
                       "OffboardStateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:offboard",
                       "BatchReportBucketName": "offboard-batch-reports"}


def batch_definition() -> dict:
    return json.loads(BATCH_ASL.read_text())


def batch_substituted() -> str:
    text = BATCH_ASL.read_text()
    for name, value in BATCH_SUBSTITUTIONS.items():
        text = text.replace("${%s}" % name, value)
    assert "${" not in text
    return text


def rust_struct_fields(source: str, struct: str) -> set[str]:
    """The PascalCase JSON field names of a `#[serde(rename_all = "PascalCase")]` struct."""
    body = source.split(f"pub struct {struct} {{", 1)[1].split("\n}", 1)[0]
    return {"".join(part.title() for part in name.split("_")) for name in re.findall(r"pub (\w+):", body)}


BATCH_RS = (ROOT / "crates" / "core" / "src" / "batch.rs").read_text()
PLAN_FIELDS = rust_struct_fields(BATCH_RS, "BatchPlan")
USER_FIELDS = rust_struct_fields(BATCH_RS, "BatchUser")
SUMMARY_FIELDS = rust_struct_fields(BATCH_RS, "BatchSummary")
SUMMARY_REQUEST_FIELDS = rust_struct_fields(BATCH_RS, "SummaryRequest")


def test_the_batch_definition_passes_asl_validator_and_moto(tmp_path):
    from moto import mock_aws

    good = tmp_path / "batch.json"
    good.write_text(batch_substituted())
    result = asl_validator(good)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = batch_definition()
    broken["States"]["SummarizeBatch"]["Next"] = "NoSuchState"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(broken))
    assert asl_validator(bad).returncode != 0
    with mock_aws():
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        iam = boto3.client("iam", region_name="us-east-1")
        role = iam.create_role(RoleName="offboard-batch-sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        arn = sfn.create_state_machine(name="offboard-batch", definition=batch_substituted(), roleArn=role)["stateMachineArn"]
        assert json.loads(sfn.describe_state_machine(stateMachineArn=arn)["definition"])["StartAt"] == "ValidateBatch"


def test_the_batch_function_tasks_have_the_offboarding_machines_retriers():
    states = batch_definition()["States"]
    reference = definition()["States"]["GetUsername"]["Retry"]
    tasks = lambda_tasks(states)
    assert [name for name, _ in tasks] == ["ValidateBatch", "SummarizeBatch"]
    for name, state in tasks:
        assert state["Resource"] == "${OffboardBatchFunctionArn}", name
        assert state["Retry"] == reference, name
        assert {e for r in state["Retry"] for e in r["ErrorEquals"]} == RETRIED, name
    # A malformed list ends FAILED with the function's own error name, before any child.
    validate = states["ValidateBatch"]
    assert validate["Parameters"] == {"Validate.$": "$", "ExecutionId.$": "$$.Execution.Id"}
    assert validate["Next"] == "OffboardUsers"
    assert validate["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$", "Next": "InvalidBatch"}]
    assert states["InvalidBatch"] == {**states["InvalidBatch"], "Type": "Fail", "ErrorPath": "$.Error", "CausePath": "$.Cause"}
    # Only the plan and the batch's own id (each child's parent) are kept.
    assert (validate["ResultSelector"], validate["ResultPath"]) == ({"Batch.$": "$", "BatchExecutionId.$": "$$.Execution.Id"}, "$")
    summarize = states["SummarizeBatch"]
    assert set(summarize["Parameters"]) == {"Summarize", "ExecutionId.$"}
    assert {k.removesuffix(".$") for k in summarize["Parameters"]["Summarize"]} == SUMMARY_REQUEST_FIELDS
    assert summarize["Parameters"]["Summarize"]["ResultWriterDetails.$"] == "$.Report.ResultWriterDetails"
    assert summarize["ResultPath"] == "$.Summary"


def test_the_distributed_map_uses_the_path_forms_and_names_each_child_after_its_user():
    states = batch_definition()["States"]
    offboard = states["OffboardUsers"]
    assert offboard["Type"] == "Map" and offboard["ItemsPath"] == "$.Batch.Users"
    assert offboard["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    # The plan's values, never literals (moto also refuses an integer
    # ToleratedFailurePercentage literal: see tests/emulator/sfn_integration.py).
    assert offboard["MaxConcurrencyPath"] == "$.Batch.MaxConcurrency"
    assert offboard["ToleratedFailurePercentagePath"] == "$.Batch.ToleratedFailurePercentage"
    assert not {"MaxConcurrency", "ToleratedFailurePercentage", "ToleratedFailureCount", "ToleratedFailureCountPath",
                "ItemReader", "ItemBatcher"} & set(offboard)
    assert offboard["ItemSelector"] == {"UserName.$": "$$.Map.Item.Value.UserName",
                                        "ExecutionName.$": "$$.Map.Item.Value.ExecutionName",
                                        "DryRun.$": "$.Batch.DryRun", "Context.$": "$.Batch.Context",
                                        "Parent.$": "$.BatchExecutionId"}
    [(name, child)] = offboard["ItemProcessor"]["States"].items()
    assert offboard["ItemProcessor"]["StartAt"] == name == "OffboardUser" and child["End"] is True
    assert child["Resource"] == "arn:aws:states:::states:startExecution.sync:2"
    parameters = child["Parameters"]
    assert parameters["StateMachineArn"] == "${OffboardStateMachineArn}"
    assert parameters["Name.$"] == "$.ExecutionName", "the name a single offboarding of the user gets"
    assert parameters["Input"] == {"UserName.$": "$.UserName", "DryRun.$": "$.DryRun", "Context.$": "$.Context",
                                   "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$": "$.Parent"}
    # The offboarding machine's input parser accepts exactly these fields (it
    # rejects unknown ones); the parent field is the one constant among them.
    source = (ROOT / "crates/core/src/input.rs").read_text()
    plain = re.search(r"const PLAIN_FIELDS: &\[&str\] =\s*&\[([^\]]+)\]", source)[1]
    accepted = set(re.findall(r'"(\w+)"', plain))
    assert "PARENT_FIELD" in plain and 'pub const PARENT_FIELD: &str = "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID";' in source
    accepted.add("AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID")
    assert {k.removesuffix(".$") for k in parameters["Input"]} <= accepted
    assert child["ResultSelector"] == {"ExecutionArn.$": "$.ExecutionArn", "Status.$": "$.Status"}, "small results"
    # Only StartExecution/DescribeExecution throttling and SDK errors are
    # retried; never States.TaskFailed (the child's own failure).
    [retrier] = child["Retry"]
    assert all(error.startswith("StepFunctions.") for error in retrier["ErrorEquals"])
    assert "StepFunctions.ThrottlingException" in retrier["ErrorEquals"]
    assert retrier["JitterStrategy"] == "FULL" and retrier["MaxAttempts"] <= 10
    assert "Catch" not in child, "a failed child fails its item, and only its item"
    writer = offboard["ResultWriter"]
    assert writer == {"Resource": "arn:aws:states:::s3:putObject", "Parameters": {
        "Bucket": "${BatchReportBucketName}", "Prefix.$": "States.Format('batches/{}', $$.Execution.Name)"}}
    assert offboard["ResultPath"] == "$.Report" and offboard["Next"] == "SummarizeBatch"
    assert offboard["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.MapFailure", "Next": "FindReport"}]


def test_every_path_into_the_plan_and_the_summary_names_a_field_of_the_contract():
    text = BATCH_ASL.read_text()
    plan_paths = set(re.findall(r"\$\.Batch\.(\w+)", text))
    assert plan_paths and plan_paths <= PLAN_FIELDS, plan_paths - PLAN_FIELDS
    item_paths = set(re.findall(r"\$\$\.Map\.Item\.Value\.(\w+)", text))
    assert item_paths == USER_FIELDS == {"UserName", "ExecutionName"}
    summary_paths = set(re.findall(r"\$\.Summary\.(\w+)", text))
    assert summary_paths and summary_paths <= SUMMARY_FIELDS, summary_paths - SUMMARY_FIELDS


def test_the_batch_fails_when_any_offboarding_failed_and_otherwise_outputs_the_summary():
    d = batch_definition()
    states = d["States"]
    done = {"Summary": {"FailedCount": 0}}
    assert walk(states, d["StartAt"], done) == ["ValidateBatch", "OffboardUsers", "SummarizeBatch", "AnyFailed", "BatchDone"]
    assert states["BatchDone"] == {"Type": "Succeed", "OutputPath": "$.Summary"}
    failed = walk(states, d["StartAt"], {"Summary": {"FailedCount": 2}})
    assert failed[-1] == "SomeOffboardingsFailed"
    assert states["SomeOffboardingsFailed"] == {"Type": "Fail", "Error": "SomeOffboardingsFailed",
                                                "CausePath": "States.JsonToString($.Summary)"}
    # A failed Map Run is still summarised when its manifest is there, then fails the
    # batch with the Map's own error, the summary as the cause.
    listing = {"MapFailure": {"Error": "States.ExceedToleratedFailureThreshold"}, "Listing": {"KeyCount": 3},
               "Report": {"ResultWriterDetails": {"Key": "batches/b/0f1e/manifest.json"}}, "Summary": {"FailedCount": 0}}
    assert walk(states, "FindReport", listing) == [
        "FindReport", "ReportListed", "PickManifest", "ManifestFound", "SummarizeBatch", "AnyFailed", "MapRunSummary",
        "MapRunFailed"]
    # The Map's error name (States.ExceedToleratedFailureThreshold) goes in the cause:
    # names beginning with "States." are the interpreter's (moto refuses such a Fail
    # error: "Custom Error Names MUST NOT begin with the prefix 'States.'").
    assert states["MapRunSummary"]["Parameters"] == {"Report.$": "States.JsonMerge($.Summary, $.MapFailure, false)"}
    assert states["MapRunFailed"] == {**states["MapRunFailed"], "Type": "Fail", "Error": "MapRunFailed",
                                      "CausePath": "States.JsonToString($.MapRunFailure.Report)"}
    assert walk(states, "FindReport", {"Listing": {"KeyCount": 0}}) == ["FindReport", "ReportListed", "BatchFailed"]
    other = {**listing, "Report": {"ResultWriterDetails": {"Key": "batches/b/0f1e/SUCCEEDED_0.json"}}}
    assert walk(states, "FindReport", other)[-1] == "BatchFailed"
    assert states["BatchFailed"] == {**states["BatchFailed"], "Error": "MapRunFailed",
                                     "CausePath": "States.JsonToString($.MapFailure)"}
    find = states["FindReport"]
    assert find["Resource"] == "arn:aws:states:::aws-sdk:s3:listObjectsV2"
    assert find["Parameters"] == {"Bucket": "${BatchReportBucketName}",
                                  "Prefix.$": "States.Format('batches/{}/', $$.Execution.Name)"}
    assert find["Catch"][0]["Next"] == "BatchFailed"
    assert states["SummarizeBatch"]["Catch"][0]["Next"] == "NotSummarized"


def test_the_batch_machine_in_the_template():
    resources = template()["Resources"]
    machine = resources["OffboardBatchStateMachine"]["Properties"]
    assert machine["DefinitionUri"] == "../statemachine/offboard-batch.asl.json"
    substitutions = machine["DefinitionSubstitutions"]
    assert set(substitutions) == set(BATCH_SUBSTITUTIONS) == set(re.findall(r"\$\{(\w+)\}", BATCH_ASL.read_text()))
    assert substitutions == {"OffboardStateMachineArn": {"Ref": "OffboardStateMachine"},
                             "OffboardBatchFunctionArn": {"Fn::GetAtt": ["OffboardBatchFunction", "Arn"]},
                             "BatchReportBucketName": {"Ref": "BatchReportBucket"}}
    invoked = {p["LambdaInvokePolicy"]["FunctionName"]["Ref"] for p in machine["Policies"] if "LambdaInvokePolicy" in p}
    assert invoked == {"OffboardBatchFunction"}
    statements = {s["Sid"]: render(s) for p in machine["Policies"] if "Statement" in p for s in p["Statement"]
                  if "Sid" in s}
    # startExecution.sync:2 (developer guide, "IAM policies for nested AWS Step
    # Functions calls", Synchronous) on the offboarding machine only.
    assert statements["StartChildOffboardings"]["Resource"] == SAMPLE["OffboardStateMachine"]
    assert statements["FollowChildOffboardings"]["Resource"] == "arn:aws:states:us-east-1:123456789012:execution:offboard:*"
    assert set(statements["ChildCompletionEvents"]["Action"]) == {"events:PutTargets", "events:PutRule", "events:DescribeRule"}
    assert statements["ChildCompletionEvents"]["Resource"].endswith(":rule/StepFunctionsGetEventsForStepFunctionsExecutionRule")
    # The Distributed Map: its own state machine, its own labelled map run's executions.
    name = render(machine["Name"])
    assert name == "iam-offboard-offboard-batch"
    assert statements["RunTheDistributedMap"]["Resource"] == f"arn:aws:states:us-east-1:123456789012:stateMachine:{name}"
    label = batch_definition()["States"]["OffboardUsers"]["Label"]
    assert statements["FollowMapRunExecutions"]["Resource"] == \
        f"arn:aws:states:us-east-1:123456789012:execution:{name}/{label}:*"
    # ResultWriter's prefix, and nothing else of the bucket, is writable.
    prefix = re.search(r"'(\w+)/\{\}'", batch_definition()["States"]["OffboardUsers"]["ResultWriter"]["Parameters"]["Prefix.$"])[1]
    assert statements["WriteBatchReports"]["Resource"] == f"arn:aws:s3:::offboard-batch-reports/{prefix}/*"
    assert statements["FindReportOfFailedMapRun"]["Condition"] == {"StringLike": {"s3:prefix": f"{prefix}/*"}}
    actions = {a for s in statements.values() for a in as_list(s["Action"])}
    assert not {a for a in actions if a.startswith("iam:")}, "the batch machine changes no IAM user itself"
    assert machine["Logging"]["Level"] == "ERROR"


def test_the_batch_function_reads_reports_and_user_lists_only():
    resources = template()["Resources"]
    statements = {s["Sid"]: render(s) for s in function_statements(resources, "OffboardBatchFunction")}
    # Both Distributed Maps' reports: the batch machine's and an org-wide offboarding's.
    assert statements["ReadBatchReports"]["Resource"] == ["arn:aws:s3:::offboard-batch-reports/batches/*",
                                                          "arn:aws:s3:::offboard-batch-reports/org-runs/*"]
    assert statements["ReadUserLists"]["Resource"] == ["arn:aws:s3:::offboard-batch-reports/lists/*",
                                                       "arn:aws:s3:::offboard-user-lists/*"]
    assert statements["TellMissingListsApart"]["Resource"] == ["arn:aws:s3:::offboard-batch-reports",
                                                               "arn:aws:s3:::offboard-user-lists"]
    raw = {s["Sid"]: s for s in function_statements(resources, "OffboardBatchFunction") if "Sid" in s}
    # Without BatchListBucketName, the report bucket's lists/ prefix only.
    assert raw["ReadUserLists"]["Resource"][1] == {"Fn::If": ["HasBatchListBucket", {
        "Fn::Sub": "arn:${AWS::Partition}:s3:::${BatchListBucketName}/*"}, {"Ref": "AWS::NoValue"}]}
    assert template()["Parameters"]["BatchListBucketName"]["Default"] == ""
    assert all("*" != r for s in statements.values() for r in as_list(s["Resource"])), "no Resource *"


def test_the_batch_function_has_its_measured_peak_memory_with_a_margin():
    """OffboardBatch's MemorySize is set for it, not inherited: summarising a report of 5,000
    accounts was measured (docs/DESIGN.md, "What the report holds", peak RSS with
    crates/core/examples/summarize_report.rs); the function keeps at least four times that,
    and no more than Lambda's least when that is enough."""
    design = (ROOT / "docs" / "DESIGN.md").read_text()
    peak_mib = float(re.search(r"its peak RSS summarising either report is \*\*([\d.]+) MiB\*\*", design)[1])
    properties = template()["Resources"]["OffboardBatchFunction"]["Properties"]
    memory = properties["MemorySize"]
    assert memory >= 4 * peak_mib, (memory, peak_mib)
    if 4 * peak_mib <= 128:
        assert memory == 128, "Lambda's least covers it"
    assert (ROOT / "crates" / "core" / "examples" / "summarize_report.rs").exists()
