//! `offboard restore`: lift a quarantine during its grace period, or
//! recreate a deleted user's identity and permissions from its record. The
//! record is checked against its source first, in the account it is about,
//! and everything it would grant is printed before confirming.

use clap::Args;
use iam_offboard_core::restore::{grants, lift_changes, RestoreReport};

use super::{confirm, Globals};
use crate::grace::{self, Acting, FoundRecord};
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
    /// The deployment's offboarding state machine: a record it wrote is
    /// checked against the execution that wrote it.
    #[arg(long, env = "OFFBOARD_STATE_MACHINE_ARN")]
    state_machine_arn: Option<String>,
    /// The account the record is about, when it is not the caller's (an
    /// org-wide offboarding's member account): the role --role-name is
    /// assumed there for IAM; records and executions stay the caller's.
    #[arg(long)]
    account: Option<String>,
    /// The role assumed in --account.
    #[arg(long, default_value = "OrganizationAccountAccessRole", requires = "account")]
    role_name: String,
    /// Only say what would be restored.
    #[arg(long)]
    dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
}

pub async fn run(args: &RestoreArgs, globals: &Globals) -> Result<(), Failure> {
    let RestoreArgs { record, user_name, records, state_machine_arn, account, role_name, dry_run, yes } = args;
    let config = &globals.config;
    let acting = Acting::in_account(config, account.as_deref(), role_name).await?;
    let found = match (record, user_name) {
        (Some(location), _) => FoundRecord::at(config, location, globals.path_style).await?,
        (None, Some(user_name)) => {
            let store = globals
                .record_store(records)
                .ok_or_else(|| Failure::Local("give --record-dir or --record-bucket".into()))?;
            grace::find_quarantine(&acting, store, user_name).await?
        }
        (None, None) => return Err(Failure::Local("give --record or --user-name".into())),
    };
    let provenance = found.verify(config, state_machine_arn.as_deref(), &acting).await?;
    eprintln!("  record: {}", provenance.describe());
    let name = found.record.user.user_name.clone();
    if found.record.quarantine.is_some() && found.record.user_deletion.is_none() {
        print_changes("lifting the quarantine", &lift_changes(&found.record));
        if !yes && !dry_run {
            confirm(
                &name,
                "lifts the quarantine of IAM user {}: stops its pending deletion and reactivates its credentials",
            )?;
        }
        let report = grace::lift(config, &acting, &found, *dry_run).await?;
        print_restore(&report, globals.output)?;
        return incomplete_if_any(&report);
    }
    print_changes(&format!("recreating user {name}"), &grants(&found.record));
    if !yes && !dry_run {
        confirm(&name, "recreates IAM user {} with the permissions its record lists")?;
    }
    let report = iam_offboard_core::restore::restore_from_record(&acting.iam, &found.record, *dry_run).await?;
    print_restore(&report, globals.output)?;
    incomplete_if_any(&report)
}

/// Everything the restore changes or grants, on stderr, before confirming.
fn print_changes(what: &str, changes: &[String]) {
    eprintln!("  {what} grants or changes:");
    for change in changes {
        eprintln!("    - {change}");
    }
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
