//! The workflow check: a stage function acts only for the pending step of a
//! running execution of this deployment. Step Functions answers here as its
//! real JSON (AWS JSON 1.0: DescribeExecution, GetExecutionHistory with
//! `reverseOrder`, newest event first), so the SDK's own parsing is tested.

use aws_sdk_sfn::operation::get_execution_history::GetExecutionHistoryInput;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use iam_offboard_core::workflow::WorkflowGuard;
use serde_json::{json, Value};

const MACHINE: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:hub-offboard";
const BATCH_MACHINE: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:hub-offboard-batch";
const EXECUTION: &str = "arn:aws:states:us-east-1:123456789012:execution:hub-offboard:alice-872213e7";
const PARENT: &str = "arn:aws:states:us-east-1:123456789012:execution:hub-offboard-batch:leavers";
const FUNCTION: &str = "arn:aws:lambda:us-east-1:123456789012:function:hub-DeleteGroupsAndPolicies";
const OTHER_FUNCTION: &str = "arn:aws:lambda:us-east-1:123456789012:function:hub-DeleteKeys";

fn json_response(status: u16, body: Value) -> HttpResponse {
    HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body.to_string()))
}

/// What DeleteGroupsAndPolicies is sent: everything the state machine sends.
fn payload(groups: &[&str]) -> Value {
    json!({
        "UserName": "alice", "UserId": "AIDAALICE000000000001",
        "Permissions": {"Groups": groups.iter().map(|g| json!({"GroupName": g})).collect::<Vec<_>>()},
        "Account": "123456789012", "ExecutionName": "alice-872213e7", "ExecutionId": EXECUTION
    })
}

fn describe(execution: &'static str, machine: &'static str, status: &'static str, input: Value) -> Rule {
    mock!(aws_sdk_sfn::Client::describe_execution)
        .match_requests(move |r| r.execution_arn() == Some(execution))
        .then_http_response(move || {
            json_response(
                200,
                json!({"executionArn": execution, "stateMachineArn": machine, "status": status,
                       "startDate": 1.765e9, "input": input.to_string()}),
            )
        })
}

fn scheduled(id: i64, resource: &str, input: &Value) -> Value {
    json!({"id": id, "previousEventId": id - 1, "timestamp": 1.765e9, "type": "LambdaFunctionScheduled",
           "lambdaFunctionScheduledEventDetails": {"resource": resource, "input": input.to_string(),
                                                    "inputDetails": {"truncated": false}}})
}

fn event(id: i64, previous: i64, kind: &str) -> Value {
    json!({"id": id, "previousEventId": previous, "timestamp": 1.765e9, "type": kind})
}

/// The history, newest first, as GetExecutionHistory with reverseOrder answers.
fn history(events: Vec<Value>) -> Rule {
    mock!(aws_sdk_sfn::Client::get_execution_history)
        .match_requests(|r: &GetExecutionHistoryInput| {
            r.execution_arn() == Some(EXECUTION) && r.reverse_order() == Some(true)
        })
        .then_http_response(move || json_response(200, json!({"events": events.clone()})))
}

fn guard(rules: &[&Rule]) -> WorkflowGuard {
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, rules, |config: aws_sdk_sfn::config::Builder| config
        .retry_config(aws_sdk_sfn::config::retry::RetryConfig::disabled()));
    WorkflowGuard::new(sfn, vec![MACHINE.into(), BATCH_MACHINE.into()]).unwrap()
}

fn alice_input() -> Value {
    json!({"UserName": "alice"})
}

