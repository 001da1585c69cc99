//! `offboard restore`: lift a quarantine during its grace period, or
//! recreate a deleted user's identity and permissions from its record.

use clap::Args;
use iam_offboard_core::restore::RestoreReport;

use super::{confirm, Globals};
use crate::grace;
use crate::records::RecordArgs;
use crate::render::print_restore;
use crate::Failure;

#[derive(Args)]
#[command(group(clap::ArgGroup::new("restore_source").required(true).args(["record", "user_name"])))]
pub struct RestoreArgs {
    /// The record: a file, or s3://bucket/key.
    #[arg(long)]
    record: Option<String>,
    /// The quarantined user: its quarantine.json is found in the records.
    #[arg(long, requires = "RecordArgs")]
    user_name: Option<String>,
    #[command(flatten)]
    records: RecordArgs,
    /// Only say what would be restored.
    #[arg(long)]
    dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
}

pub async fn run(args: &RestoreArgs, globals: &Globals) -> Result<(), Failure> {
    let RestoreArgs { record, user_name, records, dry_run, yes } = args;
    let config = &globals.config;
    let found = match (record, user_name) {
        (Some(location), _) => grace::FoundRecord::at(config, location, globals.path_style).await?,
        (None, Some(user_name)) => {
            let store = globals
                .record_store(records)
                .ok_or_else(|| Failure::Local("give --record-dir or --record-bucket".into()))?;
            grace::find_quarantine(config, store, user_name).await?
        }
        (None, None) => return Err(Failure::Local("give --record or --user-name".into())),
    };
    if found.record.quarantine.is_some() && found.record.user_deletion.is_none() {
        if !yes && !dry_run {
            confirm(
                &found.record.user.user_name,
                "lifts the quarantine of IAM user {}: stops its pending deletion and reactivates its credentials",
            )?;
        }
        let report = grace::lift(config, &found, *dry_run).await?;
        print_restore(&report, globals.output)?;
        return incomplete_if_any(&report);
    }
    let record = found.record;
    if !yes && !dry_run {
        confirm(&record.user.user_name, "recreates IAM user {} with the permissions its record lists")?;
    }
    let iam = iam_offboard_core::clients::iam_client(config);
    let report = iam_offboard_core::restore::restore_from_record(&iam, &record, *dry_run).await?;
    print_restore(&report, globals.output)?;
    incomplete_if_any(&report)
}

/// Exit status 1 when part of a restore could not be done.
fn incomplete_if_any(report: &RestoreReport) -> Result<(), Failure> {
    match report.could_not_restore.is_empty() {
        true => Ok(()),
        false => Err(Failure::Incomplete(format!(
            "{} could not be restored: {}",
            report.user_name,
            report.could_not_restore.join("; ")
        ))),
    }
}
