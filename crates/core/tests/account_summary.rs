//! The org-wide summary (`SummarizeAccounts`) against a mocked
//! `aws_sdk_s3::Client`: a Distributed Map's report is counted only once it
//! is shown to be the one this execution's Map Run wrote, and a forged entry
//! never turns a failed account into an offboarded one.
//!
//! The report's shape is a real one: a manifest `{"DestinationBucket",
//! "MapRunArn", "ResultFiles": {"FAILED", "PENDING", "SUCCEEDED"}}` whose
//! result files, `{"Key", "Size"}`, lie in a directory named after the Map
//! Run's id under the `ResultWriter`'s prefix (a real manifest quoted in
//! department-for-transport-BODS/bods-backend,
//! tests/timetables_etl/generate_output_zip/models/test_model_manifest.py:
//! "MapRunArn": "arn:aws:states:eu-west-2:...:mapRun:bods-backend-dev-tt-sm/8c9dd6c6-...:25bc2fbb-...",
//! "Key": "tt-etl-map-results/25bc2fbb-.../FAILED_0.json"; Step Functions
//! developer guide, "ResultWriter (Map)": the manifest "Contains Map Run
//! metadata, such as export location, Map Run ARN, and information about the
//! result files"). The entries are the `Transformation: NONE` form (same
//! page), as tests/emulator/sfn_integration.py writes them.

mod common;

use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use iam_offboard_core::account_summary::{AccountsSummary, CONFLICTING_REPORT};
use iam_offboard_core::stages::{invoke, StageContext};
use iam_offboard_core::stages::{BatchAnswer, BatchCall, OffboardBatch};
use iam_offboard_core::target::ProtectionPolicy;
use iam_offboard_core::OffboardError;
use serde_json::{json, Value};

const BUCKET: &str = "offboard-reports";
const PARENT: &str = "arn:aws:states:us-east-1:123456789012:execution:offboard:alice-org";
const MAP_RUN: &str =
    "arn:aws:states:us-east-1:123456789012:mapRun:offboard/OffboardEachAccount:0f1e2d3c-0000-4000-8000-000000000001";
const DIRECTORY: &str = "org-runs/alice-org/0f1e2d3c-0000-4000-8000-000000000001/";
const A: &str = "111111111111";
const B: &str = "222222222222";
const C: &str = "333333333333";
const E: &str = "555555555555";

fn object(body: &Value) -> GetObjectOutput {
    GetObjectOutput::builder().body(ByteStream::from(body.to_string().into_bytes())).build()
}

/// GetObject of `bucket`/`key` answers `body`.
fn serves(bucket: &str, key: String, body: Value) -> Rule {
    let bucket = bucket.to_string();
    mock!(Client::get_object)
        .match_requests(move |r| r.bucket() == Some(bucket.as_str()) && r.key() == Some(key.as_str()))
        .then_output(move || object(&body))
}

fn child_arn(account: &str, parent: &str) -> String {
    format!("arn:aws:states:us-east-1:123456789012:execution:offboard:{account}-{parent}")
}

/// One entry of the report: the item of `account` in execution `parent`.
fn entry(account: &str, parent: &str, status: &str) -> Value {
    json!({
        "ExecutionArn": format!("arn:aws:states:us-east-1:123456789012:execution:offboard/OffboardEachAccount:{account}"),
        "Input": json!({"Placement": {"Account": account, "ExecutionName": format!("{account}-{parent}")},
                        "ChildInput": {"UserName": "alice", "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID": PARENT}})
            .to_string(),
        "InputDetails": {"Included": true},
        "Name": format!("item-{account}"),
        "Status": status,
    })
}

/// An item whose child SUCCEEDED with `output` (what the Map keeps of it).
fn succeeded(account: &str, parent: &str, output: Value) -> Value {
    let mut entry = entry(account, parent, "SUCCEEDED");
    entry["Output"] = json!(json!({"ExecutionArn": child_arn(account, parent), "Output": output}).to_string());
    entry
}

/// An item whose child failed with `error` (its DescribeExecution in the cause).
fn failed(account: &str, parent: &str, error: &str) -> Value {
    let mut entry = entry(account, parent, "FAILED");
    entry["Error"] = json!("States.TaskFailed");
    entry["Cause"] = json!(json!({"ExecutionArn": child_arn(account, parent), "Status": "FAILED", "Error": error,
                                  "Cause": "...", "StateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:offboard"})
    .to_string());
    entry
}

