//! What `offboard restore` acts on: a record, found and checked against its
//! source before anything is changed (see [`iam_offboard_core::provenance`]),
//! in the account it is about. During a grace period it stops the execution
//! waiting to delete the user, undoes the quarantine and files `restore.json`
//! next to the quarantine's record.

use std::path::PathBuf;
use std::time::SystemTime;

use aws_config::SdkConfig;
use aws_sdk_sfn::types::ExecutionStatus;
use iam_offboard_core::input::{format_timestamp, parse_timestamp};
use iam_offboard_core::provenance::{self, Provenance, RecordKey, Source};
use iam_offboard_core::quarantine::quarantined_until;
use iam_offboard_core::record::AuditRecord;
use iam_offboard_core::restore::{lift_quarantine, RestoreReport};
use iam_offboard_core::sessions::{partition_of, AccountSessions};
use iam_offboard_core::target::{get_caller_identity, get_user};
use iam_offboard_core::workflow::state_machine_of;
use iam_offboard_core::OffboardError;
use serde_json::{json, Value};

use crate::records::RecordStore;
use crate::Failure;

/// Where a record was read from, so that what follows it is filed beside it.
pub enum Location {
    Store { store: RecordStore, key: String },
    File(PathBuf),
}

pub struct FoundRecord {
    pub record: AuditRecord,
    pub location: Location,
    /// The record as read, for the check against its source.
    document: Value,
    /// When S3 says the object was written (a bucket only).
    written: Option<SystemTime>,
}

/// The account a restore works in and its IAM client: the caller's own, or
/// a member account's through the role the caller assumes there (as
/// `delete --accounts` does).
pub struct Acting {
    pub iam: aws_sdk_iam::Client,
    pub account: String,
}

impl Acting {
    pub async fn in_account(config: &SdkConfig, account: Option<&str>, role_name: &str) -> Result<Self, Failure> {
        let sts = aws_sdk_sts::Client::new(config);
        let caller = get_caller_identity(&sts).await?;
        match account {
            Some(account) if account != caller.account => {
                let sessions = AccountSessions::new(config.clone(), role_name.to_string(), None);
                let execution = format!("cli-restore-{}", crate::commands::unix_millis());
                let session = sessions.iam_for(&sts, partition_of(&caller.arn), account, &execution).await?;
                Ok(Self { iam: session.iam, account: account.to_string() })
            }
            _ => Ok(Self { iam: iam_offboard_core::clients::iam_client(config), account: caller.account }),
        }
    }
}

fn parse_record(document: Value, location: &str) -> Result<AuditRecord, Failure> {
    serde_json::from_value(document)
        .map_err(|e| Failure::Local(format!("{location} is not an audit record of iam-offboard: {e}")))
}

impl FoundRecord {
    /// Reads a record from a file or from `s3://bucket/key`.
    pub async fn at(config: &SdkConfig, location: &str, path_style: bool) -> Result<Self, Failure> {
        match location.strip_prefix("s3://").and_then(|rest| rest.split_once('/')) {
            Some((bucket, key)) => {
                let store = RecordStore::bucket(bucket, config, path_style);
                let (document, written) = store.get_dated(key).await.map_err(Failure::Local)?;
                let record = parse_record(document.clone(), location)?;
                Ok(Self { record, location: Location::Store { store, key: key.to_string() }, document, written })
            }
            None => {
                let text = std::fs::read_to_string(location).map_err(|e| Failure::Local(format!("{location}: {e}")))?;
                let document: Value =
                    serde_json::from_str(&text).map_err(|e| Failure::Local(format!("{location} is not JSON: {e}")))?;
                Ok(Self {
                    record: parse_record(document.clone(), location)?,
                    location: Location::File(PathBuf::from(location)),
                    document,
                    written: None,
                })
            }
        }
    }

    /// The record's place in the records layout.
    fn key(&self) -> Result<RecordKey, Failure> {
        let path = match &self.location {
            Location::Store { key, .. } => key.clone(),
            Location::File(path) => path.to_string_lossy().replace(std::path::MAIN_SEPARATOR, "/"),
        };
        RecordKey::parse(&path).ok_or_else(|| {
            Failure::Offboard(OffboardError::InvalidInput(format!(
                "{path} is not in the layout the state machine and the CLI write (records/<account>/<user>/<execution>/<file>.json): restore trusts no other record. Nothing was changed."
            )))
        })
    }

