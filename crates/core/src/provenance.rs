//! Where a record comes from, checked before `offboard restore` acts on it.
//! Whoever can write the audit bucket could otherwise plant a `record.json`
//! that grants AdministratorAccess, or a `quarantine.json` whose
//! `Deactivated` lists keys incident response switched off, and the next
//! restore by an administrator would carry it out.
//!
//! A record the state machine wrote is compared with what its execution
//! wrote: the history's `TaskScheduled` event of the S3 PutObject task whose
//! parameters name this bucket and key holds the document's `Body` (Step
//! Functions API reference, GetExecutionHistory: `taskScheduledEventDetails`
//! with `resource`, `resourceType` and `parameters`, "the JSON data passed to
//! the resource referenced in a task state"). The execution must be one of
//! this deployment's state machine. Step Functions keeps a closed
//! execution's history for 90 days; past that, the bucket's write
//! restriction (only the state machine's role and the listed operator roles
//! may write `records/`) and Object Lock where enabled are what vouch for
//! it, and the object's own age (S3's `LastModified`, which no writer sets)
//! must say so: a record younger than that whose execution does not exist
//! is forged. A record the CLI wrote (`cli-<unix ms>`) has no execution to
//! ask and is labelled unverified.

use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::errors::{classify_sdk_error, OffboardError};
use crate::input::is_execution_arn;

/// Step Functions keeps a closed execution's history this long.
pub const HISTORY_KEPT: Duration = Duration::from_secs(90 * 86_400);

/// `records/<account>/<user>/<execution name>/<file>`, as the state machine
/// and the CLI file records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordKey {
    pub account: String,
    pub user_name: String,
    pub execution_name: String,
    pub file: String,
}

impl RecordKey {
    /// The key's parts; `None` for anything outside that layout. A path that
    /// ends in it (a local copy, a `--record-dir` folder) is read from its
    /// last `records/`.
    pub fn parse(path: &str) -> Option<Self> {
        let at = path.rfind("records/")?;
        if at > 0 && !path[..at].ends_with('/') {
            return None;
        }
        let parts: Vec<&str> = path[at..].split('/').collect();
        match parts.as_slice() {
            ["records", account, user_name, execution_name, file]
                if account.len() == 12
                    && account.chars().all(|c| c.is_ascii_digit())
                    && !user_name.is_empty()
                    && !execution_name.is_empty()
                    && file.ends_with(".json") =>
            {
                Some(Self {
                    account: account.to_string(),
                    user_name: user_name.to_string(),
                    execution_name: execution_name.to_string(),
                    file: file.to_string(),
                })
            }
            _ => None,
        }
    }

    pub fn key(&self) -> String {
        format!("records/{}/{}/{}/{}", self.account, self.user_name, self.execution_name, self.file)
    }

    /// The CLI names its runs `cli-<unix ms>`.
    pub fn written_by_the_cli(&self) -> bool {
        self.execution_name
            .strip_prefix("cli-")
            .is_some_and(|ms| !ms.is_empty() && ms.bytes().all(|b| b.is_ascii_digit()))
    }
}

/// What vouches for a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provenance {
    /// Its execution's history shows the state machine writing exactly this document here.
    Verified { execution_arn: String },
    /// Written by an operator's `offboard` CLI: no execution to check it against.
    WrittenByTheCli,
    /// Older than Step Functions' 90-day history: only the bucket's write
    /// restriction (and Object Lock where enabled) vouches for it.
    BeyondHistory { execution_arn: String, age_days: u64 },
}

impl Provenance {
    /// How restore describes it before asking to confirm.
    pub fn describe(&self) -> String {
        match self {
            Self::Verified { execution_arn } => {
                format!("verified: execution {execution_arn} of this deployment wrote exactly this record")
            }
            Self::WrittenByTheCli => "UNVERIFIED: written by an operator's offboard CLI (no execution to check it against); only the audit bucket's write restriction vouches for it".into(),
            Self::BeyondHistory { execution_arn, age_days } => format!(
                "UNVERIFIED: {age_days} days old, beyond Step Functions' 90-day history of {execution_arn}; only the audit bucket's write restriction (and Object Lock where enabled) vouches for it"
            ),
        }
    }
}

