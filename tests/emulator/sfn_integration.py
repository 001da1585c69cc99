"""Step Functions' own service integration, ``arn:aws:states:::states:startExecution``
(request-response, ``.sync`` and ``.sync:2``), made to run child executions in
moto 5.2.5's ASL interpreter the way Step Functions does.

What stock moto 5.2.5 does: its interpreter is LocalStack's, vendored, with the
request/response normalisation stubbed out. In
moto/stepfunctions/parser/asl/component/state/exec/state_task/service/state_task_service.py,
``StateTaskService._normalise_parameters`` and ``_normalise_response`` are ``pass``
(LocalStack's originals map the ASL field names onto botocore's shapes:
localstack/localstack, localstack-core/localstack/services/stepfunctions/asl/component/
state/state_execution/state_task/service/state_task_service.py, commit
b04c14cef11671f07f1d6d5a451f0d766600cf1a). So ``StateTaskServiceSfn._eval_service_task``
(state_task_service_sfn.py) calls ``boto3 stepfunctions.start_execution(StateMachineArn=...,
Input=..., Name=...)``; botocore's JSON serializer has no member ``StateMachineArn``
(the API's is ``stateMachineArn``) and raises ``KeyError('StateMachineArn')``, which the
task turns into ``States.Runtime`` with cause ``'StateMachineArn'``. Had the call gone
through, the ``.sync`` resolvers would then have failed the same way reading
``submission_output["ExecutionArn"]`` from the camelCase response, and returned
camelCase DescribeExecution fields.

Short names used in the comments:

- [CONNECT] Step Functions Developer Guide, "Start a new AWS Step Functions state machine
            from a running execution",
            https://docs.aws.amazon.com/step-functions/latest/dg/connect-stepfunctions.html
            (found in the docs corpus as its translations, e.g.
            https://docs.aws.amazon.com/de_de/step-functions/latest/dg/connect-stepfunctions.html,
            and https://docs.amazonaws.cn/step-functions/latest/dg/connect-stepfunctions.md;
            English markdown source: https://github.com/awsdocs/aws-step-functions-developer-guide,
            doc_source/connect-stepfunctions.md, commit 3d6752c179885aa864a2a49eb47a8131b5004aa0)
- [API]     Step Functions API Reference, StartExecution,
            https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html
            (the same text: AWS CLI reference, start-execution,
            https://docs.aws.amazon.com/cli/latest/reference/stepfunctions/start-execution.html,
            and botocore's model, botocore/data/stepfunctions/2016-11-23/service-2.json)
- [LS-CB]   a real Step Functions execution history recorded by LocalStack's AWS-validated
            snapshot tests (``@markers.aws.validated``; identifiers and dates redacted), commit
            b04c14cef11671f07f1d6d5a451f0d766600cf1a of https://github.com/localstack/localstack:
            tests/aws/services/stepfunctions/v2/callback/test_callback.snapshot.json
            (test_start_execution_sync, test_start_execution_sync2,
            test_start_execution_sync_delegate_failure);
  [LS-SFN]  ... tests/aws/services/stepfunctions/v2/services/test_sfn_task_service.snapshot.json
            (test_start_execution, test_start_execution_input_json);
  [LS-ERR]  ... tests/aws/services/stepfunctions/v2/error_handling/test_task_service_sfn.snapshot.json
            (test_start_execution_no_such_arn).

Extensions over moto 5.2.5 (``extend_step_functions()``):
- ASL parameters ``StateMachineArn``, ``Input`` (a JSON value or a string), ``Name`` reach
  StartExecution as its ``stateMachineArn``, ``input``, ``name``;
- results come back in Step Functions' casing: request-response ``{"ExecutionArn",
  "StartDate"}``; ``.sync`` the child's DescribeExecution (``ExecutionArn``, ``Input``,
  ``InputDetails``, ``Name``, ``Output`` as a JSON string, ``OutputDetails``, ``StartDate``,
  ``StateMachineArn``, ``Status``, ``StopDate``); ``.sync:2`` the same with ``Input`` and
  ``Output`` parsed;
- a child that ends FAILED, TIMED_OUT or ABORTED fails the parent's task with
  ``States.TaskFailed``, its Cause the child's DescribeExecution as a JSON string
  (``Error``, ``Cause``, ``Status``, ...); stock moto's resolver already raised this, it now
  carries Step Functions' casing;
- a StartExecution without a name gets a UUID, as Step Functions does; stock moto's
  interpreting backend names it ``None``, so a second unnamed start on the same state
  machine is ``ExecutionAlreadyExists``; a given name is checked as stock moto's
  non-interpreting backend checks it (``InvalidName``, at most 80 characters), and an
  empty one is a ``ValidationException``;
- a StartExecution error whose code already ends in ``Exception`` is named
  ``StepFunctions.<Code>`` (stock moto: ``StepFunctions.<Code>Exception``).
- a Lambda Task whose Invoke call fails (Lambda's 429 when concurrency runs out, say)
  fails as ``Lambda.<Lambda's error code>``, e.g. ``Lambda.TooManyRequestsException``
  (stock moto: ``Exception``, which no Lambda retrier matches; see ``_lambda_task_error``);
- each JSONPath is parsed once, not on every evaluation (see ``_cache_json_path_parsing``).
Kept from stock moto, already Step Functions' behaviour: a StartExecution error becomes
``StepFunctions.<Code>Exception`` (e.g. ``StepFunctions.ExecutionAlreadyExistsException``)
with Cause ``<message> (Service: AWSStepFunctions; Status Code: 400; Error Code: <Code>;
Request ID: <id>; Proxy: null)`` ([LS-ERR] records ``StepFunctions.StateMachineDoesNotExistException``
so), and StartExecution's name idempotency (see the note above ``extend_step_functions``).

Not emulated: the ``SdkHttpMetadata`` / ``SdkResponseMetadata`` fields real Step Functions
adds to the request-response result ([LS-SFN]; HTTP headers of the call, nothing a state
machine should read); ``.waitForTaskToken`` (stock moto's path, untouched); the exact
timestamp text of ``StartDate`` / ``StopDate``: [LS-CB] redacts them, so they are ISO 8601
strings here (Step Functions' TestState API rejects a number there, "Field 'StartDate' must
be a string": tests/aws/services/stepfunctions/v2/test_state/test_field_validation_mode.snapshot.json,
test_strict_mode_sfn_task[wrong_timestamp_type_number], same LocalStack commit).

Distributed Map extensions (``extend_step_functions()`` applies them too; their citations
are beside the code, in the second half of this file):
- ``ResultWriter`` writes the result files: ``<Prefix>/<map run id>/SUCCEEDED_0.json`` and
  ``FAILED_0.json`` (a JSON array each, written only when it has entries) and lists them in
  ``manifest.json``'s ``ResultFiles`` as ``{"Key", "Size"}``; one entry per item (child
  workflow execution of the Map Run) in the ``Transformation: NONE`` form;
- ``ToleratedFailureCount`` / ``ToleratedFailurePercentage`` (and their ``...Path`` forms,
  which stock moto already evaluates and validates) take effect: more failed or timed-out
  items than tolerated fail the Map with ``States.ExceedToleratedFailureThreshold``, after
  the result files are written; by default (neither field) one failed item is too many;
- a failed item's result in the Map's output array is its ``NONE``-form record (``Status``,
  ``Error``, ``Cause``, ...) instead of stock moto's ``null``;
- an integer ``ToleratedFailurePercentage`` (``0``, ``50``, ``100``) is accepted: stock moto's
  grammar takes only a decimal there (``50.0``), and refused it at CreateStateMachine.
Not emulated there: ``PENDING_n.json`` (every item runs: moto starts them all, see
``_map_run_with_threshold``), splitting result files at 5 GB, ``WriterConfig``
(moto's grammar has no such field), redrive; DescribeMapRun's ``itemCounts.total`` still
grows as items start, ``pending`` stays 0, and its counters are stock moto's.
"""

