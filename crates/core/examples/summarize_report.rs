//! How much memory OffboardBatch needs to summarise an org-wide offboarding
//! (`SummarizeAccounts`, docs/DESIGN.md "Org-wide offboarding"): `generate`
//! writes a report of N accounts to an S3 endpoint (a local moto server) in
//! the form the Map writes it, `summarize` reads it as the function does, in
//! a process of its own so that its peak RSS can be measured:
//!
//! ```text
//! .venv/bin/moto_server -p 5077 &
//! export AWS_ENDPOINT_URL_S3=http://127.0.0.1:5077 AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x
//! target/local/examples/summarize_report generate 5000 /tmp/request.json [whole-records]
//! /usr/bin/time -v target/local/examples/summarize_report summarize /tmp/request.json
//! ```
//!
//! Four accounts in five end offboarded, one in five failed (AccessDenied,
//! the child's DescribeExecution in the cause, its input included). Each
//! entry's `Output` is what the Map keeps (`KeepWhatTheSummaryReads`), or
//! with `whole-records` the child's whole audit record (what the Map kept
//! before it was trimmed).

use aws_config::BehaviorVersion;
use iam_offboard_core::account_summary::{summarize_accounts, AccountsSummaryRequest};
use iam_offboard_core::batch::ResultLocation;
use iam_offboard_core::clients::s3_client;
use serde_json::{json, Value};

const BUCKET: &str = "offboard-batch-reports";
const PARENT_NAME: &str = "alice-smith-org-wide-offboarding";
const MAP_RUN_ID: &str = "0f1e2d3c-4b5a-4968-8778-695a4b3c2d1e";

fn parent() -> String {
    format!("arn:aws:states:us-east-1:123456789012:execution:iam-offboard-offboard:{PARENT_NAME}")
}

fn account(n: usize) -> String {
    format!("{:012}", 100_000_000_000u64 + n as u64)
}

fn child_input(account: &str) -> Value {
    json!({"UserName": "alice.smith@example.com", "Context": {"Ticket": "HR-12345", "Requester": "hr-offboarding"},
           "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID": parent(), "DeleteAfter": null,
           "Account": account, "ExecutionName": format!("{account}-{PARENT_NAME}")})
}

/// An audit record of a user with a few of everything (inline policy documents included).
fn whole_record(account: &str) -> Value {
    let policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
                        "Resource": ["arn:aws:s3:::team-bucket", "arn:aws:s3:::team-bucket/*"]}]});
    json!({"User": {"UserName": "alice.smith@example.com", "UserId": "AIDAEXAMPLEEXAMPLE01", "Path": "/",
                    "Arn": format!("arn:aws:iam::{account}:user/alice.smith@example.com"),
                    "Tags": [{"Key": "team", "Value": "platform"}], "PermissionsBoundary": null},
           "DryRun": false, "Context": {"Ticket": "HR-12345"},
           "Items": {"LoginProfile": {"CreateDate": "2023-01-01T00:00:00Z", "Outcome": "Removed"},
                     "AccessKeys": (0..2).map(|i| json!({"AccessKeyId": format!("AKIAEXAMPLE{i:09}"), "Status": "Active",
                                                         "CreateDate": "2023-01-01T00:00:00Z", "Outcome": "Removed"})).collect::<Vec<_>>(),
                     "SSHPublicKeys": [], "SigningCertificates": [], "ServiceSpecificCredentials": [],
                     "MFADevices": [{"SerialNumber": format!("arn:aws:iam::{account}:mfa/alice"), "HandledAs": "Virtual",
                                     "EnableDate": "2023-01-01T00:00:00Z", "Outcome": "Removed"}],
                     "Groups": (0..3).map(|i| json!({"GroupName": format!("group-{i}"), "Outcome": "Removed"})).collect::<Vec<_>>(),
                     "InlinePolicies": (0..2).map(|i| json!({"PolicyName": format!("inline-{i}"), "PolicyDocument": policy, "Outcome": "Removed"})).collect::<Vec<_>>(),
                     "AttachedPolicies": (0..3).map(|i| json!({"PolicyArn": format!("arn:aws:iam::aws:policy/ReadOnly{i}"), "Outcome": "Removed"})).collect::<Vec<_>>()},
           "UserDeletion": {"Outcome": "Removed", "VerificationAttempts": 2}, "Rounds": 0,
           "Timings": {"GetUsername": 120, "GetKeysCertificatesMfaAndCredentials": 340, "GetGroupsAndPolicies": 410}})
}