fn refused(why: impl std::fmt::Display) -> OffboardError {
    OffboardError::InvalidInput(format!("{why}. The record is not trusted and nothing was changed."))
}

/// The execution of `state_machine_arn` named `execution_name`.
pub fn execution_arn(state_machine_arn: &str, execution_name: &str) -> Result<String, OffboardError> {
    let arn = state_machine_arn.replacen(":stateMachine:", ":execution:", 1) + ":" + execution_name;
    if !state_machine_arn.contains(":stateMachine:") || !is_execution_arn(&arn) {
        return Err(OffboardError::InvalidInput(format!(
            "{state_machine_arn:?} is not a state machine ARN (arn:<partition>:states:<region>:<account>:stateMachine:<name>)"
        )));
    }
    Ok(arn)
}

/// Where a record was read: its bucket (none for a local copy), its key and
/// when S3 says it was written.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub bucket: Option<&'a str>,
    pub key: &'a RecordKey,
    pub last_modified: Option<SystemTime>,
}

/// Checks `document`, read from `source`, against the execution of
/// `state_machine_arn` that its key names. Refused (`InvalidInput`) when the
/// execution wrote something else there, wrote nothing there, or does not
/// exist while the object is younger than its history would be.
pub async fn verify_record(
    sfn: &aws_sdk_sfn::Client,
    state_machine_arn: &str,
    source: Source<'_>,
    document: &Value,
) -> Result<Provenance, OffboardError> {
    if source.key.written_by_the_cli() {
        return Ok(Provenance::WrittenByTheCli);
    }
    let execution_arn = execution_arn(state_machine_arn, &source.key.execution_name)?;
    let key = source.key.key();
    let mut token = None;
    let mut wrote_elsewhat = false;
    loop {
        let page = match sfn
            .get_execution_history()
            .execution_arn(&execution_arn)
            .include_execution_data(true)
            .max_results(1000)
            .set_next_token(token.take())
            .send()
            .await
        {
            Ok(page) => page,
            Err(error) if error.as_service_error().is_some_and(|e| e.is_execution_does_not_exist()) => {
                return beyond_history(&execution_arn, source.last_modified);
            }
            Err(error) => return Err(classify_sdk_error(error, "states:GetExecutionHistory", &execution_arn)),
        };
        for event in page.events() {
            let Some(parameters) = event.task_scheduled_event_details().map(|details| details.parameters()) else {
                continue;
            };
            let Ok(parameters) = serde_json::from_str::<Value>(parameters) else { continue };
            let names_this_object = parameters.get("Key").and_then(Value::as_str) == Some(key.as_str())
                && source.bucket.is_none_or(|bucket| parameters.get("Bucket").and_then(Value::as_str) == Some(bucket));
            if !names_this_object {
                continue;
            }
            let written = parameters
                .get("Body")
                .and_then(Value::as_str)
                .and_then(|body| serde_json::from_str::<Value>(body).ok());
            if written.as_ref() == Some(document) {
                return Ok(Provenance::Verified { execution_arn });
            }
            wrote_elsewhat = true;
        }
        match page.next_token() {
            Some(next) => token = Some(next.to_string()),
            None => break,
        }
    }
    Err(refused(if wrote_elsewhat {
        format!("{key} is not what execution {execution_arn} wrote there (its history holds another document)")
    } else {
        format!("execution {execution_arn} never wrote {key}")
    }))
}

fn beyond_history(execution_arn: &str, last_modified: Option<SystemTime>) -> Result<Provenance, OffboardError> {
    let age = last_modified.and_then(|written| SystemTime::now().duration_since(written).ok());
    match age {
        Some(age) if age >= HISTORY_KEPT => {
            Ok(Provenance::BeyondHistory { execution_arn: execution_arn.to_string(), age_days: age.as_secs() / 86_400 })
        }
        Some(age) => Err(refused(format!(
            "execution {execution_arn} does not exist, yet the record is {} days old, within Step Functions' 90-day history: it was not written by this deployment's state machine",
            age.as_secs() / 86_400
        ))),
        None => Err(refused(format!(
            "execution {execution_arn} does not exist (or its history is gone) and this copy's age is unknown; restore it from the audit bucket"
        ))),
    }
}

