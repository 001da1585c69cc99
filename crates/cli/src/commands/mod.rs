//! One module per subcommand, each with its options and what it runs; the
//! options and steps several subcommands share are here.

use std::io::{IsTerminal, Write};

use aws_config::SdkConfig;
use clap::{Args, Subcommand};
use iam_offboard_core::accounts::{self, AccountScope};
use iam_offboard_core::OffboardError;
use serde_json::{json, Value};

use crate::records::{RecordArgs, RecordStore};
use crate::render::Output;
use crate::Failure;

mod delete;
mod plan;
mod records;
mod restore;
mod start;

#[derive(Subcommand)]
pub enum Command {
    /// Show everything that would be removed; change nothing.
    Plan(plan::PlanArgs),
    /// Offboard the user in-process, stage by stage, and print the audit
    /// record. With --grace-days: quarantine now (a later delete finishes).
    Delete(delete::DeleteArgs),
    /// Undo a quarantine (--user-name, or --record quarantine.json): stop the
    /// waiting execution, reactivate what it deactivated, detach AWSDenyAll,
    /// remove the tag. Or recreate a deleted user's identity and permissions
    /// from its record.json (never its credentials or MFA devices).
    Restore(restore::RestoreArgs),
    /// List and print the stored plans and records of a user.
    Records(records::RecordsArgs),
    /// Start an execution of the deployed state machine, named after the
    /// user; or, with --users-file, of the batch state machine.
    Start(start::StartArgs),
}

/// What every subcommand works with: the options given before it.
pub struct Globals {
    pub config: SdkConfig,
    pub output: Output,
    /// See [`crate::aws::AwsArgs::path_style`].
    pub path_style: bool,
}

impl Globals {
    /// `None` when neither --record-dir nor --record-bucket was given.
    pub fn record_store(&self, args: &RecordArgs) -> Option<RecordStore> {
        RecordStore::from_args(args, &self.config, self.path_style)
    }
}

pub async fn run(command: &Command, globals: &Globals) -> Result<(), Failure> {
    match command {
        Command::Plan(args) => plan::run(args, globals).await,
        Command::Delete(args) => delete::run(args, globals).await,
        Command::Restore(args) => restore::run(args, globals).await,
        Command::Records(args) => records::run(args, globals).await,
        Command::Start(args) => start::run(args, globals).await,
    }
}

#[derive(Args, Clone)]
#[group(required = true, multiple = false)]
pub struct Target {
    /// The IAM user name.
    #[arg(long)]
    pub user_name: Option<String>,
    /// The IAM user id (AIDA...).
    #[arg(long)]
    pub user_id: Option<String>,
}

impl Target {
    /// The name or id the operator gave (clap guarantees exactly one).
    pub fn identifier(&self) -> &str {
        self.user_name.as_deref().or(self.user_id.as_deref()).unwrap_or_default()
    }
}

#[derive(Args, Clone)]
pub struct Common {
    #[command(flatten)]
    pub target: Target,
    /// Free-form JSON object carried into the audit record (ticket, requester).
    #[arg(long)]
    pub context: Option<String>,
}

/// Offboard in several accounts of the organization: in each, the role
/// --role-name is assumed (the caller's own account needs none) and the same
/// offboarding runs there; an account without the user is NotPresent.
#[derive(Args, Clone, Default)]
pub struct AccountArgs {
    /// Account ids, comma-separated.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["organization", "organizational_units"])]
    accounts: Vec<String>,
    /// Every ACTIVE account of the organization (run from its management or
    /// a delegated administrator account).
    #[arg(long, conflicts_with = "organizational_units")]
    organization: bool,
    /// Every ACTIVE account in these organizational units and those below them.
    #[arg(long, value_delimiter = ',')]
    organizational_units: Vec<String>,
    /// The role assumed in each account other than the caller's.
    #[arg(long, default_value = "OrganizationAccountAccessRole")]
    pub role_name: String,
}