    /// Checks the record against its source and the account the restore
    /// works in; refuses (changing nothing) what does not match.
    /// `state_machine_arn`: the deployment's offboarding state machine, whose
    /// execution must have written a record that is not the CLI's.
    pub async fn verify(
        &self,
        config: &SdkConfig,
        state_machine_arn: Option<&str>,
        acting: &Acting,
    ) -> Result<Provenance, Failure> {
        let key = self.key()?;
        provenance::check_account(Some(&key), &self.record.user.arn, &acting.account)?;
        let bucket = match &self.location {
            Location::Store { store, .. } => store.bucket_name(),
            Location::File(_) => None,
        };
        let provenance = if key.written_by_the_cli() {
            Provenance::WrittenByTheCli
        } else {
            let machine = state_machine_arn.ok_or_else(|| {
                Failure::Local(
                    "this record was written by a state machine: give --state-machine-arn (the deployment's offboarding state machine) so that it can be checked against its execution".into(),
                )
            })?;
            let sfn = aws_sdk_sfn::Client::new(config);
            let source = Source { bucket, key: &key, last_modified: self.written };
            provenance::verify_record(&sfn, machine, source, &self.document).await?
        };
        // The execution a quarantine record names (the one restore stops) is
        // the one that wrote it, of this deployment; the CLI's names none.
        if let Some(named) = self.record.quarantine.as_ref().and_then(|q| q.execution_arn.as_deref()) {
            let ours = state_machine_arn.is_some_and(|machine| state_machine_of(named).as_deref() == Some(machine));
            let wrote_it = match &provenance {
                Provenance::Verified { execution_arn } | Provenance::BeyondHistory { execution_arn, .. } => {
                    execution_arn == named
                }
                Provenance::WrittenByTheCli => false,
            };
            if !ours || !wrote_it {
                return Err(Failure::Offboard(OffboardError::InvalidInput(format!(
                    "the quarantine record names execution {named}, which is not the deployment's execution that wrote it. Nothing was changed."
                ))));
            }
        }
        Ok(provenance)
    }

    /// Files `document` as `file` in the record's folder; returns where.
    async fn file_beside(&self, file: &str, document: &Value) -> Result<String, String> {
        match &self.location {
            Location::Store { store, key } => {
                let folder = key.rsplit_once('/').map(|(folder, _)| folder).unwrap_or("");
                store.put(&format!("{folder}/{file}"), document).await
            }
            Location::File(path) => {
                let target = path.with_file_name(file);
                let body = serde_json::to_vec_pretty(document).map_err(|e| e.to_string())?;
                std::fs::write(&target, body).map_err(|e| format!("{}: {e}", target.display()))?;
                Ok(target.display().to_string())
            }
        }
    }
}

/// The quarantine.json of the user's current quarantine: under
/// `records/<account>/<user>/`, the one whose deletion time is the user's
/// tag. A user without the tag is not quarantined: nothing to restore. Two
/// matching records are refused rather than one picked.
pub async fn find_quarantine(acting: &Acting, store: RecordStore, user_name: &str) -> Result<FoundRecord, Failure> {
    let account = &acting.account;
    let user = get_user(&acting.iam, user_name).await?.ok_or_else(|| {
        OffboardError::UserNotFound(format!(
            "user {user_name} does not exist: there is no quarantine to undo. A deleted user is restored with --record <its record.json>."
        ))
    })?;
    let Some(tagged) = quarantined_until(&user).map(str::to_string) else {
        return Err(Failure::Offboard(OffboardError::InvalidInput(format!(
            "user {user_name} is not quarantined (no {} tag): already restored, or never quarantined. Nothing was changed.",
            iam_offboard_core::quarantine::QUARANTINE_TAG_KEY
        ))));
    };
    let keys = store.user_keys(account, user_name).await.map_err(Failure::Local)?;
    let mut found: Vec<(String, Value, Option<SystemTime>, AuditRecord)> = Vec::new();
    for key in keys.into_iter().filter(|key| key.ends_with("/quarantine.json")) {
        let (document, written) = store.get_dated(&key).await.map_err(Failure::Local)?;
        let record = parse_record(document.clone(), &key)?;
        let Some(until) = record.quarantine.as_ref().map(|q| q.quarantined_until.clone()) else { continue };
        if record.user.user_id == user.user_id && until == tagged {
            found.push((key, document, written, record));
        }
    }
    if found.len() > 1 {
        let keys: Vec<&str> = found.iter().map(|(key, ..)| key.as_str()).collect();
        return Err(Failure::Offboard(OffboardError::InvalidInput(format!(
            "{} quarantine records of {user_name} ({}) match the quarantine until {tagged}: {}. Restore picks none of them; restore one with --record after checking it. Nothing was changed.",
            found.len(),
            user.user_id,
            keys.join(", ")
        ))));
    }
    let Some((key, document, written, record)) = found.pop() else {
        return Err(Failure::Offboard(OffboardError::InvalidInput(format!(
            "no quarantine record of {user_name} ({}) for the quarantine until {tagged} under records/{account}/{user_name}/; nothing was changed",
            user.user_id
        ))));
    };
    eprintln!("  quarantine record {key}");
    Ok(FoundRecord { record, location: Location::Store { store, key }, document, written })
}

