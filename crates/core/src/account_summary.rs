//! An org-wide offboarding's summary, made after its Distributed Map
//! (`OffboardEachAccount`) from the Map's report in S3 (`ResultWriter`):
//! each account's outcome read from its own child execution's end, never
//! from the Map's status, counted; the failed accounts named, as many as a
//! Fail state's cause holds. The batch state machine's function makes it
//! (`{"SummarizeAccounts": ...}`, [`crate::stages::OffboardBatch`]), with
//! the S3 reads it already has for the batch's own report.
//!
//! A report entry is one child workflow execution of the Map Run, in the
//! `Transformation: NONE` form (Step Functions developer guide, "ResultWriter
//! (Map)"): `Input` (the item: `{"Placement": {"Account", "ExecutionName"},
//! "ChildInput"}`), `Status`, and `Output` (the task's result,
//! `{"ExecutionArn", "Output": <the child's output>}`) or `Error` and
//! `Cause`. A child that failed fails its item with `States.TaskFailed`
//! whose cause is the child's DescribeExecution, its own `Error` in it
//! (developer guide, "Start a new AWS Step Functions state machine from a
//! running execution"). Only the few fields read are kept of each entry:
//! a report of 5,000 accounts holding whole audit records is tens of
//! megabytes.

use std::collections::{BTreeMap, HashMap};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::batch::{read_report, read_report_object, result_files, ResultLocation};
use crate::errors::OffboardError;
use crate::stage::Timed;

/// A Fail state's cause is at most 32,768 characters (Step Functions API
/// reference: DescribeExecution and ExecutionFailedEventDetails, `cause`,
/// "Maximum length of 32768"); `SomeAccountsFailed`'s cause is the summary.
pub const MAX_CAUSE_CHARACTERS: usize = 32_768;
/// What the summary's JSON is kept within: the cause's limit less room for
/// how Step Functions' `States.JsonToString` may write it (escapes) and the
/// duration stamped after the summary is made.
pub const SUMMARY_BUDGET: usize = 30_000;
/// A child's error when it never ran (not in the report, or `PENDING` in it).
pub const NOT_RUN: &str = "NotRun";

/// What the summary is made from: the Map's report, the accounts it ran
/// over, and the run's options (echoed in the summary).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct AccountsSummaryRequest {
    pub result_writer_details: ResultLocation,
    pub accounts: Vec<String>,
    pub dry_run: bool,
    #[serde(default)]
    pub delete_after: Option<String>,
}

/// The org-wide offboarding's output (or `SomeAccountsFailed`'s cause).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct AccountsSummary {
    /// Accounts the execution covered.
    pub total: usize,
    pub offboarded: usize,
    /// A dry run's accounts where the user was found and planned for.
    pub planned: usize,
    /// Quarantined, then restored during the grace period: nothing deleted.
    pub restored: usize,
    /// The user does not exist there: nothing to do, not a failure.
    pub not_present: usize,
    pub failed: usize,
    /// Failed accounts by error name, each list in the accounts' order, as
    /// many as [`SUMMARY_BUDGET`] holds; the report names every one.
    pub failed_accounts: BTreeMap<String, Vec<String>>,
    /// Failed accounts left out of `FailedAccounts` for want of room.
    pub failed_accounts_not_named: usize,
    /// The Map's report: `s3://<bucket>/<prefix>/<map run>/manifest.json`.
    pub report_uri: String,
    pub dry_run: bool,
    pub delete_after: Option<String>,
    #[serde(default)]
    pub duration_ms: Option<u64>,
}

impl Timed for AccountsSummary {
    fn set_duration_ms(&mut self, duration_ms: u64) {
        self.duration_ms = Some(duration_ms);
    }
}

/// How one account's child ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountEnd {
    Offboarded,
    Planned,
    Restored,
    NotPresent,
    Failed(String),
}

/// A JSON text field of a report entry, parsed into the little it is read
/// for; anything else (absent, not JSON, another shape) is `None`.
fn embedded<'de, D: Deserializer<'de>, T: DeserializeOwned>(deserializer: D) -> Result<Option<T>, D::Error> {
    let text: Option<String> = Option::deserialize(deserializer)?;
    Ok(text.and_then(|text| serde_json::from_str(&text).ok()))
}

