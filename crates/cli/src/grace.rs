//! Restore during a grace period: find the quarantine's record, stop the
//! execution waiting to delete the user, undo the quarantine, and file
//! `restore.json` next to the quarantine's record.

use std::path::PathBuf;

use aws_config::SdkConfig;
use aws_sdk_sfn::types::ExecutionStatus;
use iam_offboard_core::input::{format_timestamp, parse_timestamp};
use iam_offboard_core::quarantine::quarantined_until;
use iam_offboard_core::record::AuditRecord;
use iam_offboard_core::restore::{lift_quarantine, RestoreReport};
use iam_offboard_core::target::{get_caller_identity, get_user};
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
                let record = parse_record(store.get(key).await.map_err(Failure::Local)?, location)?;
                Ok(Self { record, location: Location::Store { store, key: key.to_string() } })
            }
            None => {
                let text = std::fs::read_to_string(location).map_err(|e| Failure::Local(format!("{location}: {e}")))?;
                let document =
                    serde_json::from_str(&text).map_err(|e| Failure::Local(format!("{location} is not JSON: {e}")))?;
                Ok(Self {
                    record: parse_record(document, location)?,
                    location: Location::File(PathBuf::from(location)),
                })
            }
        }
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
/// tag. A user without the tag is not quarantined: nothing to restore.
pub async fn find_quarantine(config: &SdkConfig, store: RecordStore, user_name: &str) -> Result<FoundRecord, Failure> {
    let iam = iam_offboard_core::clients::iam_client(config);
    let account = get_caller_identity(&aws_sdk_sts::Client::new(config)).await?.account;
    let user = get_user(&iam, user_name).await?.ok_or_else(|| {
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
    let keys = store.user_keys(&account, user_name).await.map_err(Failure::Local)?;
    let mut found: Option<(String, AuditRecord)> = None;
    for key in keys.into_iter().filter(|key| key.ends_with("/quarantine.json")) {
        let record = parse_record(store.get(&key).await.map_err(Failure::Local)?, &key)?;
        let Some(until) = record.quarantine.as_ref().map(|q| q.quarantined_until.clone()) else { continue };
        if record.user.user_id == user.user_id && until == tagged {
            found = Some((key, record));
        }
    }
    let Some((key, record)) = found else {
        return Err(Failure::Offboard(OffboardError::InvalidInput(format!(
            "no quarantine record of {user_name} ({}) for the quarantine until {tagged} under records/{account}/{user_name}/; nothing was changed",
            user.user_id
        ))));
    };
    eprintln!("  quarantine record {key}");
    Ok(FoundRecord { record, location: Location::Store { store, key } })
}

/// Stops the execution waiting to delete the user (if it still runs), then
/// undoes the quarantine and files `restore.json`.
pub async fn lift(config: &SdkConfig, found: &FoundRecord, dry_run: bool) -> Result<RestoreReport, Failure> {
    let quarantine = found.record.quarantine.as_ref().expect("a quarantine record");
    let mut stopped = None;
    if let Some(execution_arn) = &quarantine.execution_arn {
        stopped = stop_waiting_execution(config, execution_arn, &quarantine.quarantined_until, dry_run).await?;
    }
    let iam = iam_offboard_core::clients::iam_client(config);
    let mut report = lift_quarantine(&iam, &found.record, dry_run).await?;
    if let Some(execution_arn) = &stopped {
        let verb = if dry_run { "stop" } else { "stopped" };
        report.restored.insert(0, format!("{verb} execution {execution_arn}"));
    }
    if !dry_run {
        let now = format_timestamp(aws_sdk_iam::primitives::DateTime::from(std::time::SystemTime::now()));
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
    if std::time::SystemTime::now() >= std::time::SystemTime::try_from(due).unwrap_or(std::time::UNIX_EPOCH) {
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
