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
//! "ChildInput"}`), `Status`, and `Output` (the item's result: the started
//! child's `ExecutionArn` and the few fields of its output this summary
//! reads, kept by the Map's `KeepWhatTheSummaryReads`) or `Error` and
//! `Cause`. A child that failed fails its item with `States.TaskFailed`
//! whose cause is the child's DescribeExecution, its own `Error` in it
//! (developer guide, "Start a new AWS Step Functions state machine from a
//! running execution"). Only the few fields read are kept of each entry,
//! and a result file is read entry by entry ([`for_each_report_entry`]).
//!
//! The report is only counted once it is shown to be this run's: the bucket
//! is the deployment's, the manifest names this execution's Map Run
//! (`MapRunArn`) and lists files of its own directory under
//! `org-runs/<execution name>/`, and each entry is about an account of the
//! run and its child, `<account>-<suffix>` of this execution; anything else
//! is `UntrustedReport` (the manifest) or an ignored entry. One account
//! with entries that disagree is failed (`ConflictingReport`), never the
//! first entry's.

use std::collections::hash_map::Entry as Slot;
use std::collections::{BTreeMap, HashMap, HashSet};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::batch::{for_each_report_entry, read_report, ResultLocation};
use crate::errors::{invalid_input as invalid, OffboardError};
use crate::fanout::child_execution_name;
use crate::input::is_execution_arn;
use crate::removal::UserDeletion;
use crate::stage::Timed;

/// A Fail state's cause is at most 32,768 characters (Step Functions API
/// reference: DescribeExecution and ExecutionFailedEventDetails, `cause`,
/// "Maximum length of 32768"); `SomeAccountsFailed`'s cause is the summary.
pub const MAX_CAUSE_CHARACTERS: usize = 32_768;
/// What the summary's JSON is kept within: the cause's limit less room for
/// how Step Functions' `States.JsonToString` may write it (escapes) and the
/// duration stamped after the summary is made.
pub const SUMMARY_BUDGET: usize = 30_000;
/// The prefix of the Map's `ResultWriter` (`org-runs/<execution name>`).
pub const REPORT_PREFIX: &str = "org-runs";
/// A child's error when it never ran (not in the report, or `PENDING` in it).
pub const NOT_RUN: &str = "NotRun";
/// A child that SUCCEEDED with an output that is none of the state
/// machine's ends (an audit record, a plan, a restoration): missing, not
/// JSON, or another shape.
pub const UNREADABLE_OUTPUT: &str = "UnreadableOutput";
/// A child whose end does not fit the run: a deletion, or a restoration, in
/// a dry run; a plan in a real one.
pub const UNEXPECTED_OUTCOME: &str = "UnexpectedOutcome";
/// An account whose report entries disagree on its end.
pub const CONFLICTING_REPORT: &str = "ConflictingReport";
/// A child stopped (StopExecution) other than by `offboard restore`.
pub const ABORTED: &str = "ABORTED";

/// What the summary is made from: the Map's report, the accounts it ran
/// over, and the run's options (echoed in the summary).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct AccountsSummaryRequest {
    /// The Map's output: where its `ResultWriter` left the manifest.
    pub result_writer_details: ResultLocation,
    /// The Map Run that wrote the report (the Map's output): the manifest
    /// must name it.
    pub map_run_arn: String,
    /// The deployment's report bucket (the `ResultWriter`'s `Bucket`).
    pub report_bucket: String,
    /// This execution (`$$.Execution.Id`): its name bounds the report's keys
    /// and names each child.
    pub execution_id: String,
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
    /// Report entries not counted: about no account of the run, or not
    /// about this run's child for it (each logged).
    pub ignored_entries: usize,
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

/// The item's placement, as the Map's `ItemSelector` built it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Placement {
    account: String,
    #[serde(default)]
    execution_name: Option<String>,
}

/// The item's result: the started child and what its output says.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ItemOutput {
    #[serde(default)]
    execution_arn: Option<String>,
    #[serde(default)]
    output: Option<ChildOutput>,
}

/// What tells a child's successful ends apart (the state machine's
/// Restored, Planned and Offboarded outputs): a restoration's `Outcome`; a
/// plan's `DryRun` true and no `UserDeletion`; an audit record's `DryRun`
/// false and the user's deletion.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ChildOutput {
    #[serde(default)]
    outcome: Option<Value>,
    #[serde(default)]
    dry_run: Option<Value>,
    #[serde(default)]
    user_deletion: Option<UserDeletion>,
}