/// The record must be about a user of `acting_account`, the account the
/// restore works in: by its key and by the user's ARN.
pub fn check_account(key: Option<&RecordKey>, user_arn: &str, acting_account: &str) -> Result<(), OffboardError> {
    let arn_account = user_arn.split(':').nth(4).unwrap_or_default();
    let key_account = key.map(|key| key.account.as_str()).unwrap_or(arn_account);
    if arn_account != acting_account || key_account != acting_account {
        return Err(refused(format!(
            "the record is of account {} (user {user_arn}) but this restore works in account {acting_account}; use that account's credentials (or --account with --role-name for a member account)",
            if key_account == arn_account { key_account.to_string() } else { format!("{key_account}/{arn_account}") }
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_keys_are_the_layout_the_state_machine_and_the_cli_write() {
        let key = RecordKey::parse("records/111122223333/alice/alice-872213e7/record.json").unwrap();
        assert_eq!(
            (key.account.as_str(), key.user_name.as_str(), key.file.as_str()),
            ("111122223333", "alice", "record.json")
        );
        assert!(!key.written_by_the_cli());
        assert_eq!(key.key(), "records/111122223333/alice/alice-872213e7/record.json");
        let local = RecordKey::parse("/tmp/x/records/111122223333/alice/cli-1765000000000/quarantine.json").unwrap();
        assert!(local.written_by_the_cli());
        for outside in [
            "records/111122223333/alice/record.json",
            "records/1111/alice/e/record.json",
            "records/111122223333/alice/e/record.txt",
            "elsewhere/111122223333/alice/e/record.json",
            "myrecords/111122223333/alice/e/record.json",
            "records/111122223333/alice/e/extra/record.json",
        ] {
            assert_eq!(RecordKey::parse(outside), None, "{outside}");
        }
        let odd = RecordKey::parse("records/111122223333/alice/cli-12a/record.json").unwrap();
        assert!(!odd.written_by_the_cli(), "only cli-<digits> is the CLI's name");
    }

    #[test]
    fn execution_arns_are_the_machines_executions() {
        assert_eq!(
            execution_arn("arn:aws:states:us-east-1:111122223333:stateMachine:hub-offboard", "alice-1").unwrap(),
            "arn:aws:states:us-east-1:111122223333:execution:hub-offboard:alice-1"
        );
        assert!(execution_arn("arn:aws:lambda:us-east-1:111122223333:function:f", "x").is_err());
    }

    #[test]
    fn a_record_is_restored_only_in_its_own_account() {
        let key = RecordKey::parse("records/111122223333/alice/e/record.json").unwrap();
        let arn = "arn:aws:iam::111122223333:user/alice";
        assert!(check_account(Some(&key), arn, "111122223333").is_ok());
        assert!(check_account(Some(&key), arn, "444455556666").is_err());
        assert!(check_account(Some(&key), "arn:aws:iam::444455556666:user/alice", "111122223333").is_err());
        assert!(check_account(None, arn, "111122223333").is_ok());
        assert!(check_account(None, arn, "444455556666").is_err());
    }

    #[test]
    fn beyond_the_history_only_an_old_object_is_vouched_for() {
        let old = SystemTime::now() - Duration::from_secs(91 * 86_400);
        assert!(matches!(beyond_history("arn", Some(old)), Ok(Provenance::BeyondHistory { age_days: 91, .. })));
        let young = SystemTime::now() - Duration::from_secs(3 * 86_400);
        assert_eq!(beyond_history("arn", Some(young)).unwrap_err().name(), "InvalidInput");
        assert!(beyond_history("arn", None).is_err());
    }
}