fn offboarded() -> Value {
    json!({"DryRun": false, "UserDeletion": {"Outcome": "Removed", "VerificationAttempts": 1}})
}

fn manifest(bucket: &str, map_run: &str, succeeded: &[&str], failed: &[&str]) -> Value {
    let files = |keys: &[&str]| keys.iter().map(|key| json!({"Key": key, "Size": 1})).collect::<Vec<_>>();
    json!({"DestinationBucket": bucket, "MapRunArn": map_run,
           "ResultFiles": {"FAILED": files(failed), "PENDING": [], "SUCCEEDED": files(succeeded)}})
}

fn request(accounts: &[&str]) -> Value {
    json!({"SummarizeAccounts": {
        "ResultWriterDetails": {"Bucket": BUCKET, "Key": format!("{DIRECTORY}manifest.json")},
        "MapRunArn": MAP_RUN, "ReportBucket": BUCKET, "ExecutionId": PARENT,
        "Accounts": accounts, "DryRun": false, "DeleteAfter": null}})
}

async fn summarize(rules: &[&Rule], request: Value) -> Result<AccountsSummary, OffboardError> {
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, rules);
    let (sts, _) = sts_as_role!();
    let mut ctx = StageContext::from_clients(iam_client!(), sts, ProtectionPolicy::default());
    ctx.s3 = Some(s3);
    let call: BatchCall = serde_json::from_value(request).unwrap();
    match invoke::<OffboardBatch>(&ctx, call).await? {
        BatchAnswer::Accounts(summary) => Ok(summary),
        other => panic!("an accounts summary, not {other:?}"),
    }
}

fn counts(summary: &AccountsSummary) -> [usize; 6] {
    [
        summary.offboarded,
        summary.planned,
        summary.restored,
        summary.not_present,
        summary.failed,
        summary.ignored_entries,
    ]
}

#[tokio::test]
async fn the_report_this_execution_wrote_is_counted_entry_by_entry() {
    let (ok, bad) = (format!("{DIRECTORY}SUCCEEDED_0.json"), format!("{DIRECTORY}FAILED_0.json"));
    let manifest = serves(BUCKET, format!("{DIRECTORY}manifest.json"), manifest(BUCKET, MAP_RUN, &[&ok], &[&bad]));
    let good = serves(
        BUCKET,
        ok,
        json!([succeeded(A, "alice-org", offboarded()), succeeded(B, "alice-org", json!({"Outcome": "Restored"}))]),
    );
    let refused = {
        let mut entry = entry(E, "alice-org", "FAILED");
        entry["Error"] = json!("StepFunctions.ExecutionAlreadyExistsException");
        entry["Cause"] = json!("Execution Already Exists: ... (Service: AWSStepFunctions; Status Code: 400)");
        entry
    };
    let failures = serves(BUCKET, bad, json!([failed(C, "alice-org", "UserNotFound"), refused]));
    let summary = summarize(&[&manifest, &good, &failures], request(&[A, B, C, E, "666666666666"])).await.unwrap();
    assert_eq!(counts(&summary), [1, 0, 1, 1, 2, 0]);
    assert_eq!(summary.failed_accounts["StepFunctions.ExecutionAlreadyExistsException"], [E]);
    assert_eq!(summary.failed_accounts["NotRun"], ["666666666666"]);
    assert_eq!(summary.report_uri, format!("s3://{BUCKET}/{DIRECTORY}manifest.json"));
    assert_eq!([manifest.num_calls(), good.num_calls(), failures.num_calls()], [1, 1, 1]);
}