impl ChildOutput {
    fn end(&self) -> AccountEnd {
        match (&self.outcome, &self.dry_run, &self.user_deletion) {
            (Some(Value::String(outcome)), _, _) if outcome == "Restored" => AccountEnd::Restored,
            (None, Some(Value::Bool(true)), None) => AccountEnd::Planned,
            (None, Some(Value::Bool(false)), Some(_)) => AccountEnd::Offboarded,
            _ => AccountEnd::Failed(UNREADABLE_OUTPUT.into()),
        }
    }
}

/// A failed child's DescribeExecution, as far as it is read.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ChildDescription {
    #[serde(default)]
    execution_arn: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// This execution as its report must show it.
pub struct Run<'a> {
    /// `arn:<p>:states:<region>:<account>:execution:<machine>`: the children
    /// are executions of the same state machine.
    executions: &'a str,
    name: &'a str,
    accounts: HashSet<&'a str>,
    dry_run: bool,
}

impl<'a> Run<'a> {
    pub fn new(request: &'a AccountsSummaryRequest) -> Result<Self, OffboardError> {
        let id = request.execution_id.as_str();
        let (executions, name) = id.rsplit_once(':').filter(|_| is_execution_arn(id)).ok_or_else(|| {
            invalid(format!("SummarizeAccounts' ExecutionId {id:?} is not a Step Functions execution ARN"))
        })?;
        let accounts = request.accounts.iter().map(String::as_str).collect();
        Ok(Self { executions, name, accounts, dry_run: request.dry_run })
    }

    /// Where the Map's report must be: `org-runs/<execution name>/`.
    pub fn report_prefix(&self) -> String {
        format!("{REPORT_PREFIX}/{}/", self.name)
    }

    /// The child this execution started in `account`, as the Map names it.
    pub fn child_name(&self, account: &str) -> String {
        child_execution_name(self.name, account)
    }

    fn child_arn(&self, child_name: &str) -> String {
        format!("{}:{child_name}", self.executions)
    }
}

impl MapItemResult {
    /// The account the item ran in, from its input.
    pub fn account(&self) -> Option<&str> {
        self.input.as_ref().map(|input| input.placement.account.as_str())
    }

    /// The child execution the entry reports on, where it names one: the
    /// started child (the item's result), or the failed one (its
    /// DescribeExecution in the cause).
    fn child_arn(&self) -> Option<&str> {
        match self.status.as_str() {
            "SUCCEEDED" => self.output.as_ref()?.execution_arn.as_deref(),
            _ => self.cause.as_ref()?.execution_arn.as_deref(),
        }
    }