impl AccountArgs {
    /// Whether any account option was given (else: the caller's account only).
    pub fn given(&self) -> bool {
        self.organization || !self.accounts.is_empty() || !self.organizational_units.is_empty()
    }

    /// The account scope, validated as an execution input's is.
    pub fn scope(&self) -> Result<Option<AccountScope>, OffboardError> {
        let mut fields = serde_json::Map::new();
        if self.organization {
            fields.insert("Accounts".into(), json!(accounts::WHOLE_ORGANIZATION));
        } else if !self.accounts.is_empty() {
            fields.insert("Accounts".into(), json!(self.accounts));
        } else if !self.organizational_units.is_empty() {
            fields.insert("OrganizationalUnits".into(), json!(self.organizational_units));
        }
        accounts::parse_account_scope(&fields)
    }
}

/// Quarantine first: deactivate every credential and attach AWSDenyAll now,
/// delete after this many days (1-364: the deletion must end within Step
/// Functions' one-year execution limit).
#[derive(Args, Clone, Default)]
pub struct Grace {
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=364))]
    pub grace_days: Option<u16>,
}

/// The execution input the options describe, as the state machine takes it.
pub fn execution_input(common: &Common, dry_run: bool, grace: &Grace) -> Result<Value, Failure> {
    let mut input = match (&common.target.user_name, &common.target.user_id) {
        (Some(name), _) => json!({"UserName": name}),
        (None, Some(id)) => json!({"IAMUserId": id}),
        (None, None) => return Err(Failure::Local("give --user-name or --user-id".into())),
    };
    if dry_run {
        input["DryRun"] = json!(true);
    }
    if let Some(days) = grace.grace_days {
        input["GraceDays"] = json!(days);
    }
    if let Some(context) = &common.context {
        input["Context"] =
            serde_json::from_str(context).map_err(|e| Failure::Local(format!("--context is not JSON: {e}")))?;
    }
    Ok(input)
}

/// Milliseconds since the epoch: names executions the CLI starts or files.
pub fn unix_millis() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
}

/// Asks the operator to type the user's name or id; `what` says what the
/// command does, with `{}` for the user.
pub fn confirm(expected: &str, what: &str) -> Result<(), Failure> {
    let what = what.replace("{}", expected);
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Local(format!(
            "refusing without confirmation (this {what}): standard input is not a terminal; pass --yes"
        )));
    }
    eprint!("This {what}. Type its name or id to confirm: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).map_err(|e| Failure::Local(e.to_string()))?;
    if answer.trim() == expected {
        Ok(())
    } else {
        Err(Failure::Local("not confirmed; nothing was changed".into()))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::Cli;

    #[test]
    fn grace_days_are_one_to_364_and_become_the_input() {
        for bad in ["0", "365", "-1", "1.5", "x"] {
            assert!(
                Cli::try_parse_from(["offboard", "delete", "--user-name", "a", "--grace-days", bad]).is_err(),
                "{bad}"
            );
        }
        let cli = Cli::try_parse_from([
            "offboard",
            "start",
            "--user-name",
            "a",
            "--state-machine-arn",
            "arn",
            "--grace-days",
            "364",
        ])
        .unwrap();
        let Command::Start(start) = &cli.command else { panic!("start") };
        let common = Common { target: Target { user_name: start.who.user_name.clone(), user_id: None }, context: None };
        assert_eq!(
            execution_input(&common, false, &start.grace).ok().unwrap(),
            json!({"UserName": "a", "GraceDays": 364})
        );
        let cli = Cli::try_parse_from(["offboard", "delete", "--user-name", "a"]).unwrap();
        let Command::Delete(delete) = &cli.command else { panic!("delete") };
        assert_eq!(execution_input(&delete.common, false, &delete.grace).ok().unwrap(), json!({"UserName": "a"}));
    }
}