from __future__ import annotations

import copy
import datetime
import importlib
import json
import os
import threading
import uuid
from functools import lru_cache
from typing import Any

import boto3
import botocore.session
import jsonpath_ng
import jsonpath_ng.ext
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.stepfunctions.exceptions import ValidationException
from moto.stepfunctions.responses import StepFunctionResponse
from moto.stepfunctions.parser import models as parser_models
from moto.stepfunctions.parser.api import (
    ExecutionFailedEventDetails,
    HistoryEventType,
    LambdaFunctionFailedEventDetails,
)
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
    StatesErrorNameType,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.distributed_iteration_component import (
    DistributedIterationComponent,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor.distributed_item_processor_worker import (
    DistributedItemProcessorWorker,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.iterator.distributed_iterator_worker import (
    DistributedIteratorWorker,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval.resource_eval_s3 import (
    ResourceEvalS3,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_map.state_map import StateMap
from moto.stepfunctions.parser.asl.component.state.exec.state_map.tolerated_failure import (
    ToleratedFailureCountDecl,
    ToleratedFailurePercentageDecl,
)
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.eval.program_state import (
    ProgramEnded,
    ProgramError,
    ProgramStopped,
    ProgramTimedOut,
)
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_sfn,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_lambda import (
    StateTaskServiceLambda,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task_lambda import StateTaskLambda

StateTaskServiceSfn = state_task_service_sfn.StateTaskServiceSfn

_original_normalise_parameters = StateTaskServiceSfn._normalise_parameters
_original_from_error = StateTaskServiceSfn._from_error
_original_start_execution = parser_models.StepFunctionsParserBackend.start_execution


@lru_cache(maxsize=None)
def _operation_model(action: str):  # type: ignore[no-untyped-def]
    # botocore's own model of the API, the one its serializer checks the request against.
    model = botocore.session.get_session().get_service_model("stepfunctions")
    names = {name.lower(): name for name in model.operation_names}
    return model.operation_model(names[action.replace("_", "").lower()])


def _normalise_parameters(self, parameters: dict, boto_service_name=None, service_action_name=None) -> None:  # type: ignore[no-untyped-def]
    # [CONNECT] the Task state's fields are the API's in PascalCase:
    #   "Resource":"arn:aws:states:::states:startExecution.sync:2",
    #   "Parameters":{ "Input":{ "Comment": "Hello world!" },
    #     "StateMachineArn":"arn:aws:states:us-east-1:123456789012:stateMachine:HelloWorld",
    #     "Name":"ExecutionName" }
    # and "Supported Parameters" links StartExecution's Request Syntax, where [API] names
    # them "stateMachineArn", "name", "input". [API] input: "The string that contains the
    # JSON input data for the execution [...] If you don't include any JSON input data,
    # you still must include the two braces". [CONNECT] passes a JSON object as Input; a
    # string is passed through as the JSON text it already is. Stock moto's override turns
    # a non-string Input (absent: {}) into that string, then calls the base class, a no-op
    # in moto; the names are mapped here onto botocore's input shape with the base class's
    # own helper (it matches names case-insensitively).
    _original_normalise_parameters(self, parameters, boto_service_name, service_action_name)
    action = service_action_name or self._get_boto_service_action()
    self._to_boto_request(parameters, _operation_model(action).input_shape)


def _iso(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.timezone.utc).isoformat()
    return value


def _normalise_response(self, response: Any, boto_service_name=None, service_action_name=None) -> None:  # type: ignore[no-untyped-def]
    # Called by moto twice: on StartExecution's response (service_action_name None) and,
    # for .sync / .sync:2, on the child's DescribeExecution once it is no longer RUNNING.
    if not isinstance(response, dict):
        return
    action = service_action_name or self._get_boto_service_action()
    if action == "describe_execution":
        # [LS-CB] every DescribeExecution-based result carries "InputDetails":
        # {"Included": true}; moto's DescribeExecution omits inputDetails.
        response.setdefault("inputDetails", {"included": True})
    # [LS-SFN] request-response result: {"ExecutionArn": ..., "StartDate": ...}
    # (plus SdkHttpMetadata/SdkResponseMetadata, not emulated), [API] StartExecution
    # Response Syntax {"executionArn", "startDate"} in Step Functions' casing.
    # [LS-CB] .sync: "ExecutionArn", "Input": "{}", "InputDetails": {"Included": true},
    # "Name", "Output": "{\"Arg1\":\"argument1\"}", "OutputDetails": {"Included": true},
    # "StartDate", "StateMachineArn", "Status": "SUCCEEDED", "StopDate".
    # [CONNECT] "Nested state machines return the following: startExecution.sync String,
    # startExecution.sync:2 JSON [...] For startExecution.sync: "Output": "{ \"MyKey\":
    # \"MyValue\" }" For startExecution.sync:2: "Output": { "MyKey": "MyValue" }" (stock
    # moto's .sync:2 resolver parses input/output before calling this; [LS-CB] sync2 shows
    # "Input": {} parsed too).
    # [LS-CB] delegate_failure: the child FAILED -> TaskFailed with "error":
    # "States.TaskFailed" and "cause" the same DescribeExecution in this casing, with the
    # child's "Error" and "Cause", "Status": "FAILED", no Output (stock moto's resolver
    # serialises this dict into the Cause after this call).
    self._from_boto_response(response, _operation_model(action).output_shape)
    for key, value in list(response.items()):
        response[key] = _iso(value)


def _start_execution_named(self, state_machine_arn, name=None, execution_input=None, trace_header=None):  # type: ignore[no-untyped-def]
    # [API] name: "If you don't provide a name for the execution, Step Functions
    # automatically generates a universally unique identifier (UUID) as the execution
    # name." (also https://docs.aws.amazon.com/sdk-for-ruby/v3/api/Aws/States/Types/StartExecutionInput.html).
    # moto's interpreting backend (moto/stepfunctions/parser/models.py, start_execution)
    # formats the ARN with name None: ...:execution:<machine>:None, for every unnamed start.
    if name is None:
        name = str(uuid.uuid4())
    elif name == "":
        # [API] Name: "Length Constraints: Minimum length of 1. Maximum length of 80."
        # (botocore's model: "min":1,"max":80). Real message for the maximum, from a real
        # response (https://github.com/getmoto/moto/issues/6438; also
        # https://github.com/gchq/sleeper/issues/1869): "1 validation error detected: Value
        # '<name>' at 'name' failed to satisfy constraint: Member must have length less
        # than or equal to 80"; the minimum's is assumed to follow the same template.
        # (Through the integration botocore's client-side check is off,
        # parameter_validation=False in moto's boto_client_for.)
        raise ValidationException("1 validation error detected: Value '' at 'name' failed to satisfy "
                                  "constraint: Member must have length greater than or equal to 1")
    else:
        # [API] name: "A name must not contain: white space; brackets < > { } [ ];
        # wildcard characters ? *; special characters " # % \ ^ | ~ ` $ & , ; : /; control
        # characters (U+0000-001F, U+007F-009F, U+FFFE-FFFF)" (and at most 80 characters).
        # Stock moto checks exactly this (InvalidName "Invalid Name: '<name>'", or the
        # length ValidationException above) in StepFunctionBackend._validate_name, but its
        # interpreting backend's start_execution skips it ("TODO: validate name format").
        self._validate_name(name)
    return _original_start_execution(self, state_machine_arn, name, execution_input, trace_header)


def _from_error(self, env, ex):  # type: ignore[no-untyped-def]
    # Stock moto names a StartExecution error "StepFunctions." + code + "Exception", the
    # form [LS-ERR] records ("StepFunctions.StateMachineDoesNotExistException" for code
    # StateMachineDoesNotExist): the AWS SDK for Java's exception class (Step Functions
    # runs its integrations with it: the Cause's "(Service: AWSStepFunctions; Status Code:
    # 400; Error Code: ...; Request ID: ...; Proxy: null)" is that SDK's message format).
    # A code that already ends in "Exception" keeps its name as the class name, e.g. a
    # real "Error Code: ValidationException" failure logged as
    # com.amazonaws.services.stepfunctions.model.ValidationException
    # (https://github.com/gchq/sleeper/issues/1869), so stock moto's
    # "StepFunctions.ValidationExceptionException" is corrected to
    # "StepFunctions.ValidationException".
    failure_event = _original_from_error(self, env, ex)
    name = getattr(failure_event.error_name, "error_name", None) or ""
    if name.startswith("StepFunctions.") and name.endswith("ExceptionException"):
        fixed = name[: -len("Exception")]
        failure_event.error_name = CustomErrorName(fixed)
        details = (failure_event.event_details or {}).get("taskFailedEventDetails")
        if details is not None:
            details["error"] = fixed
    return failure_event


# StartExecution's name idempotency needs nothing here: stock moto 5.2.5 already follows
# [API] "StartExecution is idempotent for STANDARD workflows. For a STANDARD workflow, if
# you call StartExecution with the same name and input as a running execution, the call
# succeeds and return the same response as the original request. If the execution is
# closed or if the input is different, it returns a 400 ExecutionAlreadyExists error."
# (moto/stepfunctions/models.py ``_handle_name_input_idempotency``). Through the
# integration that error is ``StepFunctions.ExecutionAlreadyExistsException`` (stock
# ``StateTaskServiceSfn._from_error``, the form [LS-ERR] records for StateMachineDoesNotExist;
# no real record of this one code was found).


# --- Distributed Map: result files and failure thresholds -----------------------------------
#
# Short names used below:
#
# - [RW]     Step Functions Developer Guide, "ResultWriter (Map)",
#            https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultwriter.html
#            (pages corpus: that address; docs corpus: its translations, e.g.
#            https://docs.aws.amazon.com/ja_jp/step-functions/latest/dg/input-output-resultwriter.html,
#            and https://docs.amazonaws.cn/en_us/step-functions/latest/dg/input-output-resultwriter.md;
#            the stored pages stop after the page's opening, so the sections "Transformation
#            NONE" and "Exporting to Amazon S3" quoted here were read in a markdown copy of the
#            English page held in the code index).
# - [THRESH] Step Functions Developer Guide, "Tolerated failure threshold for Distributed Map
#            state", https://docs.aws.amazon.com/step-functions/latest/dg/maprun-fail-threshold.html
#            (pages corpus; its translations in both corpora).
# - [ASL]    the Amazon States Language specification, https://states-language.net/spec.html
#            (pages corpus: that address, the page's opening only; its "Map State" section
#            quoted here read in a markdown copy of the specification, "Copyright © 2016-2024",
#            document history up to November 22, 2024, held in the code index).
# - [DESCEX] Step Functions API Reference, DescribeExecution, redriveStatus and
#            redriveStatusReason (docs corpus, the text as the AWS SDK for Kotlin reproduces it:
#            https://docs.aws.amazon.com/sdk-for-kotlin/api/latest/sfn/aws.sdk.kotlin.services.sfn.model/-describe-execution-response/redrive-status.html
#            and .../-describe-execution-response/redrive-status-reason.html).
# - [LS-TST] a real Step Functions answer recorded by LocalStack's AWS-validated snapshot tests
#            (recorded 13-11-2025), https://github.com/localstack/localstack commit
#            8b9a79f05846835cf4dff63ab7eefdde9df83783,
#            tests/aws/services/stepfunctions/v2/test_state/test_state_configuration.snapshot.json,
#            test_map_state_failure_count[INFO-BASE_MAP_STATE_CATCH]: a Distributed Map with
#            "ToleratedFailureCount": 1 and two failed items (TestState API).
#
# LocalStack writes no result files either (its resource_eval_s3.py, at that commit too, is the
# one moto vendors, "# TODO: generate result files"), so no validated record of them exists
# there; where [RW] is silent the choice is said beside the code.

_RECORDS_LOCK = threading.Lock()
_FAILED_STATUSES = ("FAILED", "TIMED_OUT", "ABORTED")
THRESHOLD_CAUSE = "The specified tolerated failure threshold was exceeded"


def _timestamp(value: datetime.datetime) -> str:
    # [RW] "Transformation NONE": "StartDate": "2025-02-04T01:49:50.099Z",
    # "StopDate": "2025-02-04T01:49:50.163Z" (UTC, milliseconds).
    value = value.astimezone(datetime.timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _json_text(value: Any) -> str:
    # [RW] "Transformation NONE": "Output": "[{\"customer_id\":\"145538\",\"order_id\":\"100000\"},...]",
    # the child's output as compact JSON text. [RW] elides the Input ("Input": ...); it is
    # given the same form, as the entry's other fields are DescribeExecution's: its input is
    # "The string that contains the JSON input data of the execution." (Step Functions API
    # Reference, DescribeExecution, as its model describes the field; pages corpus, e.g.
    # https://raw.githubusercontent.com/api-evangelist/amazon-step-functions/refs/heads/main/json-schema/amazon-step-functions-describe-execution-output-schema.json),
    # and [RW] "Step Functions consolidates all child workflow execution data, such as
    # execution input and output, ARN, and execution status."
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _item_entry(map_run_record, item_input: Any, started: datetime.datetime, stopped: datetime.datetime,
                status: str, output: Any = None, error: str | None = None, cause: str | None = None) -> dict:
    """One child workflow execution of the Map Run, as a result file lists it."""
    # [RW] "Transformation NONE" (the default "when exporting the child workflow execution
    # results to Amazon S3 and WriterConfig is not specified"), one entry:
    #   "ExecutionArn": "arn:aws:states:region:account-id:execution:orderProcessing/getOrders:da4e9fc7-abab-3b27-9a77-a277e463b709",
    #   "Input": ..., "InputDetails": {"Included": true},
    #   "Name": "da4e9fc7-abab-3b27-9a77-a277e463b709", "Output": "[...]", "OutputDetails": {"Included": true},
    #   "RedriveCount": 0, "RedriveStatus": "NOT_REDRIVABLE",
    #   "RedriveStatusReason": "Execution is SUCCEEDED and cannot be redriven",
    #   "StartDate": "...", "StateMachineArn": "arn:aws:states:region:account-id:stateMachine:orderProcessing/getOrders",
    #   "Status": "SUCCEEDED", "StopDate": "..."
    # and the Map Run of that page is "mapRun:csvProcess/Map:ad9b5f27-...": the child's state
    # machine is the Map Run's (<parent machine>/<label or id>, moto's map_state_machine_arn),
    # its execution ARN that under ":execution:", its name a UUID.
    name = str(uuid.uuid4())
    machine = map_run_record.map_state_machine_arn
    entry: dict[str, Any] = {}
    if status != "SUCCEEDED":
        # [RW] shows only a SUCCEEDED entry. A failed one is DescribeExecution's failed
        # execution in the same casing: its "Error" and "Cause", no Output. [DESCEX]
        # redriveStatus: "For a Distributed Map that includes child workflows of type
        # STANDARD, redriveStatus indicates whether or not the Map Run can redrive child
        # workflow executions." and redriveStatusReason: "When redriveStatus is
        # NOT_REDRIVABLE, redriveStatusReason specifies the reason why an execution cannot be
        # redriven." A failed, timed out or aborted child is what a Map Run redrive reruns,
        # so it is REDRIVABLE, without a reason. (Assumed, not seen in a real FAILED_0.json.)
        if cause is not None:
            entry["Cause"] = cause
        if error is not None:
            entry["Error"] = error
    entry.update({
        "ExecutionArn": f"{machine.replace(':stateMachine:', ':execution:', 1)}:{name}",
        "Input": _json_text(item_input),
        "InputDetails": {"Included": True},
        "Name": name,
    })
    if status == "SUCCEEDED":
        entry.update({
            "Output": _json_text(output),
            "OutputDetails": {"Included": True},
            "RedriveCount": 0,
            "RedriveStatus": "NOT_REDRIVABLE",
            "RedriveStatusReason": "Execution is SUCCEEDED and cannot be redriven",
        })
    else:
        entry.update({"RedriveCount": 0, "RedriveStatus": "REDRIVABLE"})
    entry.update({
        "StartDate": _timestamp(started),
        "StateMachineArn": machine,
        "Status": status,
        "StopDate": _timestamp(stopped),
    })
    return entry


def _item_entries(map_run_record) -> list[dict]:
    with _RECORDS_LOCK:
        recorded = dict(getattr(map_run_record, "_offboard_items", {}))
    return [recorded[index] for index in sorted(recorded)]


def _recording_eval_input(original):  # type: ignore[no-untyped-def]
    def _eval_input(self, env_frame) -> None:  # type: ignore[no-untyped-def]
        # The child workflow execution's input is the item after ItemSelector (or Parameters).
        try:
            original(self, env_frame)
        except FailureEventException as failure:
            env_frame._offboard_item_failure = failure.extract_error_cause_pair()
            raise
        env_frame._offboard_item_input = copy.deepcopy(env_frame.states.get_input())
    return _eval_input


def _recording_eval_job(original):  # type: ignore[no-untyped-def]
    def _eval_job(self, env, job) -> None:  # type: ignore[no-untyped-def]
        # Stock moto runs the item (one child workflow execution of the Map Run) and keeps
        # only its output, None when it failed; its outcome is recorded here as well.
        env._offboard_item_input = copy.deepcopy(job.job_input)
        env._offboard_item_failure = None
        started = datetime.datetime.now(datetime.timezone.utc)
        original(self, env, job)
        stopped = datetime.datetime.now(datetime.timezone.utc)
        outcome = env.program_state()
        error = cause = None
        if isinstance(outcome, ProgramEnded):
            status = "SUCCEEDED"
        elif isinstance(outcome, ProgramError):
            status = "FAILED"
            error, cause = (outcome.error or {}).get("error"), (outcome.error or {}).get("cause")
        elif isinstance(outcome, ProgramStopped):
            status, error, cause = "ABORTED", outcome.error, outcome.cause
        elif isinstance(outcome, ProgramTimedOut):
            status = "TIMED_OUT"
        else:  # it failed before its first state: ItemSelector / Parameters evaluation
            status = "FAILED"
            error, cause = env._offboard_item_failure or (None, None)
        entry = _item_entry(self._map_run_record, env._offboard_item_input, started, stopped, status,
                            output=job.job_output, error=error, cause=cause)
        with _RECORDS_LOCK:
            if not hasattr(self._map_run_record, "_offboard_items"):
                self._map_run_record._offboard_items = {}
            self._map_run_record._offboard_items[job.job_index] = entry
        if status != "SUCCEEDED":
            # [RW] Transformation, COMPACT ("Default when ResultWriter is not specified"):
            # "Note: If a child workflow execution fails, Step Functions returns its execution
            # result unchanged. The results would be equivalent to having set Transformation
            # to NONE." So a failed item's place in the Map's result array holds its NONE entry
            # (stock moto: null).
            job.job_output = entry
    return _eval_job


def _declared_tolerance(self, state_props) -> None:  # type: ignore[no-untyped-def]
    _original_state_map_from_state_props(self, state_props)
    # Stock moto puts a 0 in place of a missing field, so whether each was declared is kept.
    self._offboard_tolerance_declared = (state_props.get(ToleratedFailureCountDecl) is not None,
                                         state_props.get(ToleratedFailurePercentageDecl) is not None)


def _eval_map_execution(self, env) -> None:  # type: ignore[no-untyped-def]
    # The Map Run (DistributedIterationComponent._map_run) runs in this env, on this thread:
    # it finds its state's threshold declarations and ResultWriter here.
    env._offboard_map_state = self
    _original_state_map_eval_execution(self, env)


def _threshold_exceeded(state, map_run_record, failed: int, total: int) -> bool:  # type: ignore[no-untyped-def]
    # [THRESH] "This value lets you specify the maximum number of, or percentage of, failed
    # items as a failure threshold for a Map Run. Depending on which value you specify, your
    # Map Run fails automatically if it exceeds the threshold. If you specify both values, the
    # workflow fails when it exceeds either value."
    # Tolerated failure percentage: "Your Map Run fails if this value is exceeded. Step
    # Functions calculates the percentage of failed items as the result of the total number of
    # failed or timed out items divided by the total number of items. You must specify a value
    # between zero and 100. The default percentage value is zero, which means that the workflow
    # fails if any one of its child workflow executions fails or times out. If you specify the
    # percentage as 100, the workflow won't fail even if all child workflow executions fail."
    # [ASL] "Map State Failure Tolerance": "A Map State MAY have a non-negative integer
    # "ToleratedFailureCount" field. Its default value is zero, which means the Map State will
    # fail if at least 1 of its items fail. If a "ToleratedFailurePercentage" field and a
    # "ToleratedFailureCount" field are both specified, the Map State will fail if either
    # threshold is breached." A field not specified sets no threshold of its own: with only a
    # count of 3, three failures are tolerated (the percentage's default 0 does not apply);
    # with neither, the default (0) fails the Map on one failure.
    # The values are the Map Run's: the literal, or the ...Path resolved and validated by stock
    # moto (ToleratedFailureCountPath / ToleratedFailurePercentagePath).
    if failed == 0:
        return False
    count_declared, percentage_declared = getattr(state, "_offboard_tolerance_declared", (False, False))
    if not count_declared and not percentage_declared:
        return True
    if count_declared and failed > map_run_record.tolerated_failure_count:
        return True
    return bool(percentage_declared and failed * 100.0 / total > map_run_record.tolerated_failure_percentage)


def _map_run_with_threshold(self, env, eval_input) -> None:  # type: ignore[no-untyped-def]
    map_run_record = eval_input.map_run_record
    env._offboard_map_run_record = map_run_record
    # Stock moto starts every item (MaxConcurrency workers take them all) and waits for them;
    # the threshold is checked once they have all ended. Real Step Functions stops starting
    # items once it is breached: [ASL] "A "ToleratedFailurePercentage" value of 100 means the
    # interpreter will continue starting iterations even if all items fail.", [RW]
    # "PENDING_n.json – Contains the consolidated data for all child workflow executions that
    # weren't started because the Map Run failed or aborted.", though not at once, [THRESH]
    # "Note: Step Functions may continue to run child workflows in a Map Run even after the
    # tolerated failure threshold is exceeded, but before the Map Run fails." Not emulated:
    # here no item is left unstarted (no PENDING entries, whose shape [RW] does not show), so
    # a test must not rely on which items a breached Map Run skips.
    _original_map_run(self, env, eval_input)
    entries = _item_entries(map_run_record)
    failed = sum(1 for entry in entries if entry["Status"] in ("FAILED", "TIMED_OUT"))
    state = getattr(env, "_offboard_map_state", None)
    if not _threshold_exceeded(state, map_run_record, failed, len(entries)):
        return
    if state is not None and state.result_writer is not None:
        # [RW] "PENDING_n.json – Contains the consolidated data for all child workflow
        # executions that weren't started because the Map Run failed or aborted." and
        # "FAILED_n.json – [...] Use this file to recover from failed executions.": a failed
        # Map Run's results are written too. The writer consumes the results on the stack and
        # leaves the Map's output (MapRunArn, ResultWriterDetails), unused: the Map fails.
        state.result_writer.eval(env)
    env.stack.pop()
    # [THRESH] "Step Functions returns a States.ExceedToleratedFailureThreshold error when the
    # Map Run fails because the specified threshold is exceeded."
    # [LS-TST] "error": "States.ExceedToleratedFailureThreshold", "cause": "The specified
    # tolerated failure threshold was exceeded" (the errorOutput a Catch receives: {"Error":
    # ..., "Cause": ...}). Raised here, inside the Map Run: stock moto's
    # DistributedIterationComponent._eval_body records MapRunFailed with this error and cause,
    # marks the Map Run FAILED, and StateMap's Retry / Catch see the error.
    error = StatesErrorNameType.StatesExceedToleratedFailureThreshold.to_name()
    raise FailureEventException(failure_event=FailureEvent(
        env=env,
        error_name=StatesErrorName(typ=StatesErrorNameType.StatesExceedToleratedFailureThreshold),
        event_type=HistoryEventType.MapRunFailed,
        event_details=EventDetails(executionFailedEventDetails=ExecutionFailedEventDetails(
            error=error, cause=THRESHOLD_CAUSE)),
    ))


def _put_result_files(env, resource_runtime_part, state_credentials) -> None:  # type: ignore[no-untyped-def]
    # Replaces stock moto's ResourceEvalS3._handle_put_object, which writes the manifest with
    # empty ResultFiles lists ("# TODO: generate result files and upload them to s3.").
    parameters = env.stack.pop()
    env.stack.pop()  # the Map's results: the files are made from each item's recorded entry
    s3_client = ResourceEvalS3._get_s3_client(resource_runtime_part=resource_runtime_part,
                                               state_credentials=state_credentials)
    map_run_record = getattr(env, "_offboard_map_run_record", None) or env.map_run_record_pool_manager.get_all()[-1]
    map_run_uuid = map_run_record.map_run_arn.split(":")[-1]
    prefix = parameters.get("Prefix", "")
    if prefix != "" and not prefix.endswith("/"):
        prefix += "/"
    bucket = parameters["Bucket"]
    # [RW] "If you export the child workflow execution results, the Distributed Map state
    # execution returns the Map Run ARN and data about the Amazon S3 export location in the
    # following format: {"MapRunArn": "arn:aws:states:us-east-2:account-id:mapRun:csvProcess/Map:ad9b5f27-090b-3ac6-9beb-243cd77144a7",
    # "ResultWriterDetails": {"Bucket": "amzn-s3-demo-destination-bucket",
    # "Key": "csvProcessJobs/ad9b5f27-090b-3ac6-9beb-243cd77144a7/manifest.json"}}"
    # (stock moto's layout, kept).
    directory = f"{prefix}{map_run_uuid}/"
    entries = _item_entries(map_run_record)
    # [RW] "Step Functions exports executions with the same status to their respective files.
    # For example, if your child workflow executions resulted in 500 success and 200 failure
    # results, Step Functions creates two files [...] For a given execution attempt, Step
    # Functions creates the following files in the specified Amazon S3 location depending on
    # your execution output:
    #  - manifest.json – Contains Map Run metadata, such as export location, Map Run ARN, and
    #    information about the result files.
    #  - SUCCEEDED_n.json – Contains the consolidated data for all successful child workflow
    #    executions. n represents the index number of the file. The index number starts from 0.
    #  - FAILED_n.json – Contains the consolidated data for all failed, timed out, and aborted
    #    child workflow executions. [...]
    #  - PENDING_n.json – [...] child workflow executions that weren't started because the Map
    #    Run failed or aborted." and, for OutputType, "JSON - formats the results as a JSON
    #    array." (the default). So a file per status that has entries: a run whose items all
    #    succeeded writes SUCCEEDED_0.json and the manifest only. "Step Functions supports
    #    individual result files of up to 5 GB. If a file size exceeds 5 GB, Step Functions
    #    creates another file": not emulated, one file per status.
    groups = {
        "SUCCEEDED": [entry for entry in entries if entry["Status"] == "SUCCEEDED"],
        "FAILED": [entry for entry in entries if entry["Status"] in _FAILED_STATUSES],
    }
    # [RW] describes the manifest's content ("export location, Map Run ARN, and information
    # about the result files"), not its shape. Kept: stock moto's (LocalStack's) fields
    # {"DestinationBucket", "MapRunArn", "ResultFiles": {"FAILED", "PENDING", "SUCCEEDED"}};
    # each result file listed as {"Key": <its full key>, "Size": <bytes>}, the form of a real
    # manifest quoted in the README of the @vm-x-ai/aws-cdk-constructs package (its
    # SimilarityExtractionWorkflow section: "ResultFiles": {"FAILED": [], "PENDING": [],
    # "SUCCEEDED": [{"Key": "date=XXXX-XX-XX/execution_id=xxxxxxx/embedding/output/xxxxx/SUCCEEDED_0.json",
    # "Size": 2161}]}; found in the code index).
    result_files: dict[str, list[dict]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
    for status, group in groups.items():
        if not group:
            continue
        key = f"{directory}{status}_0.json"
        body = json.dumps(group, ensure_ascii=False).encode("utf8")
        s3_client.put_object(Bucket=bucket, Key=key, Body=body)
        result_files[status].append({"Key": key, "Size": len(body)})
    manifest = {"DestinationBucket": bucket, "MapRunArn": map_run_record.map_run_arn, "ResultFiles": result_files}
    key = f"{directory}manifest.json"
    s3_client.put_object(Bucket=bucket, Key=key, Body=json.dumps(manifest, indent=2).encode("utf8"))
    env.stack.append({"MapRunArn": map_run_record.map_run_arn, "ResultWriterDetails": {"Bucket": bucket, "Key": key}})


def _decimal_tolerated_failure_percentage(definition: str) -> str:
    """The definition with each Map state's integer ToleratedFailurePercentage written as a decimal."""
    # Stock moto's grammar (LocalStack's ASLParser.g4 at commit 8b9a79f0 too):
    #   tolerated_failure_percentage_decl: TOLERATEDFAILUREPERCENTAGE COLON NUMBER ...
    # with the lexer's INT: '0' | [1-9] [0-9]* matched before NUMBER: '-'? INT ('.' [0-9]+)? EXP?,
    # so "ToleratedFailurePercentage": 50 is an INT token and CreateStateMachine fails with
    # "ASLParserException line ..., no viable alternative at input '"ToleratedFailurePercentage":50'",
    # while 50.0 parses. Step Functions takes an integer there: [ASL] "Map State": "The
    # "ToleratedFailurePercentage" field's value is an integer that provides an upper bound on
    # the percentage of items that may fail." and "Map State Failure Tolerance": "A Map State
    # MAY have a "ToleratedFailurePercentage" field whose value MUST be a number between zero
    # and 100."; [THRESH] "You must specify a value between zero and 100." (for the Path form
    # "This path must resolve to a positive integer between 0 and 100 at runtime."); and a
    # definition exported from the Step Functions console of a real account (the
    # "ProcessNOAAData" Distributed Map of the NOAA sample project, quoted in a public README
    # found in the code index) reads "ToleratedFailurePercentage": 5.
    # Only the text given to the parser is changed; the stored definition (DescribeStateMachine)
    # is the one sent. A definition that is not JSON, or has no integer there, is untouched.
    try:
        document = json.loads(definition)
    except (TypeError, ValueError):
        return definition
    if not isinstance(document, dict) or not _decimal_percentages(document.get("States")):
        return definition
    return json.dumps(document, ensure_ascii=False)


def _decimal_percentages(states: Any) -> bool:
    if not isinstance(states, dict):
        return False
    changed = False
    for state in states.values():
        if not isinstance(state, dict):
            continue
        value = state.get("ToleratedFailurePercentage")
        if state.get("Type") == "Map" and isinstance(value, int) and not isinstance(value, bool):
            state["ToleratedFailurePercentage"] = float(value)
            changed = True
        for nested in (state.get("ItemProcessor"), state.get("Iterator")):
            if isinstance(nested, dict):
                changed = _decimal_percentages(nested.get("States")) or changed
        for branch in state.get("Branches") or []:
            if isinstance(branch, dict):
                changed = _decimal_percentages(branch.get("States")) or changed
    return changed


_original_parse = AmazonStateLanguageParser.parse


_PARSED: dict[str, Any] = {}
_PARSED_LOCK = threading.Lock()


def _parse(definition: str):  # type: ignore[no-untyped-def]
    # moto's interpreter parses the definition again for every execution
    # (moto/stepfunctions/parser/backend/execution_worker.py,
    # ``_get_evaluation_entrypoint``) with the ANTLR Python runtime: 0.3-0.45 s
    # of the GIL for the offboarding machine, measured here, so a hundred
    # executions started at once waited ~13 s before their first Task. Each
    # definition is parsed once and each caller gets its own deep copy of the
    # program (~15 ms), as independent as a fresh parse.
    definition = _decimal_tolerated_failure_percentage(definition)
    with _PARSED_LOCK:
        parsed = _PARSED.get(definition)
    if parsed is None:
        parsed = _original_parse(definition)
        with _PARSED_LOCK:
            _PARSED[definition] = parsed
    program, context = parsed
    return copy.deepcopy(program), context


@lru_cache(maxsize=4096)
def _parsed_json_path(path: str):  # type: ignore[no-untyped-def]
    return jsonpath_ng.ext.parse(path)


@lru_cache(maxsize=4096)
def _parsed_result_path(path: str):  # type: ignore[no-untyped-def]
    return jsonpath_ng.parse(path)


def _cache_json_path_parsing() -> None:
    """moto parses every JSONPath again each time a state evaluates it
    (moto/stepfunctions/parser/asl/utils/json_path.py ``extract_json`` and
    component/common/path/result_path.py call jsonpath_ng's ``parse``), with
    jsonpath_ng's PLY parser: 8.7 % of the GIL with 100 offboardings at once,
    profiled here with py-spy. A parsed path is only read when it is applied
    (``find``/``update``), so one parse per distinct path serves them all."""
    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.utils import json_path

    json_path.parse = _parsed_json_path
    result_path.parse = _parsed_result_path


_original_lambda_task_from_error = StateTaskLambda._from_error


def _lambda_task_error(self, env, ex):  # type: ignore[no-untyped-def]
    """A Lambda Task whose Invoke call itself failed (the function never ran):
    Step Functions names the error after Lambda's error code. "Lambda errors
    are reported as Lambda.<ErrorName> [...] When Lambda hits the maximum
    number of invocations, the error is Lambda.TooManyRequestsException"
    (Step Functions developer guide, "Handle Lambda service exceptions",
    https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html).
    moto 5.2.5 names it "Exception" for a function-ARN Task
    (state_task_lambda.py ``_from_error``), so no retrier on
    Lambda.TooManyRequestsException ever matched; its own lambda:invoke
    integration already says Lambda.<code> (state_task_service_lambda.py
    ``_error_cause_from_client_error``), which this reuses."""
    if not isinstance(ex, ClientError):
        return _original_lambda_task_from_error(self, env, ex)
    error, cause = StateTaskServiceLambda._error_cause_from_client_error(ex)
    return FailureEvent(env=env, error_name=CustomErrorName(error), event_type=HistoryEventType.LambdaFunctionFailed,
                        event_details=EventDetails(lambdaFunctionFailedEventDetails=LambdaFunctionFailedEventDetails(
                            error=error, cause=cause)))


_original_state_map_from_state_props = StateMap.from_state_props
_original_state_map_eval_execution = StateMap._eval_execution
_original_map_run = DistributedIterationComponent._map_run
_recording_workers = {worker: (worker._eval_input, worker._eval_job)
                      for worker in (DistributedItemProcessorWorker, DistributedIteratorWorker)}


def _extend_distributed_map() -> None:
    if getattr(StateMap, "_offboard_extended", False):
        return
    AmazonStateLanguageParser.parse = staticmethod(_parse)
    _cache_json_path_parsing()
    StateTaskLambda._from_error = _lambda_task_error
    StateMap.from_state_props = _declared_tolerance
    StateMap._eval_execution = _eval_map_execution
    DistributedIterationComponent._map_run = _map_run_with_threshold
    for worker, (eval_input, eval_job) in _recording_workers.items():
        worker._eval_input = _recording_eval_input(eval_input)
        worker._eval_job = _recording_eval_job(eval_job)
    ResourceEvalS3._handle_put_object = staticmethod(_put_result_files)
    StateMap._offboard_extended = True


def _get_execution_history_paged(self):  # type: ignore[no-untyped-def]
    """GetExecutionHistory as the API reference describes it
    (https://docs.aws.amazon.com/step-functions/latest/apireference/API_GetExecutionHistory.html):
    "reverseOrder — Lists events in descending order of their timeStamp";
    "maxResults — The maximum number of results that are returned per call. ...
    the default is 100 and the maximum allowed page size is 1000. A value of 0
    uses the default"; "nextToken — If nextToken is returned, there are more
    results available"; "includeExecutionData — You can select whether execution
    data (input or output of a history event) is returned. The default is true."
    Stock moto 5.2.5 (moto/stepfunctions/responses.py, get_execution_history)
    ignores all four and returns the whole history oldest first. The functions'
    workflow check reads the newest events first (crates/core/src/workflow.rs).
    The token here is an offset: a history that grows between two pages
    repeats events in reverse order, never skips one."""
    from moto.core.responses import ActionResult

    history = self.stepfunction_backend.get_execution_history(self._get_param("executionArn"))
    events = list(history["events"])
    if self._get_param("reverseOrder"):
        events.reverse()
    size = int(self._get_param("maxResults") or 0) or 100
    start = int(self._get_param("nextToken") or 0)
    page = events[start:start + size]
    if self._get_param("includeExecutionData") is False:
        page = [{key: ({k: v for k, v in value.items() if k not in ("input", "output")}
                       if key.endswith("EventDetails") and isinstance(value, dict) else value)
                 for key, value in event.items()} for event in page]
    result: dict[str, Any] = {"events": page}
    if start + size < len(events):
        result["nextToken"] = str(start + size)
    return ActionResult(result)


_CLIENTS: dict[tuple, Any] = {}
_CLIENTS_LOCK = threading.Lock()
_CLIENT_USERS = (
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_dynamodb",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_events",
    "moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader.eval.resource_eval_s3",
    "moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval.resource_eval_s3",
)


def _shared_boto_client(region: str, service: str, state_credentials: Any = None):  # type: ignore[no-untyped-def]
    """moto's ``boto_client_for`` (moto/stepfunctions/parser/asl/utils/boto_client.py)
    builds a new boto3 client for every Task and Map I/O, and ignores
    ``state_credentials``. Building one costs tens of milliseconds of the
    GIL the whole emulator shares (measured with 30 executions at once,
    before the parse cache above: first Task 10.7 s -> 9.7 s after the
    start; the parse was the larger cost). Same client settings, built once per region, service and endpoint
    configuration, with a pool as
    large as the Lambda host's concurrency (botocore clients are thread-safe;
    creating them from the default session is not, hence the lock)."""
    # The Stack points the interpreter at its Lambda host through
    # AWS_ENDPOINT_URL_LAMBDA, and a restarted host listens elsewhere.
    endpoints = tuple(sorted((name, value) for name, value in os.environ.items() if name.startswith("AWS_ENDPOINT_URL")))
    key = (region, service, endpoints)
    with _CLIENTS_LOCK:
        if key not in _CLIENTS:
            from moto.core.models import botocore_stubber
            from moto.settings import moto_server_port
            from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds

            kwargs = {} if botocore_stubber.enabled else {"endpoint_url": f"http://localhost:{moto_server_port()}"}
            _CLIENTS[key] = boto3.session.Session().client(
                service, region_name=region, aws_access_key_id="ak", aws_secret_access_key="sk",
                config=Config(parameter_validation=False, retries={"max_attempts": 0, "total_max_attempts": 1},
                              connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                              read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS, max_pool_connections=1000),
                **kwargs)
        return _CLIENTS[key]


def _share_boto_clients() -> None:
    for name in _CLIENT_USERS:
        module = importlib.import_module(name)
        module.boto_client_for = _shared_boto_client


def extend_step_functions() -> None:
    """Applies the startExecution integration and Distributed Map extensions (idempotent)."""
    _extend_distributed_map()
    _share_boto_clients()
    if getattr(StateTaskServiceSfn, "_offboard_extended", False):
        return
    StateTaskServiceSfn._normalise_parameters = _normalise_parameters
    StateTaskServiceSfn._normalise_response = _normalise_response
    StateTaskServiceSfn._from_error = _from_error
    parser_models.StepFunctionsParserBackend.start_execution = _start_execution_named
    StepFunctionResponse.get_execution_history = _get_execution_history_paged
    StateTaskServiceSfn._offboard_extended = True