    /// The account and how its child ended, when the entry is about an
    /// account of `run` and names that account's child of this execution
    /// (an end other than a failure must name it); otherwise why not.
    pub fn checked<'e>(&'e self, run: &Run) -> Result<(&'e str, AccountEnd), &'static str> {
        let placement = &self.input.as_ref().ok_or("names no account")?.placement;
        if !run.accounts.contains(placement.account.as_str()) {
            return Err("names an account this execution does not cover");
        }
        let name = run.child_name(&placement.account);
        if placement.execution_name.as_deref() != Some(name.as_str()) {
            return Err("its child is not named as this execution names the account's child");
        }
        let end = self.end(run.dry_run);
        match (self.child_arn(), &end) {
            (Some(arn), _) if arn != run.child_arn(&name) => {
                Err("reports on another execution than the account's child")
            }
            (None, AccountEnd::Offboarded | AccountEnd::Planned | AccountEnd::Restored | AccountEnd::NotPresent) => {
                Err("names no child execution")
            }
            _ => Ok((placement.account.as_str(), end)),
        }
    }

    /// The account's outcome from its child's own end, in a run that is
    /// (`dry_run`) or is not a dry run: a dry run ends Planned, NotPresent
    /// or Failed, a real run never Planned.
    pub fn end(&self, dry_run: bool) -> AccountEnd {
        match (self.child_end(), dry_run) {
            (AccountEnd::Offboarded | AccountEnd::Restored, true) | (AccountEnd::Planned, false) => {
                AccountEnd::Failed(UNEXPECTED_OUTCOME.into())
            }
            (end, _) => end,
        }
    }

    fn child_end(&self) -> AccountEnd {
        if self.status == "SUCCEEDED" {
            return match self.output.as_ref().and_then(|item| item.output.as_ref()) {
                Some(child) => child.end(),
                None => AccountEnd::Failed(UNREADABLE_OUTPUT.into()),
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
            Some(child) => match (child.status.as_deref(), child.error.as_deref()) {
                // The child itself found no such user. A child stopped with
                // that error (StopExecution takes any) is not.
                (Some("FAILED"), Some("UserNotFound")) => AccountEnd::NotPresent,
                // `offboard restore` stops the waiting child with error
                // Restored; whoever may StopExecution can do the same.
                (Some("ABORTED"), Some("Restored")) => AccountEnd::Restored,
                (Some("ABORTED"), _) => AccountEnd::Failed(ABORTED.into()),
                (_, Some(error)) => AccountEnd::Failed(error.to_string()),
                // Timed out without an error of its own.
                (status, None) => AccountEnd::Failed(status.unwrap_or(&error).to_string()),
            },
        }
    }
}

/// What the manifest is read for; its other fields are not.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Manifest {
    #[serde(default)]
    destination_bucket: Option<String>,
    #[serde(default)]
    map_run_arn: Option<String>,
    /// By status (`SUCCEEDED`, `FAILED`, `PENDING`).
    #[serde(default)]
    result_files: BTreeMap<String, Vec<ResultFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResultFile {
    key: String,
}

fn untrusted(why: String) -> OffboardError {
    OffboardError::UntrustedReport(format!(
        "{why}: not the report this execution's Map Run wrote, so no account is counted from it. Each account's child execution (<account>-<execution name>) holds its outcome."
    ))
}

/// The result files the manifest lists, once the report is shown to be
/// this execution's: the location the Map gave is in the deployment's
/// bucket under `org-runs/<execution name>/`, and the manifest names the
/// Map Run and that bucket and lists files of its own directory only.
async fn result_files(
    s3: &aws_sdk_s3::Client,
    request: &AccountsSummaryRequest,
    run: &Run<'_>,
) -> Result<Vec<String>, OffboardError> {
    let location = &request.result_writer_details;
    let uri = format!("s3://{}/{}", location.bucket, location.key);
    if location.bucket != request.report_bucket {
        return Err(untrusted(format!("the Map's report {uri} is not in the report bucket {}", request.report_bucket)));
    }
    let prefix = run.report_prefix();
    let directory = location.key.rsplit_once('/').map(|(directory, _)| format!("{directory}/")).unwrap_or_default();
    if !directory.starts_with(&prefix) {
        return Err(untrusted(format!("the Map's report {uri} is not under {prefix}")));
    }
    let manifest: Manifest = read_report(s3, &location.bucket, &location.key).await?;
    if manifest.map_run_arn.as_deref() != Some(request.map_run_arn.as_str()) {
        return Err(untrusted(format!(
            "the manifest {uri} names Map Run {:?}, not this execution's {}",
            manifest.map_run_arn, request.map_run_arn
        )));
    }
    if manifest.destination_bucket.as_deref() != Some(request.report_bucket.as_str()) {
        return Err(untrusted(format!(
            "the manifest {uri} names bucket {:?}, not the report bucket {}",
            manifest.destination_bucket, request.report_bucket
        )));
    }
    let keys: Vec<String> = manifest.result_files.into_values().flatten().map(|file| file.key).collect();
    if let Some(stray) = keys.iter().find(|key| !key.starts_with(&directory) || key.contains("/../")) {
        return Err(untrusted(format!("the manifest {uri} lists {stray}, outside {directory}")));
    }
    Ok(keys)
}

/// Each account's end as the report's trusted entries say it.
#[derive(Debug, Default)]
pub struct Tally {
    pub ends: HashMap<String, AccountEnd>,
    pub ignored: usize,
}

impl Tally {
    /// Counts one entry; an account whose entries disagree is failed.
    pub fn add(&mut self, run: &Run, entry: &MapItemResult) {
        match entry.checked(run) {
            Ok((account, end)) => match self.ends.entry(account.to_string()) {
                Slot::Vacant(slot) => {
                    slot.insert(end);
                }
                Slot::Occupied(mut slot) if *slot.get() != end => {
                    tracing::warn!(account, first = ?slot.get(), then = ?end, "the report's entries disagree");
                    slot.insert(AccountEnd::Failed(CONFLICTING_REPORT.into()));
                }
                Slot::Occupied(_) => {}
            },
            Err(why) => {
                self.ignored += 1;
                tracing::warn!(account = entry.account(), status = entry.status, why, "a report entry is ignored");
            }
        }
    }
}

/// Summarises an org-wide offboarding from its Map's report.
pub async fn summarize_accounts(
    s3: &aws_sdk_s3::Client,
    request: &AccountsSummaryRequest,
) -> Result<AccountsSummary, OffboardError> {
    let run = Run::new(request)?;
    let location = &request.result_writer_details;
    let keys = result_files(s3, request, &run).await?;
    let mut tally = Tally::default();
    for key in keys {
        for_each_report_entry(s3, &request.report_bucket, &key, |entry: MapItemResult| tally.add(&run, &entry)).await?;
    }
    let report_uri = format!("s3://{}/{}", location.bucket, location.key);
    Ok(summarize(request, &tally, report_uri))
}

/// The counts and the named failures; an account the report does not list
/// never ran ([`NOT_RUN`]).
pub fn summarize(request: &AccountsSummaryRequest, tally: &Tally, report_uri: String) -> AccountsSummary {
    let mut summary = AccountsSummary {
        total: request.accounts.len(),
        ignored_entries: tally.ignored,
        report_uri,
        dry_run: request.dry_run,
        delete_after: request.delete_after.clone(),
        ..AccountsSummary::default()
    };
    let not_run = AccountEnd::Failed(NOT_RUN.into());
    let mut failures: Vec<(&str, &str)> = Vec::new();
    for account in &request.accounts {
        match tally.ends.get(account).unwrap_or(&not_run) {
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
    // is stamped later, and FailedAccountsNotNamed grows from 0 to at most
    // Failed: both counted here at their widest.
    let json_length = |value: &str| serde_json::to_string(value).map(|text| text.len()).unwrap_or(usize::MAX);
    let widest_duration = u64::MAX.to_string().len() - "null".len();
    let widest_not_named = summary.failed.to_string().len() - "0".len();
    let mut size = serde_json::to_string(&summary).map(|text| text.len()).unwrap_or(usize::MAX)
        + widest_duration
        + widest_not_named;
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

    const PARENT: &str = "arn:aws:states:us-east-1:123456789012:execution:offboard:alice-org";

    fn request(accounts: &[&str]) -> AccountsSummaryRequest {
        AccountsSummaryRequest {
            result_writer_details: ResultLocation {
                bucket: "reports".into(),
                key: "org-runs/alice-org/run/manifest.json".into(),
            },
            map_run_arn: "arn:aws:states:us-east-1:123456789012:mapRun:offboard/OffboardEachAccount:run".into(),
            report_bucket: "reports".into(),
            execution_id: PARENT.into(),
            accounts: accounts.iter().map(|a| a.to_string()).collect(),
            dry_run: false,
            delete_after: None,
        }
    }

    /// The child the parent started in `account`.
    fn child_arn(account: &str) -> String {
        format!("arn:aws:states:us-east-1:123456789012:execution:offboard:{account}-alice-org")
    }

    /// A report entry of this run's child in `account`.
    fn entry(account: &str, status: &str, output: Option<Value>, error: Option<&str>, cause: Option<String>) -> Value {
        let mut entry = json!({
            "ExecutionArn": format!("arn:aws:states:us-east-1:123456789012:execution:offboard/OffboardEachAccount:{account}"),
            "Input": json!({"Placement": {"Account": account, "ExecutionName": format!("{account}-alice-org")},
                            "ChildInput": {"UserName": "alice"}}).to_string(),
            "InputDetails": {"Included": true},
            "Status": status,
        });
        if let Some(output) = output {
            entry["Output"] = json!(json!({"ExecutionArn": child_arn(account), "Output": output}).to_string());
        }
        if let Some(error) = error {
            entry["Error"] = json!(error);
        }
        if let Some(cause) = cause {
            entry["Cause"] = json!(cause);
        }
        entry
    }

    /// A failed child's DescribeExecution, as a failed item's cause carries it.
    fn described(account: &str, status: &str, error: Option<&str>) -> String {
        let mut child = json!({"ExecutionArn": child_arn(account), "Status": status, "StateMachineArn": "m"});
        if let Some(error) = error {
            child["Error"] = json!(error);
            child["Cause"] = json!("...");
        }
        child.to_string()
    }

    fn parsed(value: Value) -> MapItemResult {
        serde_json::from_value(value).unwrap()
    }

    fn end(value: Value) -> AccountEnd {
        parsed(value).end(false)
    }

    fn failed(reason: &str) -> AccountEnd {
        AccountEnd::Failed(reason.into())
    }

    fn record() -> Value {
        json!({"DryRun": false, "UserDeletion": {"Outcome": "Removed", "VerificationAttempts": 2}})
    }

    fn plan() -> Value {
        json!({"DryRun": true, "UserDeletion": null})
    }

    #[test]
    fn each_account_ends_as_its_child_did() {
        assert_eq!(end(entry("1", "SUCCEEDED", Some(record()), None, None)), AccountEnd::Offboarded);
        let whole_record = json!({"User": {"UserName": "alice"}, "DryRun": false, "Items": {},
                                  "UserDeletion": {"Outcome": "AlreadyAbsent", "VerificationAttempts": 0}});
        assert_eq!(end(entry("1", "SUCCEEDED", Some(whole_record), None, None)), AccountEnd::Offboarded);
        assert_eq!(parsed(entry("1", "SUCCEEDED", Some(plan()), None, None)).end(true), AccountEnd::Planned);
        let restored = json!({"Outcome": "Restored"});
        assert_eq!(end(entry("1", "SUCCEEDED", Some(restored), None, None)), AccountEnd::Restored);
        let failed_with = |cause: String| entry("1", "FAILED", None, Some("States.TaskFailed"), Some(cause));
        assert_eq!(end(failed_with(described("1", "FAILED", Some("UserNotFound")))), AccountEnd::NotPresent);
        assert_eq!(end(failed_with(described("1", "FAILED", Some("AccessDenied")))), failed("AccessDenied"));
        assert_eq!(
            end(failed_with(described("1", "ABORTED", Some("Restored")))),
            AccountEnd::Restored,
            "offboard restore"
        );
        assert_eq!(end(failed_with(described("1", "FAILED", Some("Restored")))), failed("Restored"));
        assert_eq!(end(failed_with(described("1", "TIMED_OUT", None))), failed("TIMED_OUT"));
        assert_eq!(end(failed_with("not json".into())), failed("States.TaskFailed"));
        let refused = entry(
            "1",
            "FAILED",
            None,
            Some("StepFunctions.ExecutionAlreadyExistsException"),
            Some("Execution Already Exists".into()),
        );
        assert_eq!(end(refused), failed("StepFunctions.ExecutionAlreadyExistsException"));
        assert_eq!(end(entry("1", "PENDING", None, None, None)), failed(NOT_RUN));
        assert_eq!(end(entry("1", "ABORTED", None, None, None)), failed("ABORTED"));
        assert_eq!(parsed(entry("444455556666", "SUCCEEDED", None, None, None)).account(), Some("444455556666"));
    }

    #[test]
    fn only_a_child_that_failed_finding_no_user_is_not_present() {
        // StopExecution takes any error name: a child stopped "UserNotFound"
        // (by anyone with states:StopExecution) is stopped, not absent.
        let stopped = entry(
            "1",
            "FAILED",
            None,
            Some("States.TaskFailed"),
            Some(described("1", "ABORTED", Some("UserNotFound"))),
        );
        assert_eq!(end(stopped), failed(ABORTED));
        let stopped =
            entry("1", "FAILED", None, Some("States.TaskFailed"), Some(described("1", "ABORTED", Some("TestOver"))));
        assert_eq!(end(stopped), failed(ABORTED));
        let timed_out = entry(
            "1",
            "FAILED",
            None,
            Some("States.TaskFailed"),
            Some(described("1", "TIMED_OUT", Some("UserNotFound"))),
        );
        assert_eq!(end(timed_out), failed("UserNotFound"), "a child that did not fail itself is not absent");
    }

    #[test]
    fn a_succeeded_child_whose_output_is_none_of_the_machines_ends_is_failed_not_offboarded() {
        let unreadable = failed(UNREADABLE_OUTPUT);
        assert_eq!(end(entry("1", "SUCCEEDED", None, None, None)), unreadable, "no output");
        let mut garbled = entry("1", "SUCCEEDED", None, None, None);
        garbled["Output"] = json!("{\"ExecutionArn\": \"arn\", \"Output\": ");
        assert_eq!(end(garbled), unreadable, "not JSON");
        for output in [
            json!({}),
            json!({"DryRun": false}),
            json!({"DryRun": false, "UserDeletion": null}),
            json!({"DryRun": false, "UserDeletion": {"Outcome": "Kept"}}),
            json!({"DryRun": "false", "UserDeletion": {"Outcome": "Removed", "VerificationAttempts": 1}}),
            json!({"DryRun": true, "UserDeletion": {"Outcome": "Removed", "VerificationAttempts": 1}}),
            json!({"Outcome": "Offboarded"}),
            json!({"Outcome": "Restored ", "DryRun": false}),
            json!([record()]),
            json!("Offboarded"),
        ] {
            assert_eq!(end(entry("1", "SUCCEEDED", Some(output.clone()), None, None)), unreadable, "{output}");
        }
        let mut bare = entry("1", "SUCCEEDED", None, None, None);
        bare["Output"] = json!(json!({"ExecutionArn": child_arn("1")}).to_string());
        assert_eq!(end(bare), unreadable, "the item's result without the child's output");
    }

    #[test]
    fn a_dry_run_is_never_offboarded_and_a_real_run_never_planned() {
        let unexpected = failed(UNEXPECTED_OUTCOME);
        let dry = |output: Value| parsed(entry("1", "SUCCEEDED", Some(output), None, None)).end(true);
        assert_eq!(dry(record()), unexpected, "a deletion in a dry run");
        assert_eq!(dry(json!({"Outcome": "Restored"})), unexpected);
        let restore =
            entry("1", "FAILED", None, Some("States.TaskFailed"), Some(described("1", "ABORTED", Some("Restored"))));
        assert_eq!(parsed(restore).end(true), unexpected);
        assert_eq!(dry(plan()), AccountEnd::Planned);
        let absent =
            entry("1", "FAILED", None, Some("States.TaskFailed"), Some(described("1", "FAILED", Some("UserNotFound"))));
        assert_eq!(parsed(absent).end(true), AccountEnd::NotPresent);
        assert_eq!(end(entry("1", "SUCCEEDED", Some(plan()), None, None)), unexpected, "a plan in a real run");
    }

    #[test]
    fn only_entries_about_this_runs_child_in_a_covered_account_are_counted() {
        let request = request(&["111111111111", "222222222222"]);
        let run = Run::new(&request).unwrap();
        assert_eq!(
            (run.report_prefix(), run.child_name("111111111111")),
            ("org-runs/alice-org/".into(), "111111111111-alice-org".into())
        );
        let ok = entry("111111111111", "SUCCEEDED", Some(record()), None, None);
        assert_eq!(parsed(ok.clone()).checked(&run), Ok(("111111111111", AccountEnd::Offboarded)));

        let outside = entry("333333333333", "SUCCEEDED", Some(record()), None, None);
        assert!(parsed(outside).checked(&run).is_err(), "an account the run does not cover");
        let mut renamed = ok.clone();
        renamed["Input"] =
            json!(json!({"Placement": {"Account": "111111111111", "ExecutionName": "111111111111-other-run"}})
                .to_string());
        assert!(parsed(renamed).checked(&run).is_err(), "another run's child name");
        let mut unnamed = ok.clone();
        unnamed["Input"] = json!(json!({"Placement": {"Account": "111111111111"}}).to_string());
        assert!(parsed(unnamed).checked(&run).is_err());
        let mut replayed = ok.clone();
        replayed["Output"] = json!(json!({"ExecutionArn": "arn:aws:states:us-east-1:123456789012:execution:offboard:111111111111-other-run", "Output": record()}).to_string());
        assert!(parsed(replayed).checked(&run).is_err(), "another execution's output");
        let mut elsewhere = ok.clone();
        elsewhere["Output"] = json!(json!({"ExecutionArn": "arn:aws:states:us-east-1:123456789012:execution:other-machine:111111111111-alice-org", "Output": record()}).to_string());
        assert!(parsed(elsewhere).checked(&run).is_err(), "another state machine's execution");
        let mut anonymous = ok.clone();
        anonymous["Output"] = json!(json!({"Output": record()}).to_string());
        assert!(parsed(anonymous).checked(&run).is_err(), "an end other than a failure names its child");
        let absent_elsewhere = entry(
            "222222222222",
            "FAILED",
            None,
            Some("States.TaskFailed"),
            Some(described("111111111111", "FAILED", Some("UserNotFound"))),
        );
        assert!(parsed(absent_elsewhere).checked(&run).is_err(), "another account's child's failure");
        // A failure that names no child (its start was refused) is the account's.
        let refused = entry(
            "222222222222",
            "FAILED",
            None,
            Some("StepFunctions.ExecutionAlreadyExistsException"),
            Some("exists".into()),
        );
        assert_eq!(
            parsed(refused).checked(&run),
            Ok(("222222222222", failed("StepFunctions.ExecutionAlreadyExistsException")))
        );
        let pending = entry("222222222222", "PENDING", None, None, None);
        assert_eq!(parsed(pending).checked(&run), Ok(("222222222222", failed(NOT_RUN))));

        let mut bad = request.clone();
        bad.execution_id = "alice-org".into();
        assert_eq!(Run::new(&bad).err().map(|e| e.name()), Some("InvalidInput"));
    }

    #[test]
    fn an_account_whose_entries_disagree_fails_and_the_first_entry_never_wins() {
        let request = request(&["111111111111", "222222222222"]);
        let run = Run::new(&request).unwrap();
        let mut tally = Tally::default();
        let offboarded = parsed(entry("111111111111", "SUCCEEDED", Some(record()), None, None));
        let denied = entry(
            "111111111111",
            "FAILED",
            None,
            Some("States.TaskFailed"),
            Some(described("111111111111", "FAILED", Some("AccessDenied"))),
        );
        tally.add(&run, &offboarded);
        tally.add(&run, &parsed(denied));
        tally.add(&run, &offboarded);
        assert_eq!(tally.ends["111111111111"], failed(CONFLICTING_REPORT));
        // The same end twice is one end.
        let absent = entry(
            "222222222222",
            "FAILED",
            None,
            Some("States.TaskFailed"),
            Some(described("222222222222", "FAILED", Some("UserNotFound"))),
        );
        tally.add(&run, &parsed(absent.clone()));
        tally.add(&run, &parsed(absent));
        assert_eq!(tally.ends["222222222222"], AccountEnd::NotPresent);
        // An ignored entry is counted apart and decides nothing.
        tally.add(&run, &parsed(entry("333333333333", "SUCCEEDED", Some(record()), None, None)));
        assert_eq!((tally.ends.len(), tally.ignored), (2, 1));
        let summary = summarize(&request, &tally, "s3://reports/m.json".into());
        assert_eq!((summary.offboarded, summary.not_present, summary.failed, summary.ignored_entries), (0, 1, 1, 1));
        assert_eq!(summary.failed_accounts[CONFLICTING_REPORT], ["111111111111"]);
    }

    #[test]
    fn the_summary_counts_each_outcome_and_an_account_not_in_the_report_never_ran() {
        let accounts = ["111111111111", "222222222222", "333333333333", "444444444444", "555555555555", "666666666666"];
        let ends: HashMap<String, AccountEnd> = [
            ("111111111111", AccountEnd::Offboarded),
            ("222222222222", AccountEnd::Restored),
            ("333333333333", AccountEnd::NotPresent),
            ("444444444444", failed("AccessDenied")),
            ("555555555555", failed("AccessDenied")),
            ("999999999999", AccountEnd::Offboarded),
        ]
        .into_iter()
        .map(|(account, end)| (account.to_string(), end))
        .collect();
        let summary = summarize(&request(&accounts), &Tally { ends, ignored: 0 }, "s3://reports/m.json".into());
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
            .map(|(n, account)| (account.clone(), failed(&format!("Error{}", n % 7))))
            .collect();
        let mut request = request(&[]);
        request.accounts = accounts.clone();
        request.delete_after = Some("2026-12-31T17:00:00Z".into());
        let uri = format!("s3://{}/org-runs/{}/{}/manifest.json", "b".repeat(63), "n".repeat(80), "r".repeat(36));
        let mut summary = summarize(&request, &Tally { ends, ignored: usize::MAX }, uri);
        summary.set_duration_ms(u64::MAX);
        let text = serde_json::to_string(&summary).unwrap();
        assert!(text.len() <= SUMMARY_BUDGET && SUMMARY_BUDGET < MAX_CAUSE_CHARACTERS, "{}", text.len());
        let named: usize = summary.failed_accounts.values().map(Vec::len).sum();
        assert_eq!((summary.failed, named + summary.failed_accounts_not_named), (5_000, 5_000));
        assert!(named > 1_500, "most of a cause's room names accounts: {named}");
        assert!(text.len() > SUMMARY_BUDGET - 100, "the room is used: {}", text.len());
    }
}
