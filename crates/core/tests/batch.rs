//! The batch function against a mocked `aws_sdk_s3::Client`: the user list
//! read from S3, and the summary read from a Distributed Map's report.

mod common;

use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use iam_offboard_core::stages::{invoke, StageContext};
use iam_offboard_core::stages::{BatchAnswer, BatchCall, OffboardBatch};
use iam_offboard_core::target::ProtectionPolicy;
use serde_json::{json, Value};

fn s3_error(status: u16, code: &str) -> HttpResponse {
    let body = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{code}</Message><RequestId>r</RequestId></Error>");
    HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body))
}

fn object(body: impl Into<String>) -> GetObjectOutput {
    GetObjectOutput::builder().body(ByteStream::from(body.into().into_bytes())).build()
}

fn context(s3: Client) -> StageContext {
    let (sts, _) = sts_as_role!();
    let mut ctx = StageContext::from_clients(iam_client!(), sts, ProtectionPolicy::default());
    ctx.s3 = Some(s3);
    ctx
}

async fn call(s3: Client, request: BatchCall) -> Result<BatchAnswer, iam_offboard_core::OffboardError> {
    invoke::<OffboardBatch>(&context(s3), request).await
}

#[tokio::test]
async fn a_user_list_in_s3_is_read_and_checked_whole() {
    let list = mock!(Client::get_object)
        .match_requests(|r| r.bucket() == Some("lists") && r.key() == Some("leavers.csv"))
        .then_output(|| object("Ticket,UserName\nOPS-1,alice\nOPS-2,\"b,ob\"\n"));
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&list]);
    let input = json!({"UserList": {"Bucket": "lists", "Key": "leavers.csv"}, "DryRun": true});
    let BatchAnswer::Plan(plan) = call(s3, BatchCall::Validate(input)).await.unwrap() else { panic!("a plan") };
    let names: Vec<&str> = plan.users.iter().map(|u| u.user_name.as_str()).collect();
    assert_eq!(names, ["alice", "b,ob"]);
    assert_eq!((plan.count, plan.source.as_str(), plan.dry_run), (2, "s3://lists/leavers.csv", true));
    assert_eq!(plan.users[0].execution_name, "plan-alice-872213e7", "a dry run never takes the real run's name");
    assert!(plan.duration_ms.is_some());
    assert_eq!(list.num_calls(), 1);
}

#[tokio::test]
async fn a_missing_or_denied_list_is_named_and_starts_nothing() {
    for (status, code, expected) in [
        (404, "NoSuchKey", "InvalidInput"),
        (404, "NoSuchBucket", "InvalidInput"),
        (403, "AccessDenied", "AccessDenied"),
    ] {
        let rule = mock!(Client::get_object).then_http_response(move || s3_error(status, code));
        let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&rule], |c: aws_sdk_s3::config::Builder| c
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled()));
        let input = json!({"UserList": {"Bucket": "lists", "Key": "gone.csv"}});
        let error = call(s3, BatchCall::Validate(input)).await.unwrap_err();
        assert_eq!(error.name(), expected, "{code}: {error}");
        assert!(error.to_string().contains("s3://lists/gone.csv"), "{error}");
    }
    let bad = mock!(Client::get_object).then_output(|| object("Name\nalice\n"));
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&bad]);
    let error = call(s3, BatchCall::Validate(json!({"UserList": {"Bucket": "l", "Key": "k.csv"}}))).await.unwrap_err();
    assert!(error.to_string().contains("no UserName column"), "{error}");
}

fn result_entry(user: &str, status: &str, error: Option<&str>, cause: Option<Value>) -> Value {
    let mut entry = json!({"ExecutionArn": format!("arn:aws:states:us-east-1:123456789012:execution:batch/run:{user}"),
                           "Input": json!({"UserName": user, "DryRun": false}).to_string(), "Status": status});
    if let Some(error) = error {
        entry["Error"] = json!(error);
        entry["Cause"] = json!(cause.map(|c| c.to_string()).unwrap_or_default());
    }
    entry
}