#[tokio::test]
async fn a_report_this_executions_map_run_did_not_write_is_untrusted_and_nothing_is_counted() {
    let forged_key = format!("{DIRECTORY}SUCCEEDED_0.json");
    // What a forger would have counted: the failed account as offboarded.
    let forged = json!([succeeded(E, "alice-org", offboarded())]);
    let other_run = "arn:aws:states:us-east-1:123456789012:mapRun:offboard/OffboardEachAccount:99999999-0000-4000-8000-000000000009";
    for (what, location, manifest_body, forged_at) in [
        (
            "the Map's location in another bucket",
            json!({"Bucket": "elsewhere", "Key": format!("{DIRECTORY}manifest.json")}),
            manifest("elsewhere", MAP_RUN, &[&forged_key], &[]),
            ("elsewhere", forged_key.clone()),
        ),
        (
            "the Map's location under another execution's prefix",
            json!({"Bucket": BUCKET, "Key": "org-runs/alice-org-2/run/manifest.json"}),
            manifest(BUCKET, MAP_RUN, &["org-runs/alice-org-2/run/SUCCEEDED_0.json"], &[]),
            (BUCKET, "org-runs/alice-org-2/run/SUCCEEDED_0.json".into()),
        ),
        (
            "a manifest of another Map Run",
            json!({"Bucket": BUCKET, "Key": format!("{DIRECTORY}manifest.json")}),
            manifest(BUCKET, other_run, &[&forged_key], &[]),
            (BUCKET, forged_key.clone()),
        ),
        (
            "a manifest naming another bucket",
            json!({"Bucket": BUCKET, "Key": format!("{DIRECTORY}manifest.json")}),
            manifest("attacker-bucket", MAP_RUN, &[&forged_key], &[]),
            ("attacker-bucket", forged_key.clone()),
        ),
        (
            "a manifest listing a file outside its directory",
            json!({"Bucket": BUCKET, "Key": format!("{DIRECTORY}manifest.json")}),
            manifest(BUCKET, MAP_RUN, &["lists/forged.json"], &[]),
            (BUCKET, "lists/forged.json".into()),
        ),
        (
            "a manifest listing another Map Run's file of the same execution",
            json!({"Bucket": BUCKET, "Key": format!("{DIRECTORY}manifest.json")}),
            manifest(BUCKET, MAP_RUN, &["org-runs/alice-org/older-run/SUCCEEDED_0.json"], &[]),
            (BUCKET, "org-runs/alice-org/older-run/SUCCEEDED_0.json".into()),
        ),
        (
            "a manifest naming no Map Run",
            json!({"Bucket": BUCKET, "Key": format!("{DIRECTORY}manifest.json")}),
            json!({"DestinationBucket": BUCKET, "ResultFiles": {"SUCCEEDED": [{"Key": forged_key, "Size": 1}]}}),
            (BUCKET, forged_key.clone()),
        ),
    ] {
        let manifest =
            serves(location["Bucket"].as_str().unwrap(), location["Key"].as_str().unwrap().to_string(), manifest_body);
        let (bucket, key) = forged_at;
        let forgery = serves(bucket, key, forged.clone());
        let mut call = request(&[E]);
        call["SummarizeAccounts"]["ResultWriterDetails"] = location;
        let error = summarize(&[&manifest, &forgery], call).await.unwrap_err();
        assert_eq!(error.name(), "UntrustedReport", "{what}: {error}");
        assert_eq!(forgery.num_calls(), 0, "{what}: no result file is read");
    }
}

#[tokio::test]
async fn a_forged_entry_never_turns_a_failed_account_into_an_offboarded_one() {
    let (ok, bad) = (format!("{DIRECTORY}SUCCEEDED_0.json"), format!("{DIRECTORY}FAILED_0.json"));
    let manifest = serves(BUCKET, format!("{DIRECTORY}manifest.json"), manifest(BUCKET, MAP_RUN, &[&ok], &[&bad]));
    let failures = serves(BUCKET, bad, json!([failed(E, "alice-org", "AccessDenied")]));
    // Read first (SUCCEEDED before FAILED): another run's success in E, an
    // entry naming no child, and one about an account this run does not cover.
    let mut anonymous = succeeded(E, "alice-org", offboarded());
    anonymous["Output"] = json!(json!({"Output": offboarded()}).to_string());
    let mut renamed = succeeded(E, "alice-org-old", offboarded());
    renamed["Input"] = entry(E, "alice-org", "SUCCEEDED")["Input"].clone();
    let replayed = serves(
        BUCKET,
        ok.clone(),
        json!([
            renamed,
            succeeded(E, "alice-org-old", offboarded()),
            anonymous,
            succeeded(C, "alice-org", offboarded())
        ]),
    );
    let summary = summarize(&[&manifest, &replayed, &failures], request(&[E])).await.unwrap();
    assert_eq!(counts(&summary), [0, 0, 0, 0, 1, 4]);
    assert_eq!(summary.failed_accounts["AccessDenied"], [E], "the child's own failure stands");

    // This run's own child named, and a success: the entries disagree.
    let conflicting = serves(BUCKET, ok, json!([succeeded(E, "alice-org", offboarded())]));
    let summary = summarize(&[&manifest, &conflicting, &failures], request(&[E])).await.unwrap();
    assert_eq!(counts(&summary), [0, 0, 0, 0, 1, 0]);
    assert_eq!(summary.failed_accounts[CONFLICTING_REPORT], [E]);
}