#[tokio::test(start_paused = true)]
async fn the_pending_step_with_this_very_payload_is_admitted() {
    let sent = payload(&["engineers"]);
    let describe = describe(EXECUTION, MACHINE, "RUNNING", alice_input());
    let history = history(vec![
        event(12, 11, "LambdaFunctionStarted"),
        scheduled(11, FUNCTION, &sent),
        event(10, 9, "TaskStateEntered"),
        event(9, 8, "PassStateExited"),
    ]);
    let admission = guard(&[&describe, &history]).admit(FUNCTION, &sent).await.unwrap();
    assert_eq!(admission.input, alice_input());
    assert_eq!(admission.execution_arn, EXECUTION);
    assert_eq!((describe.num_calls(), history.num_calls()), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_payload_listing_other_items_than_the_pending_step_is_refused() {
    // The workflow removes alice's groups; a direct invoke with the same
    // execution id lists only her guardrail group.
    let pending = payload(&["engineers", "guardrail-deny"]);
    let describe = describe(EXECUTION, MACHINE, "RUNNING", alice_input());
    let history = history(vec![event(12, 11, "LambdaFunctionStarted"), scheduled(11, FUNCTION, &pending)]);
    let error = guard(&[&describe, &history]).admit(FUNCTION, &payload(&["guardrail-deny"])).await.unwrap_err();
    assert_eq!(error.name(), "NotFromWorkflow", "{error}");
    assert!(error.to_string().contains("nothing was changed"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn a_step_that_already_has_its_result_cannot_be_replayed() {
    let sent = payload(&["engineers"]);
    let describe = describe(EXECUTION, MACHINE, "RUNNING", alice_input());
    for result in ["LambdaFunctionSucceeded", "LambdaFunctionFailed", "LambdaFunctionTimedOut"] {
        let history = history(vec![
            event(14, 13, "TaskStateEntered"),
            event(13, 12, result),
            event(12, 11, "LambdaFunctionStarted"),
            scheduled(11, FUNCTION, &sent),
            event(1, 0, "ExecutionStarted"),
        ]);
        let error = guard(&[&describe, &history]).admit(FUNCTION, &sent).await.unwrap_err();
        assert_eq!(error.name(), "NotFromWorkflow", "{result}: {error}");
        assert_eq!(history.num_calls(), 3, "{result}: the history is read three times before refusing");
    }
    let history = history(vec![event(12, 11, "LambdaFunctionStartFailed"), scheduled(11, FUNCTION, &sent)]);
    assert!(guard(&[&describe, &history]).admit(FUNCTION, &sent).await.is_err(), "a step that failed to start");
}

#[tokio::test(start_paused = true)]
async fn an_execution_waiting_out_a_grace_period_lends_its_id_to_no_one() {
    // A RUNNING execution for the same user, in its Wait state: its last Lambda
    // step (the quarantine) has its result.
    let quarantine = json!({"Action": "Quarantine", "UserName": "alice", "ExecutionId": EXECUTION});
    let describe = describe(EXECUTION, MACHINE, "RUNNING", json!({"UserName": "alice", "GraceDays": 30}));
    let history = history(vec![
        event(40, 39, "WaitStateEntered"),
        event(39, 38, "TaskStateExited"),
        event(38, 37, "LambdaFunctionSucceeded"),
        event(37, 36, "LambdaFunctionStarted"),
        scheduled(36, "arn:aws:lambda:us-east-1:123456789012:function:hub-QuarantineUser", &quarantine),
        event(1, 0, "ExecutionStarted"),
    ]);
    // What an attacker sends: detach alice's AWSDenyAll only.
    let detach = json!({"UserName": "alice", "UserId": "AIDAALICE000000000001",
        "Permissions": {"AttachedPolicies": [{"PolicyArn": "arn:aws:iam::aws:policy/AWSDenyAll"}]},
        "ExecutionId": EXECUTION});
    let error = guard(&[&describe, &history]).admit(FUNCTION, &detach).await.unwrap_err();
    assert_eq!(error.name(), "NotFromWorkflow");
}

#[tokio::test(start_paused = true)]
async fn another_functions_pending_step_admits_nothing_here() {
    let sent = payload(&["engineers"]);
    let describe = describe(EXECUTION, MACHINE, "RUNNING", alice_input());
    let history = history(vec![event(12, 11, "LambdaFunctionStarted"), scheduled(11, OTHER_FUNCTION, &sent)]);
    assert_eq!(guard(&[&describe, &history]).admit(FUNCTION, &sent).await.unwrap_err().name(), "NotFromWorkflow");
}

#[tokio::test(start_paused = true)]
async fn of_two_devices_pending_at_once_the_one_sent_is_admitted() {
    // The MFA Map's iterations run together: two scheduled steps are pending.
    let device =
        |serial: &str| json!({"UserName": "alice", "MFADevice": {"SerialNumber": serial}, "ExecutionId": EXECUTION});
    let describe = describe(EXECUTION, MACHINE, "RUNNING", alice_input());
    let history = history(vec![
        event(22, 21, "LambdaFunctionStarted"),
        scheduled(21, FUNCTION, &device("GAKT12345678")),
        event(20, 19, "LambdaFunctionStarted"),
        scheduled(19, FUNCTION, &device("arn:aws:iam::123456789012:mfa/alice")),
    ]);
    let guard = guard(&[&describe, &history]);
    assert!(guard.admit(FUNCTION, &device("arn:aws:iam::123456789012:mfa/alice")).await.is_ok());
    assert!(guard.admit(FUNCTION, &device("GAKT12345678")).await.is_ok());
    assert_eq!(
        guard.admit(FUNCTION, &device("arn:aws:iam::123456789012:mfa/bob")).await.unwrap_err().name(),
        "NotFromWorkflow"
    );
}

#[tokio::test(start_paused = true)]
async fn a_truncated_scheduled_input_cannot_be_compared_and_is_refused() {
    let sent = payload(&["engineers"]);
    let describe = describe(EXECUTION, MACHINE, "RUNNING", alice_input());
    let mut truncated = scheduled(11, FUNCTION, &sent);
    truncated["lambdaFunctionScheduledEventDetails"]["inputDetails"]["truncated"] = json!(true);
    let history = history(vec![event(12, 11, "LambdaFunctionStarted"), truncated]);
    assert_eq!(guard(&[&describe, &history]).admit(FUNCTION, &sent).await.unwrap_err().name(), "NotFromWorkflow");
}

#[tokio::test(start_paused = true)]
async fn only_a_running_execution_of_this_deployment_is_asked_at_all() {
    let sent = payload(&["engineers"]);
    let pending = || history(vec![event(12, 11, "LambdaFunctionStarted"), scheduled(11, FUNCTION, &sent)]);
    for status in ["SUCCEEDED", "FAILED", "ABORTED", "TIMED_OUT"] {
        let describe = describe(EXECUTION, MACHINE, status, alice_input());
        let history = pending();
        let error = guard(&[&describe, &history]).admit(FUNCTION, &sent).await.unwrap_err();
        assert_eq!(error.name(), "NotFromWorkflow", "{status}");
    }
    // No ExecutionId, or another deployment's execution: Step Functions is not asked.
    let describe = describe(EXECUTION, MACHINE, "RUNNING", alice_input());
    let history = pending();
    let guard = guard(&[&describe, &history]);
    let mut unnamed = sent.clone();
    unnamed.as_object_mut().unwrap().remove("ExecutionId");
    assert_eq!(guard.admit(FUNCTION, &unnamed).await.unwrap_err().name(), "NotFromWorkflow");
    let mut foreign = sent.clone();
    foreign["ExecutionId"] = json!("arn:aws:states:us-east-1:123456789012:execution:someone-elses:alice");
    assert_eq!(guard.admit(FUNCTION, &foreign).await.unwrap_err().name(), "NotFromWorkflow");
    assert_eq!((describe.num_calls(), history.num_calls()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_missing_execution_is_refused_and_throttling_is_retried_by_the_state_machine() {
    let sent = payload(&["engineers"]);
    let history = history(vec![scheduled(11, FUNCTION, &sent)]);
    let missing = mock!(aws_sdk_sfn::Client::describe_execution).then_http_response(|| {
        json_response(400, json!({"__type": "ExecutionDoesNotExist", "message": "Execution Does Not Exist"}))
    });
    assert_eq!(guard(&[&missing, &history]).admit(FUNCTION, &sent).await.unwrap_err().name(), "NotFromWorkflow");
    let throttled = mock!(aws_sdk_sfn::Client::describe_execution).then_http_response(|| {
        json_response(400, json!({"__type": "ThrottlingException", "message": "Rate exceeded"}))
    });
    assert_eq!(guard(&[&throttled, &history]).admit(FUNCTION, &sent).await.unwrap_err().name(), "Throttled");
    // An execution encrypted with a customer key: KMS's throttling is retried too.
    let kms = mock!(aws_sdk_sfn::Client::describe_execution).then_http_response(|| {
        json_response(400, json!({"__type": "KmsThrottlingException", "message": "Rate exceeded"}))
    });
    assert_eq!(guard(&[&kms, &history]).admit(FUNCTION, &sent).await.unwrap_err().name(), "Throttled");
    let down = mock!(aws_sdk_sfn::Client::describe_execution)
        .then_http_response(|| json_response(500, json!({"__type": "InternalServerError", "message": "oops"})));
    assert_eq!(guard(&[&down, &history]).admit(FUNCTION, &sent).await.unwrap_err().name(), "ServiceUnavailable");
}

#[tokio::test(start_paused = true)]
async fn a_child_is_admitted_only_while_its_parent_of_this_deployment_runs() {
    let sent = payload(&["engineers"]);
    let child_input = json!({"UserName": "alice", "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID": PARENT});
    let child = describe(EXECUTION, MACHINE, "RUNNING", child_input.clone());
    let history = history(vec![event(12, 11, "LambdaFunctionStarted"), scheduled(11, FUNCTION, &sent)]);
    let parent_running = describe(PARENT, BATCH_MACHINE, "RUNNING", json!({"UserNames": ["alice"]}));
    assert!(guard(&[&child, &history, &parent_running]).admit(FUNCTION, &sent).await.is_ok());
    assert_eq!(parent_running.num_calls(), 1);
    let parent_stopped = describe(PARENT, BATCH_MACHINE, "ABORTED", json!({"UserNames": ["alice"]}));
    assert_eq!(
        guard(&[&child, &history, &parent_stopped]).admit(FUNCTION, &sent).await.unwrap_err().name(),
        "NotFromWorkflow"
    );
    let foreign_parent = describe(
        EXECUTION,
        MACHINE,
        "RUNNING",
        json!({"UserName": "alice", "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID": "arn:aws:states:us-east-1:123456789012:execution:other:x"}),
    );
    assert_eq!(guard(&[&foreign_parent, &history]).admit(FUNCTION, &sent).await.unwrap_err().name(), "NotFromWorkflow");
}

#[tokio::test(start_paused = true)]
async fn the_newest_events_are_read_first_and_older_pages_only_when_needed() {
    let sent = payload(&["engineers"]);
    let describe = describe(EXECUTION, MACHINE, "RUNNING", alice_input());
    let newest = mock!(aws_sdk_sfn::Client::get_execution_history)
        .match_requests(|r| r.max_results() == Some(25) && r.next_token().is_none() && r.reverse_order() == Some(true))
        .then_http_response(|| {
            json_response(200, json!({"events": [event(30, 29, "MapIterationStarted")], "nextToken": "older"}))
        });
    let sent_again = sent.clone();
    let older = mock!(aws_sdk_sfn::Client::get_execution_history)
        .match_requests(|r| r.max_results() == Some(200) && r.next_token() == Some("older"))
        .then_http_response(move || {
            json_response(
                200,
                json!({"events": [event(12, 11, "LambdaFunctionStarted"), scheduled(11, FUNCTION, &sent_again)]}),
            )
        });
    assert!(guard(&[&describe, &newest, &older]).admit(FUNCTION, &sent).await.is_ok());
    assert_eq!((newest.num_calls(), older.num_calls()), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_running_parent_is_asked_once_for_all_its_childrens_steps() {
    let sent = payload(&["engineers"]);
    let child_input = json!({"UserName": "alice", "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID": PARENT});
    let child = describe(EXECUTION, MACHINE, "RUNNING", child_input);
    let history = history(vec![event(12, 11, "LambdaFunctionStarted"), scheduled(11, FUNCTION, &sent)]);
    let parent = describe(PARENT, BATCH_MACHINE, "RUNNING", json!({"UserNames": ["alice"]}));
    let guard = guard(&[&child, &history, &parent]);
    for _ in 0..3 {
        assert!(guard.admit(FUNCTION, &sent).await.is_ok());
    }
    assert_eq!((child.num_calls(), parent.num_calls()), (3, 1));
}