fn entry(n: usize, whole_records: bool) -> Value {
    let account = account(n);
    let child =
        format!("arn:aws:states:us-east-1:123456789012:execution:iam-offboard-offboard:{account}-{PARENT_NAME}");
    let item = json!({"Placement": {"Account": account, "ExecutionName": format!("{account}-{PARENT_NAME}")},
                      "ChildInput": child_input(&account)});
    let mut entry = json!({
        "ExecutionArn": format!("arn:aws:states:us-east-1:123456789012:execution:iam-offboard-offboard/OffboardEachAccount:{n:08x}-5c4b-4a3f-9e8d-7c6b5a4f3e2d"),
        "Input": item.to_string(), "InputDetails": {"Included": true}, "Name": format!("{n:08x}-5c4b-4a3f-9e8d-7c6b5a4f3e2d"),
        "StartDate": "2026-01-05T10:00:00.000Z", "StopDate": "2026-01-05T10:00:41.000Z",
        "StateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:iam-offboard-offboard/OffboardEachAccount",
    });
    if n % 5 == 4 {
        let described = json!({"ExecutionArn": child, "Input": child_input(&account).to_string(), "InputDetails": {"Included": true},
            "Name": format!("{account}-{PARENT_NAME}"), "StartDate": "2026-01-05T10:00:00.000Z", "StopDate": "2026-01-05T10:00:02.000Z",
            "StateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:iam-offboard-offboard", "Status": "FAILED",
            "Error": "AccessDenied",
            "Cause": format!("sts:AssumeRole of arn:aws:iam::{account}:role/iam-offboard-target-GetUsername was refused: User: arn:aws:sts::123456789012:assumed-role/iam-offboard-GetUsernameFunctionRole/fn is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::{account}:role/iam-offboard-target-GetUsername. Deploy infra/target-account.yaml to the account; nothing was changed.")});
        entry["Status"] = json!("FAILED");
        entry["Error"] = json!("States.TaskFailed");
        entry["Cause"] = json!(described.to_string());
        entry["RedriveCount"] = json!(0);
        entry["RedriveStatus"] = json!("REDRIVABLE");
    } else {
        let output = match whole_records {
            true => whole_record(&account),
            false => json!({"DryRun": false, "UserDeletion": {"Outcome": "Removed", "VerificationAttempts": 2}}),
        };
        entry["Status"] = json!("SUCCEEDED");
        entry["Output"] = json!(json!({"ExecutionArn": child, "Output": output}).to_string());
        entry["OutputDetails"] = json!({"Included": true});
        entry["RedriveCount"] = json!(0);
        entry["RedriveStatus"] = json!("NOT_REDRIVABLE");
    }
    entry
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let s3 = s3_client(&config);
    match args.get(1).map(String::as_str) {
        Some("generate") => {
            let count: usize = args.get(2).ok_or("generate <accounts> <request.json>")?.parse()?;
            let whole_records = args.get(4).is_some_and(|flag| flag == "whole-records");
            let directory = format!("org-runs/{PARENT_NAME}/{MAP_RUN_ID}/");
            let _ = s3.create_bucket().bucket(BUCKET).send().await;
            let (failed, succeeded): (Vec<usize>, Vec<usize>) = (0..count).partition(|n| n % 5 == 4);
            let mut files = serde_json::Map::new();
            for (status, numbers) in [("SUCCEEDED", succeeded), ("FAILED", failed)] {
                let key = format!("{directory}{status}_0.json");
                let body = serde_json::to_vec(&numbers.iter().map(|n| entry(*n, whole_records)).collect::<Vec<_>>())?;
                println!("{status}_0.json: {} entries, {} bytes", numbers.len(), body.len());
                files.insert(status.into(), json!([{"Key": key, "Size": body.len()}]));
                s3.put_object().bucket(BUCKET).key(&key).body(body.into()).send().await?;
            }
            files.insert("PENDING".into(), json!([]));
            let map_run = format!(
                "arn:aws:states:us-east-1:123456789012:mapRun:iam-offboard-offboard/OffboardEachAccount:{MAP_RUN_ID}"
            );
            let manifest = json!({"DestinationBucket": BUCKET, "MapRunArn": map_run, "ResultFiles": files});
            let key = format!("{directory}manifest.json");
            s3.put_object().bucket(BUCKET).key(&key).body(serde_json::to_vec(&manifest)?.into()).send().await?;
            let request = AccountsSummaryRequest {
                result_writer_details: ResultLocation { bucket: BUCKET.into(), key },
                map_run_arn: map_run,
                report_bucket: BUCKET.into(),
                execution_id: parent(),
                accounts: (0..count).map(account).collect(),
                dry_run: false,
                delete_after: None,
            };
            std::fs::write(args.get(3).ok_or("generate <accounts> <request.json>")?, serde_json::to_vec(&request)?)?;
        }
        Some("summarize") => {
            let request: AccountsSummaryRequest =
                serde_json::from_slice(&std::fs::read(args.get(2).ok_or("summarize <request.json>")?)?)?;
            let summary = summarize_accounts(&s3, &request).await?;
            println!(
                "Total {} Offboarded {} Failed {} IgnoredEntries {}",
                summary.total, summary.offboarded, summary.failed, summary.ignored_entries
            );
        }
        _ => {
            return Err(
                "summarize_report generate <accounts> <request.json> [whole-records] | summarize <request.json>".into(),
            )
        }
    }
    Ok(())
}
