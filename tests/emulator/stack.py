"""The whole local stack on 127.0.0.1, started and stopped together:

- moto in-process (``mock_aws`` with Step Functions execution on), so its ASL
  interpreter runs statemachine/offboard.asl.json for real, with Step Functions'
  own startExecution integration made to work (sfn_integration.py);
- the strict IAM emulator (moto's server plus this project's extensions,
  fault injection and call log) that the Rust functions call over HTTP;
- the Lambda host running the eight release binaries under the Runtime API,
  reached by the interpreter through AWS_ENDPOINT_URL_LAMBDA.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import boto3
from botocore.config import Config
from moto import mock_aws
from moto.iam.models import iam_backends

from emulator import extend_moto
from lambda_host import REGION, LambdaHost
from server import EmulatorServer
from sfn_integration import extend_step_functions

ROOT = Path(__file__).resolve().parents[2]
DEFINITION = ROOT / "statemachine" / "offboard.asl.json"
AUDIT_BUCKET = "offboard-audit-records"
BATCH_DEFINITION = ROOT / "statemachine" / "offboard-batch.asl.json"
#: The batch machine's ${BatchReportBucketName}: the Distributed Map's report.
REPORT_BUCKET = "offboard-batch-reports"
#: The template's IamBudgetTable: partition key Budget (S), on demand.
BUDGET_TABLE = "offboard-iam-budget"
EVENT_BUS = "default"
TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}
#: The hub's account (moto's default) and the target roles' prefix (template
#: parameter TargetRoleName's default).
ACCOUNT = "123456789012"
TARGET_ROLE_NAME = "iam-offboard-target"
#: The stages that have a target role (infra/target-account.yaml).
TARGET_STAGES = ("GetUsername", "GetKeysCertificatesMfaAndCredentials", "GetGroupsAndPolicies",
                 "DeleteKeysCertificatesMfaAndCredentials", "DeleteGroupsAndPolicies", "DeleteIAMUserAndVerify",
                 "QuarantineUser")


class Stack:
    def __init__(self, *, instances: int = 1, env: dict[str, str] | None = None,
                 credentials: dict[str, tuple[str, str]] | None = None, max_concurrency: int = 1000,
                 timeout_seconds: float = 60.0, idle_seconds: float | None = None, iam_budget: float | None = None,
                 aws_managed_policies: bool = True):
        self.instances, self.env, self.credentials = instances, env or {}, credentials
        #: Whether each account's IAM holds the AWS managed policies (below). moto
        #: loads them all into every account it first sees, about a second each
        #: here: a run over a thousand accounts that quarantines nobody (a dry
        #: run) goes without.
        self.aws_managed_policies = aws_managed_policies
        self.max_concurrency, self.timeout_seconds, self.idle_seconds = max_concurrency, timeout_seconds, idle_seconds
        #: The deployment's IAM budget in calls/s (template parameter
        #: IamCallsPerSecond), kept in the table BUDGET_TABLE; None: no budget.
        self.iam_budget = iam_budget
        self.saved_env: dict[str, str | None] = {}
        self.archived_calls: list[dict] = []

    def __enter__(self) -> "Stack":
        self.use_utc()
        self.mock = mock_aws(config={
            "stepfunctions": {"execute_state_machine": True},
            # Real IAM has every AWS managed policy, among them the one a
            # quarantine attaches. AWS Managed Policy Reference, AWSDenyAll
            # (https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSDenyAll.html):
            # "Description: Deny all access." "You can attach AWSDenyAll to
            # your users, groups, and roles." "ARN: arn:aws:iam::aws:policy/AWSDenyAll";
            # its document is one statement, "Effect" : "Deny", "Action" : [ "*" ],
            # "Resource" : "*". Stock moto loads AWS managed policies only when
            # asked (moto/settings.py load_iam_aws_managed_policies); its copy
            # (moto/iam/aws_managed_policies.py) holds AWSDenyAll with that document.
            "iam": {"load_aws_managed_policies": self.aws_managed_policies},
        })
        if not self.aws_managed_policies:
            # The emulator server asks for them too (server.py), unless told otherwise.
            self.saved_env.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", os.environ.get("MOTO_IAM_LOAD_MANAGED_POLICIES"))
            os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "false"
        self.mock.start()
        extend_moto()
        extend_step_functions()
        self.emulator = EmulatorServer(0)
        self.emulator.thread.start()
        self.iam = boto3.client("iam", region_name=REGION)
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        self.s3 = boto3.client("s3", region_name=REGION)
        self.s3.create_bucket(Bucket=AUDIT_BUCKET)
        self.s3.create_bucket(Bucket=REPORT_BUCKET)
        self.capture_events()
        if self.iam_budget:
            boto3.client("dynamodb", region_name=REGION).create_table(
                TableName=BUDGET_TABLE, BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[{"AttributeName": "Budget", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "Budget", "KeyType": "HASH"}])
            self.env = {**self.env, "OFFBOARD_IAM_CALLS_PER_SECOND": str(self.iam_budget),
                        "OFFBOARD_IAM_BUDGET_TABLE": BUDGET_TABLE}
        self.lambdas = self.start_lambdas()
        self.state_machine_arn = self.create_state_machine()
        return self

    def use_utc(self) -> None:
        """A quarantine's Wait state ends at ``$.Target.DeleteAfter``, a UTC
        timestamp ("an uppercase Z must denote that a numeric time zone offset
        is not present": Step Functions developer guide, "Wait workflow state",
        https://docs.aws.amazon.com/step-functions/latest/dg/state-wait.html).
        moto's interpreter subtracts the naive local ``datetime.now()`` from it
        (moto/stepfunctions/parser/asl/component/state/wait/wait_function/timestamp.py,
        ``_get_wait_seconds``), which is right only when local time is UTC."""
        if time.localtime().tm_gmtoff == 0:
            return
        self.saved_env.setdefault("TZ", os.environ.get("TZ"))
        os.environ["TZ"] = "UTC"
        time.tzset()

    def start_lambdas(self) -> LambdaHost:
        host = LambdaHost(self.emulator.url, instances=self.instances, env=self.env, credentials=self.credentials,
                          max_concurrency=self.max_concurrency, timeout_seconds=self.timeout_seconds,
                          idle_seconds=self.idle_seconds)
        host.start()
        self.saved_env.setdefault("AWS_ENDPOINT_URL_LAMBDA", os.environ.get("AWS_ENDPOINT_URL_LAMBDA"))
        os.environ["AWS_ENDPOINT_URL_LAMBDA"] = host.url
        return host

    def restart_lambdas(self, **changes) -> None:
        """New function processes (e.g. other credentials or environment)."""
        self.lambdas.stop()
        for key, value in changes.items():
            setattr(self, key, value)
        self.lambdas = self.start_lambdas()

    def capture_events(self) -> None:
        """Every event iam-offboard puts on the bus lands in an SQS queue
        (an EventBridge rule with an SQS target, as a consumer would set up)."""
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.events_queue = self.sqs.create_queue(QueueName="offboard-events")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.events_queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events = boto3.client("events", region_name=REGION)
        events.put_rule(Name="iam-offboard-outcomes", EventBusName=EVENT_BUS, EventPattern=json.dumps({"source": ["iam-offboard"]}))
        events.put_targets(Rule="iam-offboard-outcomes", EventBusName=EVENT_BUS, Targets=[{"Id": "queue", "Arn": queue_arn}])

    def events(self) -> list[dict]:
        """The outcome events emitted since the last call (drains the queue)."""
        received = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.events_queue, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return received
            for message in messages:
                received.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.events_queue, ReceiptHandle=message["ReceiptHandle"])

    def record(self, key: str) -> dict:
        return json.loads(self.s3.get_object(Bucket=AUDIT_BUCKET, Key=key)["Body"].read())

    def record_keys(self, prefix: str = "records/") -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=AUDIT_BUCKET, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def create_state_machine(self, name: str = "offboard", **overrides: str) -> str:
        """statemachine/offboard.asl.json with the template's DefinitionSubstitutions:
        the functions, the buckets, the bus, and its own ARN (an org-wide
        offboarding's children are executions of this machine; the template builds
        it from the machine's name too)."""
        text = DEFINITION.read_text()
        own = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}"
        substitutions = {**self.lambdas.arns(), "AuditBucketName": AUDIT_BUCKET, "EventBusName": EVENT_BUS,
                         "BatchReportBucketName": REPORT_BUCKET, "OffboardStateMachineArn": own, **overrides}
        for placeholder, value in substitutions.items():
            text = text.replace("${%s}" % placeholder, value)
        role = self.iam.create_role(RoleName=f"{name}-sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        arn = self.sfn.create_state_machine(name=name, definition=text, roleArn=role)["stateMachineArn"]
        assert arn == own, (arn, own)
        return arn

    def create_batch_state_machine(self, name: str = "offboard-batch", **overrides: str) -> str:
        """statemachine/offboard-batch.asl.json, its children on this stack's
        offboarding state machine (``${OffboardStateMachineArn}``)."""
        text = BATCH_DEFINITION.read_text()
        substitutions = {"OffboardBatchFunctionArn": self.lambdas.arns()["OffboardBatchFunctionArn"],
                         "OffboardStateMachineArn": self.state_machine_arn, "BatchReportBucketName": REPORT_BUCKET,
                         **overrides}
        for placeholder, value in substitutions.items():
            text = text.replace("${%s}" % placeholder, value)
        role = self.iam.create_role(RoleName=f"{name}-sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        return self.sfn.create_state_machine(name=name, definition=text, roleArn=role)["stateMachineArn"]

    def __exit__(self, *exc) -> None:
        self.lambdas.stop()
        self.emulator.stop()
        # moto's stop resets every backend before it drops them
        # (BackendDict.reset, moto/core/base_backend.py: each account's
        # backend is re-initialised, then the dict cleared): for IAM, every AWS
        # managed policy loaded again per account, only to be discarded (the
        # org-wide module's teardown took 20-26 s). Its IAM accounts are
        # dropped first; the data is removed all the same.
        iam_backends.clear()
        self.mock.stop()
        for key, value in self.saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if "TZ" in self.saved_env:
            time.tzset()

    # --- other accounts of the organization ----------------------------------

    def iam_in(self, account: str):  # type: ignore[no-untyped-def]
        """An IAM client acting in ``account`` (the in-process moto, not the
        emulator: for seeding and checking, never for the code under test).
        moto keeps IAM per account and maps an assumed role's credentials to
        the role's account (docs.getmoto.org, "Multi-Account support")."""
        if account == ACCOUNT:
            return self.iam
        credentials = boto3.client("sts", region_name=REGION).assume_role(
            RoleArn=f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole", RoleSessionName="seed")["Credentials"]
        return boto3.client("iam", region_name=REGION, aws_access_key_id=credentials["AccessKeyId"],
                            aws_secret_access_key=credentials["SecretAccessKey"],
                            aws_session_token=credentials["SessionToken"])

    def deploy_target_roles(self, account: str, prefix: str = TARGET_ROLE_NAME) -> None:
        """What infra/target-account.yaml creates in a member account: a role
        per stage, ``<prefix>-<Stage>``, trusting the hub's function roles."""
        iam = self.iam_in(account)
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                          "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}]}
        for stage in TARGET_STAGES:
            iam.create_role(RoleName=f"{prefix}-{stage}", Path="/", AssumeRolePolicyDocument=json.dumps(trust))

    # --- driving executions ------------------------------------------------

    def start(self, execution_input: object, name: str | None = None) -> str:
        kwargs = {"name": name} if name else {}
        return self.sfn.start_execution(stateMachineArn=self.state_machine_arn, input=json.dumps(execution_input),
                                        **kwargs)["executionArn"]

    def wait(self, execution_arn: str, timeout: float = 300) -> dict:
        """Polls every 50 ms, then less often the longer the execution runs
        (at most once a second): each DescribeExecution holds the GIL the
        whole local stack shares, and at 20 polls a second waiting took half
        of it with 100 offboardings running (py-spy)."""
        deadline = time.monotonic() + timeout
        pause = 0.05
        while True:
            execution = self.sfn.describe_execution(executionArn=execution_arn)
            if execution["status"] in TERMINAL:
                return execution
            if time.monotonic() > deadline:
                raise TimeoutError(f"{execution_arn} still {execution['status']} after {timeout} s")
            time.sleep(pause)
            pause = min(pause * 1.25, 1.0)

    def run(self, execution_input: object, name: str | None = None, timeout: float = 300) -> dict:
        return self.wait(self.start(execution_input, name), timeout)

    def history(self, execution_arn: str) -> list[dict]:
        events, token = [], None
        while True:
            page = self.sfn.get_execution_history(executionArn=execution_arn, maxResults=1000,
                                                  **({"nextToken": token} if token else {}))
            events += page["events"]
            token = page.get("nextToken")
            if not token:
                return events

    def run_throttled_after(self, action: str, name: str) -> tuple[dict, list[dict]]:
        """Offboards ``name`` with functions whose timeout is 8 s, IAM throttling
        every call for 10 s from the moment the next ``action`` is served; returns
        the execution and its failed Lambda attempts' details. A stage stops
        waiting 4 s before its deadline and the state machine's retrier takes
        over: the way to make a stage stop part-way, as a real deadline would."""
        self.restart_lambdas(timeout_seconds=8.0)

        def throttle_everything_for_ten_seconds():
            self.faults(ThrottleRate=1.0)
            threading.Timer(10, self.faults).start()

        self.emulator.app.on_next(action, throttle_everything_for_ten_seconds)
        try:
            execution = self.run({"UserName": name}, name=name)
            history = self.history(execution["executionArn"])
        finally:
            self.faults()
            self.restart_lambdas(timeout_seconds=60.0)
        return execution, [e["lambdaFunctionFailedEventDetails"] for e in history if e["type"] == "LambdaFunctionFailed"]

    def invoke(self, stage: str, payload: dict) -> tuple[str | None, dict]:
        """Invokes ``offboard-<stage>`` directly, as a caller holding
        lambda:InvokeFunction could, skipping the state machine; returns
        (X-Amz-Function-Error, body). One attempt: an invocation that may
        mutate is never silently repeated by the SDK.

        A function error is HTTP 200 with X-Amz-Function-Error and the body
        ``{"errorType", "errorMessage"}`` (AWS Lambda API Reference, Invoke:
        "FunctionError — If present, indicates that an error occurred during
        function execution. Details about the error are included in the response
        payload", https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html)."""
        client = boto3.client("lambda", endpoint_url=self.lambdas.url, region_name=REGION,
                              aws_access_key_id="local", aws_secret_access_key="local",
                              config=Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=120))
        response = client.invoke(FunctionName=f"offboard-{stage}", Payload=json.dumps(payload).encode())
        assert response["StatusCode"] == 200, response
        return response.get("FunctionError"), json.loads(response["Payload"].read())

    def reset(self) -> None:
        """Between two scenarios on one stack: no faults, no pending hooks or
        injected function errors, and empty call, invocation and event logs."""
        self.faults()
        with self.emulator.app.lock:
            self.emulator.app.hooks.clear()
        self.lambdas.clear_injected_errors()
        self.lambdas.invocations.clear()
        self.clear_calls()
        self.events()

    # --- the emulator's control endpoint -------------------------------------

    def faults(self, **settings) -> None:
        self.emulator.app.set_faults(settings)

    def calls(self) -> list[dict]:
        with self.emulator.app.lock:
            return list(self.emulator.app.calls)

    def clear_calls(self) -> None:
        with self.emulator.app.lock:
            self.archived_calls += self.emulator.app.calls
            self.emulator.app.calls.clear()

    def all_calls(self) -> list[dict]:
        return self.archived_calls + self.calls()