/// Stops the execution waiting to delete the user (if it still runs), then
/// undoes the quarantine and files `restore.json`.
pub async fn lift(
    config: &SdkConfig,
    acting: &Acting,
    found: &FoundRecord,
    dry_run: bool,
) -> Result<RestoreReport, Failure> {
    let quarantine = found.record.quarantine.as_ref().expect("a quarantine record");
    let mut stopped = None;
    if let Some(execution_arn) = &quarantine.execution_arn {
        stopped = stop_waiting_execution(config, execution_arn, &quarantine.quarantined_until, dry_run).await?;
    }
    let mut report = lift_quarantine(&acting.iam, &found.record, dry_run).await?;
    if let Some(execution_arn) = &stopped {
        let verb = if dry_run { "stop" } else { "stopped" };
        report.restored.insert(0, format!("{verb} execution {execution_arn}"));
    }
    if !dry_run {
        let now = format_timestamp(aws_sdk_iam::primitives::DateTime::from(SystemTime::now()));
        let document =
            json!({"Restore": report, "RestoredAt": now, "StoppedExecution": stopped, "Quarantine": quarantine});
        let location = found.file_beside("restore.json", &document).await.map_err(|why| {
            Failure::Offboard(OffboardError::RecordNotWritten(format!(
                "the quarantine was undone, but restore.json could not be stored: {why}"
            )))
        })?;
        eprintln!("  restore.json written to {location}");
    }
    Ok(report)
}

/// `Some(arn)` when the execution was running and is now stopped (or, in a
/// dry run, would be). Past the deletion time the execution may already be
/// deleting: that is refused rather than stopped half-way.
async fn stop_waiting_execution(
    config: &SdkConfig,
    execution_arn: &str,
    until: &str,
    dry_run: bool,
) -> Result<Option<String>, Failure> {
    let sfn = aws_sdk_sfn::Client::new(config);
    let sfn_error = |action: &str, e: &dyn std::fmt::Display| {
        Failure::Local(format!("states:{action} {execution_arn} failed: {e}"))
    };
    let execution = sfn
        .describe_execution()
        .execution_arn(execution_arn)
        .send()
        .await
        .map_err(|e| sfn_error("DescribeExecution", &aws_sdk_sfn::error::DisplayErrorContext(&e)))?;
    if execution.status() != &ExecutionStatus::Running {
        eprintln!("  execution {execution_arn} is {}: nothing to stop", execution.status().as_str());
        return Ok(None);
    }
    let due = parse_timestamp(until, "QuarantinedUntil")?;
    if SystemTime::now() >= SystemTime::try_from(due).unwrap_or(std::time::UNIX_EPOCH) {
        return Err(Failure::Offboard(OffboardError::InvalidInput(format!(
            "the grace period ended at {until} and execution {execution_arn} is still running: it may be deleting the user. Nothing was changed; let it finish, then restore from its record.json."
        ))));
    }
    if !dry_run {
        sfn.stop_execution()
            .execution_arn(execution_arn)
            .error("Restored")
            .cause("offboard restore lifted the quarantine during its grace period")
            .send()
            .await
            .map_err(|e| sfn_error("StopExecution", &aws_sdk_sfn::error::DisplayErrorContext(&e)))?;
        eprintln!("  execution {execution_arn} stopped");
    }
    Ok(Some(execution_arn.to_string()))
}