/// One report entry, as far as it is read.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MapItemResult {
    #[serde(default, deserialize_with = "embedded")]
    input: Option<ItemInput>,
    status: String,
    #[serde(default, deserialize_with = "embedded")]
    output: Option<ItemOutput>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default, deserialize_with = "embedded")]
    cause: Option<ChildDescription>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ItemInput {
    placement: Placement,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Placement {
    account: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ItemOutput {
    #[serde(default)]
    output: ChildOutput,
}

/// What tells a child's successful ends apart: a restoration's `Outcome`,
/// a plan's `DryRun` (the state machine's Restored, Planned and Offboarded
/// outputs: the audit record, the plan, `{"Outcome": "Restored", ...}`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ChildOutput {
    #[serde(default)]
    outcome: Option<Value>,
    #[serde(default)]
    dry_run: Option<Value>,
}

/// A failed child's DescribeExecution, as far as it is read.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ChildDescription {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

impl MapItemResult {
    /// The account the item ran in, from its input.
    pub fn account(&self) -> Option<&str> {
        self.input.as_ref().map(|input| input.placement.account.as_str())
    }

    /// The account's outcome from its child's own end.
    pub fn end(&self) -> AccountEnd {
        if self.status == "SUCCEEDED" {
            let output = self.output.as_ref().map(|item| &item.output);
            return match output {
                Some(child) if child.outcome.as_ref().and_then(Value::as_str) == Some("Restored") => {
                    AccountEnd::Restored
                }
                Some(child) if child.dry_run == Some(Value::Bool(true)) => AccountEnd::Planned,
                _ => AccountEnd::Offboarded,
            };
        }
        if self.status == "PENDING" {
            return AccountEnd::Failed(NOT_RUN.into());
        }
        let error = self.error.clone().unwrap_or_else(|| self.status.clone());
        let child = self.cause.as_ref().filter(|_| error == "States.TaskFailed");
        match child {
            // Not started (StartExecution refused, say): the task's own error.
            None => AccountEnd::Failed(error),
            Some(child) => match (child.error.as_deref(), child.status.as_deref()) {
                (Some("UserNotFound"), _) => AccountEnd::NotPresent,
                // `offboard restore` stops the waiting child with error Restored.
                (Some("Restored"), Some("ABORTED")) => AccountEnd::Restored,
                (Some(error), _) => AccountEnd::Failed(error.to_string()),
                // Stopped or timed out without an error of its own.
                (None, status) => AccountEnd::Failed(status.unwrap_or(&error).to_string()),
            },
        }
    }
}

/// Summarises an org-wide offboarding from its Map's report.
pub async fn summarize_accounts(
    s3: &aws_sdk_s3::Client,
    request: &AccountsSummaryRequest,
) -> Result<AccountsSummary, OffboardError> {
    let location = &request.result_writer_details;
    let manifest: Value = read_report(s3, &location.bucket, &location.key).await?;
    let (bucket, keys) = result_files(&manifest, location);
    let mut ends: HashMap<String, AccountEnd> = HashMap::with_capacity(request.accounts.len());
    for key in keys {
        let bytes = read_report_object(s3, &bucket, &key).await?;
        let entries: Vec<MapItemResult> = serde_json::from_slice(&bytes).map_err(|e| {
            OffboardError::ServiceUnavailable(format!("s3://{bucket}/{key} lists no child results: {e}"))
        })?;
        drop(bytes);
        for entry in entries {
            match entry.account() {
                Some(account) => {
                    ends.entry(account.to_string()).or_insert_with(|| entry.end());
                }
                None => tracing::warn!(key, status = entry.status, "a report entry names no account"),
            }
        }
    }
    Ok(summarize(request, &ends, format!("s3://{}/{}", location.bucket, location.key)))
}

/// The counts and the named failures; an account the report does not list
/// never ran ([`NOT_RUN`]).
pub fn summarize(
    request: &AccountsSummaryRequest,
    ends: &HashMap<String, AccountEnd>,
    report_uri: String,
) -> AccountsSummary {
    let mut summary = AccountsSummary {
        total: request.accounts.len(),
        report_uri,
        dry_run: request.dry_run,
        delete_after: request.delete_after.clone(),
        ..AccountsSummary::default()
    };
    let not_run = AccountEnd::Failed(NOT_RUN.into());
    let mut failures: Vec<(&str, &str)> = Vec::new();
    for account in &request.accounts {
        match ends.get(account).unwrap_or(&not_run) {
            AccountEnd::Offboarded => summary.offboarded += 1,
            AccountEnd::Planned => summary.planned += 1,
            AccountEnd::Restored => summary.restored += 1,
            AccountEnd::NotPresent => summary.not_present += 1,
            AccountEnd::Failed(error) => failures.push((account, error)),
        }
    }
    summary.failed = failures.len();
    // Name failures while the summary's JSON stays within the budget: the
    // room one more account takes is `"<account>",` in its error's list, or
    // `"<error>":["<account>"],` for an error not yet listed. The duration
    // is stamped later: counted here at its widest.
    let json_length = |value: &str| serde_json::to_string(value).map(|text| text.len()).unwrap_or(usize::MAX);
    let widest_duration = u64::MAX.to_string().len() - "null".len();
    let mut size = serde_json::to_string(&summary).map(|text| text.len()).unwrap_or(usize::MAX) + widest_duration;
    for (account, error) in failures {
        let room = match summary.failed_accounts.contains_key(error) {
            true => json_length(account) + 1,
            false => json_length(error) + 1 + 2 + json_length(account) + 1,
        };
        if size.saturating_add(room) <= SUMMARY_BUDGET {
            size += room;
            summary.failed_accounts.entry(error.to_string()).or_default().push(account.to_string());
        } else {
            summary.failed_accounts_not_named += 1;
        }
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(accounts: &[&str]) -> AccountsSummaryRequest {
        AccountsSummaryRequest {
            result_writer_details: ResultLocation {
                bucket: "reports".into(),
                key: "org-runs/x/run/manifest.json".into(),
            },
            accounts: accounts.iter().map(|a| a.to_string()).collect(),
            dry_run: false,
            delete_after: None,
        }
    }

    fn entry(account: &str, status: &str, output: Option<Value>, error: Option<&str>, cause: Option<String>) -> Value {
        let mut entry = json!({
            "ExecutionArn": format!("arn:aws:states:us-east-1:123456789012:execution:offboard/OffboardEachAccount:{account}"),
            "Input": json!({"Placement": {"Account": account, "ExecutionName": format!("{account}-x")},
                            "ChildInput": {"UserName": "alice"}}).to_string(),
            "InputDetails": {"Included": true},
            "Status": status,
        });
        if let Some(output) = output {
            entry["Output"] = json!(json!({"ExecutionArn": "arn", "Output": output}).to_string());
        }
        if let Some(error) = error {
            entry["Error"] = json!(error);
        }
        if let Some(cause) = cause {
            entry["Cause"] = json!(cause);
        }
        entry
    }

    fn described(status: &str, error: Option<&str>) -> String {
        let mut child = json!({"ExecutionArn": "arn", "Status": status, "StateMachineArn": "m"});
        if let Some(error) = error {
            child["Error"] = json!(error);
            child["Cause"] = json!("...");
        }
        child.to_string()
    }

    fn end(value: Value) -> AccountEnd {
        serde_json::from_value::<MapItemResult>(value).unwrap().end()
    }

    #[test]
    fn each_account_ends_as_its_child_did() {
        let record = json!({"User": {"UserName": "alice"}, "DryRun": false, "Items": {}});
        assert_eq!(end(entry("1", "SUCCEEDED", Some(record), None, None)), AccountEnd::Offboarded);
        let plan = json!({"User": {"UserName": "alice"}, "DryRun": true});
        assert_eq!(end(entry("1", "SUCCEEDED", Some(plan), None, None)), AccountEnd::Planned);
        let restored = json!({"Outcome": "Restored", "User": {}, "Quarantine": {}, "Reason": "tag removed"});
        assert_eq!(end(entry("1", "SUCCEEDED", Some(restored), None, None)), AccountEnd::Restored);
        let failed = |cause: String| entry("1", "FAILED", None, Some("States.TaskFailed"), Some(cause));
        assert_eq!(end(failed(described("FAILED", Some("UserNotFound")))), AccountEnd::NotPresent);
        assert_eq!(end(failed(described("FAILED", Some("AccessDenied")))), AccountEnd::Failed("AccessDenied".into()));
        assert_eq!(end(failed(described("ABORTED", Some("Restored")))), AccountEnd::Restored, "offboard restore");
        assert_eq!(end(failed(described("FAILED", Some("Restored")))), AccountEnd::Failed("Restored".into()));
        assert_eq!(end(failed(described("TIMED_OUT", None))), AccountEnd::Failed("TIMED_OUT".into()));
        assert_eq!(end(failed("not json".into())), AccountEnd::Failed("States.TaskFailed".into()));
        let refused = entry(
            "1",
            "FAILED",
            None,
            Some("StepFunctions.ExecutionAlreadyExistsException"),
            Some("Execution Already Exists".into()),
        );
        assert_eq!(end(refused), AccountEnd::Failed("StepFunctions.ExecutionAlreadyExistsException".into()));
        assert_eq!(end(entry("1", "PENDING", None, None, None)), AccountEnd::Failed(NOT_RUN.into()));
        assert_eq!(end(entry("1", "ABORTED", None, None, None)), AccountEnd::Failed("ABORTED".into()));
        let parsed: MapItemResult =
            serde_json::from_value(entry("444455556666", "SUCCEEDED", None, None, None)).unwrap();
        assert_eq!(parsed.account(), Some("444455556666"));
    }

    #[test]
    fn the_summary_counts_each_outcome_and_an_account_not_in_the_report_never_ran() {
        let accounts = ["111111111111", "222222222222", "333333333333", "444444444444", "555555555555", "666666666666"];
        let ends: HashMap<String, AccountEnd> = [
            ("111111111111", AccountEnd::Offboarded),
            ("222222222222", AccountEnd::Restored),
            ("333333333333", AccountEnd::NotPresent),
            ("444444444444", AccountEnd::Failed("AccessDenied".into())),
            ("555555555555", AccountEnd::Failed("AccessDenied".into())),
            ("999999999999", AccountEnd::Offboarded),
        ]
        .into_iter()
        .map(|(account, end)| (account.to_string(), end))
        .collect();
        let summary = summarize(&request(&accounts), &ends, "s3://reports/m.json".into());
        assert_eq!(
            (summary.total, summary.offboarded, summary.restored, summary.not_present, summary.failed),
            (6, 1, 1, 1, 3),
            "an account outside the fan-out is not counted"
        );
        assert_eq!(summary.failed_accounts["AccessDenied"], ["444444444444", "555555555555"]);
        assert_eq!(summary.failed_accounts[NOT_RUN], ["666666666666"]);
        assert_eq!(summary.failed_accounts_not_named, 0);
    }

    #[test]
    fn five_thousand_failed_accounts_are_named_as_far_as_a_cause_holds() {
        let accounts: Vec<String> = (0..5_000).map(|n| format!("{:012}", 100_000_000_000u64 + n)).collect();
        let ends: HashMap<String, AccountEnd> = accounts
            .iter()
            .enumerate()
            .map(|(n, account)| (account.clone(), AccountEnd::Failed(format!("Error{}", n % 7))))
            .collect();
        let mut request = request(&[]);
        request.accounts = accounts.clone();
        request.delete_after = Some("2026-12-31T17:00:00Z".into());
        let uri = format!("s3://{}/org-runs/{}/{}/manifest.json", "b".repeat(63), "n".repeat(80), "r".repeat(36));
        let mut summary = summarize(&request, &ends, uri);
        summary.set_duration_ms(u64::MAX);
        let text = serde_json::to_string(&summary).unwrap();
        assert!(text.len() <= SUMMARY_BUDGET && SUMMARY_BUDGET < MAX_CAUSE_CHARACTERS, "{}", text.len());
        let named: usize = summary.failed_accounts.values().map(Vec::len).sum();
        assert_eq!((summary.failed, named + summary.failed_accounts_not_named), (5_000, 5_000));
        assert!(named > 1_500, "most of a cause's room names accounts: {named}");
        assert!(text.len() > SUMMARY_BUDGET - 100, "the room is used: {}", text.len());
    }
}