#[tokio::test]
async fn the_summary_reads_the_manifest_and_every_result_file() {
    let manifest = mock!(Client::get_object)
        .match_requests(|r| r.key() == Some("batches/b1/run/manifest.json"))
        .then_output(|| {
            object(
                json!({"DestinationBucket": "reports", "MapRunArn": "arn",
                      "ResultFiles": {"FAILED": [{"Key": "batches/b1/run/FAILED_0.json", "Size": 1}], "PENDING": [],
                                      "SUCCEEDED": [{"Key": "batches/b1/run/SUCCEEDED_0.json", "Size": 1}]}})
                .to_string(),
            )
        });
    let succeeded = mock!(Client::get_object)
        .match_requests(|r| r.bucket() == Some("reports") && r.key() == Some("batches/b1/run/SUCCEEDED_0.json"))
        .then_output(|| {
            object(
                json!([result_entry("ann", "SUCCEEDED", None, None), result_entry("ben", "SUCCEEDED", None, None)])
                    .to_string(),
            )
        });
    let failed = mock!(Client::get_object)
        .match_requests(|r| r.key() == Some("batches/b1/run/FAILED_0.json"))
        .then_output(|| {
            object(
                json!([
                    result_entry(
                        "cat",
                        "FAILED",
                        Some("States.TaskFailed"),
                        Some(json!({"Status": "FAILED", "Error": "ProtectedUser", "Cause": "..."}))
                    ),
                    result_entry(
                        "dan",
                        "FAILED",
                        Some("States.TaskFailed"),
                        Some(json!({"Status": "FAILED", "Error": "Throttled", "Cause": "..."}))
                    ),
                ])
                .to_string(),
            )
        });
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&manifest, &succeeded, &failed]);
    let users: Vec<Value> = ["ann", "ben", "cat", "dan"]
        .iter()
        .map(|u| json!({"UserName": u, "ExecutionName": format!("{u}-0")}))
        .collect();
    let request = serde_json::from_value(json!({"Summarize": {
        "ResultWriterDetails": {"Bucket": "reports", "Key": "batches/b1/run/manifest.json"}, "Users": users, "DryRun": false}}))
    .unwrap();
    let BatchAnswer::Summary(summary) = call(s3, request).await.unwrap() else { panic!("a summary") };
    assert_eq!((summary.total, summary.succeeded, summary.failed_count), (4, 2, 1));
    assert_eq!(summary.protected, ["cat"]);
    assert_eq!(summary.failed["Throttled"], ["dan"]);
    assert!(summary.not_run.is_empty());
    assert_eq!(summary.report_uri, "s3://reports/batches/b1/run/manifest.json");
    assert!(summary.duration_ms.is_some());
    assert_eq!([manifest.num_calls(), succeeded.num_calls(), failed.num_calls()], [1, 1, 1]);

    let garbled = mock!(Client::get_object).then_output(|| object("not json"));
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&garbled]);
    let request = serde_json::from_value(json!({"Summarize": {
        "ResultWriterDetails": {"Bucket": "reports", "Key": "m.json"}, "Users": [], "DryRun": false}}))
    .unwrap();
    assert_eq!(call(s3, request).await.unwrap_err().name(), "ServiceUnavailable");

    let absent = mock!(Client::get_object).then_http_response(|| s3_error(404, "NoSuchKey"));
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&absent], |c: aws_sdk_s3::config::Builder| c
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled()));
    let request = serde_json::from_value(json!({"Summarize": {
        "ResultWriterDetails": {"Bucket": "reports", "Key": "m.json"}, "Users": [], "DryRun": false}}))
    .unwrap();
    let error = call(s3, request).await.unwrap_err();
    assert_eq!(error.name(), "ServiceUnavailable");
    assert!(error.to_string().contains("report s3://reports/m.json"), "{error}");
}

#[tokio::test]
async fn the_batch_function_has_no_user_to_log_and_makes_no_iam_call() {
    use iam_offboard_core::stages::Stage;
    assert_eq!(OffboardBatch::subject(&BatchCall::Validate(json!({}))), Default::default());
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, []);
    let BatchAnswer::Plan(plan) = call(s3, BatchCall::Validate(json!({"UserNames": ["alice"]}))).await.unwrap() else {
        panic!()
    };
    assert_eq!(plan.users[0].execution_name, "alice-872213e7");
}

#[tokio::test]
async fn the_largest_valid_plan_fits_the_256_kib_state() {
    // 1000 users of 64-character names (IAM's maximum): ValidateBatch keeps
    // the plan and the batch's own id, {"Batch": <plan>, "BatchExecutionId": <arn>},
    // which must fit Step Functions' 256 KiB payload quota ("Step Functions
    // service quotas": maximum input or output size for a task, state, or
    // execution, 256 KiB).
    let names: Vec<String> = (0..1000).map(|i| format!("{i:04}{}", "x".repeat(60))).collect();
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, []);
    let BatchAnswer::Plan(plan) = call(s3, BatchCall::Validate(json!({"UserNames": names}))).await.unwrap() else {
        panic!("a plan")
    };
    assert_eq!((plan.count, plan.users.len()), (1000, 1000));
    let longest_id =
        format!("arn:aws-us-gov:states:us-gov-west-1:123456789012:execution:{}:{}", "m".repeat(80), "e".repeat(80));
    let state = serde_json::to_vec(&json!({"Batch": plan, "BatchExecutionId": longest_id})).unwrap();
    assert!(state.len() < 256 * 1024, "{}", state.len());
}
