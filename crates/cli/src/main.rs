//! `offboard`: plan or run an offboarding in-process, or start it on the
//! deployed state machine. Every rule lives in iam-offboard-core.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sts::config::{Credentials, SharedCredentialsProvider};
use clap::{Args, Parser, Subcommand, ValueEnum};
use iam_offboard_core::accounts::{self, AccountScope};
use iam_offboard_core::errors::classify_sdk_error;
use iam_offboard_core::fanout::AccountOutcome;
use iam_offboard_core::input::{self, UserRef};
use iam_offboard_core::pipeline::Progress;
use iam_offboard_core::record::AuditRecord;
use iam_offboard_core::sessions::{AccountSessions, Placement};
use iam_offboard_core::stages::StageContext;
use iam_offboard_core::target::ProtectionPolicy;
use iam_offboard_core::{pipeline, OffboardError};
use serde_json::{json, Value};

mod grace;
mod records;
use records::{user_prefix, RecordArgs, RecordStore};

#[derive(Parser)]
#[command(name = "offboard", version, about = "Delete an AWS IAM user completely, whatever MFA devices it has")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// AWS region (else the standard AWS configuration decides).
    #[arg(long, global = true)]
    region: Option<String>,
    /// Named profile from the shared AWS config files.
    #[arg(long, global = true)]
    profile: Option<String>,
    /// Send every AWS call to this endpoint (a local emulator, a VPC endpoint).
    #[arg(long, global = true)]
    endpoint_url: Option<String>,
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// MFA device serial or ARN: get an MFA-authenticated STS session first,
    /// for policies that require aws:MultiFactorAuthPresent.
    #[arg(long, global = true, requires = "mfa_token_code")]
    mfa_serial: Option<String>,
    /// The current code of that MFA device.
    #[arg(long, global = true, requires = "mfa_serial")]
    mfa_token_code: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Args, Clone)]
#[group(required = true, multiple = false)]
struct Target {
    /// The IAM user name.
    #[arg(long)]
    user_name: Option<String>,
    /// The IAM user id (AIDA...).
    #[arg(long)]
    user_id: Option<String>,
}

impl Target {
    /// The name or id the operator gave (clap guarantees exactly one).
    fn identifier(&self) -> &str {
        self.user_name.as_deref().or(self.user_id.as_deref()).unwrap_or_default()
    }
}

/// What `start` offboards: one user, or a batch from a file.
#[derive(Args, Clone)]
#[group(required = true, multiple = false)]
struct StartTarget {
    /// The IAM user name.
    #[arg(long)]
    user_name: Option<String>,
    /// The IAM user id (AIDA...).
    #[arg(long)]
    user_id: Option<String>,
    /// A batch on the batch state machine: a CSV file with a UserName column,
    /// or a JSON array of names (validated here, passed inline).
    #[arg(long)]
    users_file: Option<std::path::PathBuf>,
}

#[derive(Args, Clone)]
struct Common {
    #[command(flatten)]
    target: Target,
    /// Free-form JSON object carried into the audit record (ticket, requester).
    #[arg(long)]
    context: Option<String>,
}

/// Offboard in several accounts of the organization: in each, the role
/// --role-name is assumed (the caller's own account needs none) and the same
/// offboarding runs there; an account without the user is NotPresent.
#[derive(Args, Clone, Default)]
struct AccountArgs {
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
    role_name: String,
}

impl AccountArgs {
    /// Whether any account option was given (else: the caller's account only).
    fn given(&self) -> bool {
        self.organization || !self.accounts.is_empty() || !self.organizational_units.is_empty()
    }

    /// The account scope, validated as an execution input's is.
    fn scope(&self) -> Result<Option<AccountScope>, Failure> {
        let mut fields = serde_json::Map::new();
        if self.organization {
            fields.insert("Accounts".into(), json!(accounts::WHOLE_ORGANIZATION));
        } else if !self.accounts.is_empty() {
            fields.insert("Accounts".into(), json!(self.accounts));
        } else if !self.organizational_units.is_empty() {
            fields.insert("OrganizationalUnits".into(), json!(self.organizational_units));
        }
        Ok(accounts::parse_account_scope(&fields)?)
    }
}

/// Quarantine first: deactivate every credential and attach AWSDenyAll now,
/// delete after this many days (1-364: the deletion must end within Step
/// Functions' one-year execution limit).
#[derive(Args, Clone, Default)]
struct Grace {
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=364))]
    grace_days: Option<u16>,
}

#[derive(Subcommand)]
enum Command {
    /// Show everything that would be removed; change nothing.
    Plan {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        records: RecordArgs,
        #[command(flatten)]
        scope: AccountArgs,
    },
    /// Offboard the user in-process, stage by stage, and print the audit
    /// record. With --grace-days: quarantine now (a later delete finishes).
    Delete {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        grace: Grace,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        records: RecordArgs,
        #[command(flatten)]
        scope: AccountArgs,
    },
    /// Undo a quarantine (--user-name, or --record quarantine.json): stop the
    /// waiting execution, reactivate what it deactivated, detach AWSDenyAll,
    /// remove the tag. Or recreate a deleted user's identity and permissions
    /// from its record.json (never its credentials or MFA devices).
    #[command(group(clap::ArgGroup::new("restore_source").required(true).args(["record", "user_name"])))]
    Restore {
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
    },
    /// List and print the stored plans and records of a user.
    Records {
        /// The IAM user name (matched without regard to case, as IAM does).
        #[arg(long)]
        user_name: String,
        /// The account the records are filed under (default: the caller's).
        #[arg(long)]
        account: Option<String>,
        #[command(flatten)]
        records: RecordArgs,
    },
    /// Start an execution of the deployed state machine, named after the
    /// user; or, with --users-file, of the batch state machine.
    Start {
        #[command(flatten)]
        who: StartTarget,
        /// Free-form JSON object carried into the audit record(s).
        #[arg(long)]
        context: Option<String>,
        #[arg(long)]
        state_machine_arn: String,
        /// Child executions at once (a batch only; default 10).
        #[arg(long, requires = "users_file", value_parser = clap::value_parser!(u32).range(1..=10_000))]
        max_concurrency: Option<u32>,
        #[command(flatten)]
        grace: Grace,
        /// Only gather and report.
        #[arg(long)]
        dry_run: bool,
        /// Execution name (default: the user name or id; names are unique,
        /// so a second offboarding of the same user is refused).
        #[arg(long)]
        execution_name: Option<String>,
        /// Follow the execution until it ends and print its output.
        #[arg(long)]
        wait: bool,
    },
}

/// What ends a run: a stage's typed error, work left incomplete, or a local
/// problem (usage, output).
pub(crate) enum Failure {
    Offboard(OffboardError),
    Incomplete(String),
    Local(String),
}

impl From<OffboardError> for Failure {
    fn from(error: OffboardError) -> Self {
        Self::Offboard(error)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Offboard(error)) => {
            eprintln!("error: {}: {error}", error.name());
            ExitCode::from(1)
        }
        Err(Failure::Incomplete(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
        Err(Failure::Local(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let config = aws_config_for(&cli).await?;
    match &cli.command {
        Command::Plan { common, records, scope } if scope.given() => {
            let input = execution_input(common, true, &Grace::default())?;
            in_accounts(&config, &cli, input, scope, records, false).await
        }
        Command::Delete { common, grace, yes, records, scope } if scope.given() => {
            let input = execution_input(common, false, grace)?;
            if !yes {
                confirm(
                    common.target.identifier(),
                    "deletes IAM user {} and everything it holds in every account named",
                )?;
            }
            in_accounts(&config, &cli, input, scope, records, true).await
        }
        Command::Plan { common, records, .. } => {
            let ctx = StageContext::new(&config, protection_policy()?);
            let mut reporter =
                Reporter::new(&ctx, RecordStore::from_args(records, &config, cli.endpoint_url.is_some())).await?;
            let record = pipeline::plan(&ctx, execution_input(common, true, &Grace::default())?, &mut reporter).await?;
            print_record(&record, cli.output)
        }
        Command::Delete { common, grace, yes, records, .. } => {
            let input = execution_input(common, false, grace)?;
            if !yes {
                let what = match grace.grace_days {
                    Some(days) => format!("quarantines IAM user {{}} now (every credential off, AWSDenyAll attached) for deletion in {days} day(s)"),
                    None => "deletes IAM user {} and everything it holds".to_string(),
                };
                confirm(common.target.identifier(), &what)?;
            }
            let ctx = StageContext::new(&config, protection_policy()?);
            let mut reporter =
                Reporter::new(&ctx, RecordStore::from_args(records, &config, cli.endpoint_url.is_some())).await?;
            match pipeline::offboard(&ctx, input, &mut reporter).await {
                Ok(record) => {
                    let file = if record.quarantine.is_some() { "quarantine.json" } else { "record.json" };
                    reporter.store(Some(&record.user.user_name), file, &record).await?;
                    print_record(&record, cli.output)
                }
                Err(failed) => {
                    let user = failed.record.user.as_ref().map(|user| user.user_name.as_str());
                    if let Err(not_written) = reporter.store(user, "record.json", &failed.record).await {
                        eprintln!("error: {}: {not_written}", not_written.name());
                    }
                    Err(Failure::Offboard(failed.error))
                }
            }
        }
        Command::Restore { record, user_name, records, dry_run, yes } => {
            let path_style = cli.endpoint_url.is_some();
            let found = match (record, user_name) {
                (Some(location), _) => grace::FoundRecord::at(&config, location, path_style).await?,
                (None, Some(user_name)) => {
                    let store = RecordStore::from_args(records, &config, path_style)
                        .ok_or_else(|| Failure::Local("give --record-dir or --record-bucket".into()))?;
                    grace::find_quarantine(&config, store, user_name).await?
                }
                (None, None) => return Err(Failure::Local("give --record or --user-name".into())),
            };
            if found.record.quarantine.is_some() && found.record.user_deletion.is_none() {
                if !yes && !dry_run {
                    confirm(&found.record.user.user_name, "lifts the quarantine of IAM user {}: stops its pending deletion and reactivates its credentials")?;
                }
                let report = grace::lift(&config, &found, *dry_run).await?;
                print_restore(&report, cli.output)?;
                return incomplete_if_any(&report);
            }
            let record = found.record;
            if !yes && !dry_run {
                confirm(&record.user.user_name, "recreates IAM user {} with the permissions its record lists")?;
            }
            let iam = iam_offboard_core::clients::iam_client(&config);
            let report = iam_offboard_core::restore::restore_from_record(&iam, &record, *dry_run).await?;
            print_restore(&report, cli.output)?;
            incomplete_if_any(&report)
        }
        Command::Records { user_name, account, records } => {
            let Some(store) = RecordStore::from_args(records, &config, cli.endpoint_url.is_some()) else {
                return Err(Failure::Local("give --record-dir or --record-bucket".into()));
            };
            let account = match account {
                Some(account) => account.clone(),
                None => {
                    iam_offboard_core::target::get_caller_identity(&aws_sdk_sts::Client::new(&config)).await?.account
                }
            };
            list_records(&store, &account, user_name, cli.output).await
        }
        Command::Start { who, context, state_machine_arn, max_concurrency, grace, dry_run, execution_name, wait } => {
            if let Some(path) = &who.users_file {
                if grace.grace_days.is_some() {
                    return Err(Failure::Local("--grace-days goes with one user, not with --users-file".into()));
                }
                let input = batch_input(path, context.as_deref(), *dry_run, *max_concurrency).await?;
                let name = execution_name.clone().unwrap_or_else(|| format!("batch-{}", unix_millis()));
                return start_execution(&config, state_machine_arn, &name, input, *wait, cli.output).await;
            }
            let common = Common {
                target: Target { user_name: who.user_name.clone(), user_id: who.user_id.clone() },
                context: context.clone(),
            };
            let input = execution_input(&common, *dry_run, grace)?;
            let name = execution_name.clone().unwrap_or_else(|| execution_name_for(&common.target));
            start_execution(&config, state_machine_arn, &name, input, *wait, cli.output).await
        }
    }
}

/// `plan`/`delete` in each account of `scope`, one after another, with
/// progress per account; exit status 1 if any account failed.
async fn in_accounts(
    config: &SdkConfig,
    cli: &Cli,
    input: Value,
    scope: &AccountArgs,
    records: &RecordArgs,
    delete: bool,
) -> Result<(), Failure> {
    input::parse_execution_input(&input)?;
    let Some(account_scope) = scope.scope()? else {
        return Err(Failure::Local("give --accounts, --organization or --organizational-units".into()));
    };
    let mut home = StageContext::new(config, protection_policy()?);
    home.organizations = Some(aws_sdk_organizations::Client::new(config));
    home.sessions = Some(Arc::new(AccountSessions::new(config.clone(), scope.role_name.clone(), None)));
    let accounts = accounts::accounts_in_scope(home.organizations.as_ref(), &account_scope).await?;
    let execution = format!("cli-{}", unix_millis());
    let mut outcomes = Vec::with_capacity(accounts.len());
    for account in accounts {
        eprintln!("account {account}:");
        let placement = Placement { account: account.clone(), execution: execution.clone() };
        let result = match home.in_account(&placement).await {
            Err(error) => Err(error),
            Ok(elsewhere) => {
                let ctx = elsewhere.as_ref().unwrap_or(&home);
                run_in_account(ctx, config, cli, input.clone(), records, delete).await
            }
        };
        let outcome = AccountOutcome::of(&account, &result);
        match &result {
            Err(error) => eprintln!("  {} {}: {error}", outcome.outcome, error.name()),
            Ok(done) => eprintln!("  {done}"),
        }
        outcomes.push(outcome);
    }
    let failed: Vec<&str> = outcomes.iter().filter(|o| o.failed()).map(|o| o.account.as_str()).collect();
    match cli.output {
        Output::Json => println!("{}", json!({"Accounts": outcomes, "FailedAccounts": failed})),
        Output::Text => {
            for outcome in &outcomes {
                println!(
                    "{}  {}{}",
                    outcome.account,
                    outcome.outcome,
                    outcome.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default()
                );
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::Incomplete(format!("the offboarding failed in account(s) {}", failed.join(", "))))
    }
}

/// One account's plan or offboarding, its records filed under that account.
async fn run_in_account(
    ctx: &StageContext,
    config: &SdkConfig,
    cli: &Cli,
    input: Value,
    records: &RecordArgs,
    delete: bool,
) -> Result<String, OffboardError> {
    let store = RecordStore::from_args(records, config, cli.endpoint_url.is_some());
    let mut reporter = Reporter::new(ctx, store).await.map_err(|failure| match failure {
        Failure::Offboard(error) => error,
        Failure::Incomplete(why) | Failure::Local(why) => OffboardError::RecordNotWritten(why),
    })?;
    if !delete {
        pipeline::plan(ctx, input, &mut reporter).await?;
        return Ok("Planned".into());
    }
    match pipeline::offboard(ctx, input, &mut reporter).await {
        Ok(record) => {
            let (file, done) = if record.quarantine.is_some() {
                ("quarantine.json", "Quarantined")
            } else {
                ("record.json", "Offboarded")
            };
            reporter.store(Some(&record.user.user_name), file, &record).await?;
            Ok(done.into())
        }
        Err(failed) => {
            let user = failed.record.user.as_ref().map(|user| user.user_name.as_str());
            if failed.record.user.is_some() {
                if let Err(not_written) = reporter.store(user, "record.json", &failed.record).await {
                    eprintln!("  error: {}: {not_written}", not_written.name());
                }
            }
            Err(failed.error)
        }
    }
}

/// Standard AWS configuration, then an MFA session if asked for.
async fn aws_config_for(cli: &Cli) -> Result<SdkConfig, Failure> {
    let mut loader =
        aws_config::defaults(BehaviorVersion::latest()).retry_config(iam_offboard_core::clients::retry_policy());
    if let Some(region) = &cli.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(profile) = &cli.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(endpoint) = &cli.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    let config = loader.load().await;
    let (Some(serial), Some(code)) = (&cli.mfa_serial, &cli.mfa_token_code) else {
        return Ok(config);
    };
    let session = aws_sdk_sts::Client::new(&config)
        .get_session_token()
        .serial_number(serial)
        .token_code(code)
        .send()
        .await
        .map_err(|e| classify_sdk_error(e, "sts:GetSessionToken", &format!("MFA device {serial}")))?;
    let credentials =
        session.credentials().ok_or_else(|| Failure::Local("sts:GetSessionToken returned no credentials".into()))?;
    let credentials = Credentials::new(
        credentials.access_key_id(),
        credentials.secret_access_key(),
        Some(credentials.session_token().to_string()),
        std::time::SystemTime::try_from(*credentials.expiration()).ok(),
        "offboard-mfa-session",
    );
    Ok(config.into_builder().credentials_provider(SharedCredentialsProvider::new(credentials)).build())
}

/// Milliseconds since the epoch: names executions the CLI starts or files.
fn unix_millis() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
}

/// The batch state machine's input from a users file, checked here by the
/// rule the batch's first state applies (core's `plan_batch`), so a bad list
/// starts nothing.
async fn batch_input(
    path: &std::path::Path,
    context: Option<&str>,
    dry_run: bool,
    max_concurrency: Option<u32>,
) -> Result<Value, Failure> {
    use iam_offboard_core::batch::{parse_user_list, plan_batch};
    let document = std::fs::read(path).map_err(|e| Failure::Local(format!("{}: {e}", path.display())))?;
    let names = parse_user_list(&document, &path.display().to_string())?;
    let mut input = json!({"UserNames": names});
    if dry_run {
        input["DryRun"] = json!(true);
    }
    if let Some(max) = max_concurrency {
        input["MaxConcurrency"] = json!(max);
    }
    if let Some(context) = context {
        input["Context"] =
            serde_json::from_str(context).map_err(|e| Failure::Local(format!("--context is not JSON: {e}")))?;
    }
    plan_batch(None, &input).await?;
    Ok(input)
}

/// Exit status 1 when part of a restore could not be done.
fn incomplete_if_any(report: &iam_offboard_core::restore::RestoreReport) -> Result<(), Failure> {
    match report.could_not_restore.is_empty() {
        true => Ok(()),
        false => Err(Failure::Incomplete(format!(
            "{} could not be restored: {}",
            report.user_name,
            report.could_not_restore.join("; ")
        ))),
    }
}

fn execution_input(common: &Common, dry_run: bool, grace: &Grace) -> Result<Value, Failure> {
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

/// A bad protection configuration is a local problem (exit 2), not an offboarding error.
fn protection_policy() -> Result<ProtectionPolicy, Failure> {
    ProtectionPolicy::from_env().map_err(|error| Failure::Local(error.to_string()))
}

fn execution_name_for(target: &Target) -> String {
    let user = match (&target.user_name, &target.user_id) {
        (Some(name), _) => UserRef::Name(name.clone()),
        (None, id) => UserRef::Id(id.clone().unwrap_or_default()),
    };
    input::execution_name_for(&user)
}

/// Asks the operator to type the user's name or id; `what` says what the
/// command does, with `{}` for the user.
fn confirm(expected: &str, what: &str) -> Result<(), Failure> {
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

/// Prints progress to stderr (so that `--output json` stays parseable) and,
/// given a store, files the plan before the first change and the record at
/// the end, as the state machine does.
struct Reporter {
    store: Option<RecordStore>,
    account: String,
    execution_name: String,
}

impl Reporter {
    async fn new(ctx: &StageContext, store: Option<RecordStore>) -> Result<Self, Failure> {
        let account = match &store {
            Some(_) => ctx.caller().await?.account.clone(),
            None => String::new(),
        };
        Ok(Self { store, account, execution_name: format!("cli-{}", unix_millis()) })
    }

    async fn store(
        &self,
        user_name: Option<&str>,
        file: &str,
        document: &impl serde::Serialize,
    ) -> Result<(), OffboardError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let key = format!("{}{}/{file}", user_prefix(&self.account, user_name), self.execution_name);
        let location = store.put(&key, document).await.map_err(|why| {
            OffboardError::RecordNotWritten(format!("the {file} of this offboarding could not be stored: {why}"))
        })?;
        eprintln!("  {file} written to {location}");
        Ok(())
    }
}

impl Progress for Reporter {
    fn stage_done(&mut self, stage: &str, detail: &str) {
        eprintln!("  ✓ {stage:<42} {detail}")
    }

    async fn plan_ready(&mut self, plan: &AuditRecord) -> Result<(), OffboardError> {
        self.store(Some(&plan.user.user_name), "plan.json", plan).await
    }
}

fn print_restore(report: &iam_offboard_core::restore::RestoreReport, output: Output) -> Result<(), Failure> {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(report).map_err(|e| Failure::Local(e.to_string()))?);
        return Ok(());
    }
    let verb = if report.dry_run { "would restore" } else { "restored" };
    println!("\n{} {}:", report.user_name, verb);
    for item in &report.restored {
        println!("  + {item}");
    }
    for item in &report.not_restored {
        println!("  - not restored (by design): {item}");
    }
    for item in &report.could_not_restore {
        println!("  ! could not restore: {item}");
    }
    Ok(())
}

/// Prints every stored plan and record of the user, newest execution last.
async fn list_records(store: &RecordStore, account: &str, user_name: &str, output: Output) -> Result<(), Failure> {
    let mine = store.user_keys(account, user_name).await.map_err(Failure::Local)?;
    let mut documents = Vec::with_capacity(mine.len());
    for key in &mine {
        let record = store.get(key).await.map_err(Failure::Local)?;
        let outcome = match (key.rsplit('/').next().unwrap_or_default(), record.get("Error")) {
            ("plan.json" | "deletion-plan.json", _) => "plan".to_string(),
            ("quarantine.json", _) => "quarantined".to_string(),
            ("restore.json", _) => "restored".to_string(),
            (_, Some(error)) => format!("failed: {}", error.as_str().unwrap_or_default()),
            (_, None) => "offboarded".to_string(),
        };
        if output == Output::Text {
            println!("{key}  {outcome}");
        }
        documents.push(json!({"Key": key, "Record": record}));
    }
    if documents.is_empty() {
        eprintln!("no records of {user_name} under records/{account}/");
    }
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&documents).map_err(|e| Failure::Local(e.to_string()))?);
    }
    Ok(())
}

fn print_record(record: &AuditRecord, output: Output) -> Result<(), Failure> {
    match output {
        Output::Json => {
            let text = serde_json::to_string_pretty(record).map_err(|e| Failure::Local(e.to_string()))?;
            println!("{text}");
        }
        Output::Text => print!("{}", render_text(record)),
    }
    Ok(())
}

fn render_text(record: &AuditRecord) -> String {
    use std::fmt::Write as _;
    let items = &record.items;
    let verb = if record.dry_run { "would remove" } else { "removed" };
    let mut out = String::new();
    let user = &record.user;
    let heading = match (record.dry_run, &record.quarantine, &record.user_deletion) {
        (true, _, _) => "Plan for",
        (false, Some(_), None) => "Quarantined",
        _ => "Offboarded",
    };
    let _ = writeln!(out, "\n{heading} {} ({}, path {})", user.user_name, user.user_id, user.path);
    let _ = writeln!(out, "  arn                  {}", user.arn);
    if let Some(boundary) = &user.permissions_boundary {
        let _ = writeln!(out, "  boundary (kept)      {boundary}");
    }
    for tag in &user.tags {
        let _ = writeln!(out, "  tag (recorded)       {}={}", tag.key, tag.value);
    }
    if let (Some(quarantine), None) = (&record.quarantine, &record.user_deletion) {
        let deactivated = &quarantine.deactivated;
        let ids: Vec<&str> = deactivated.items().map(|(_, id)| id.as_str()).collect();
        let _ = writeln!(out, "  deactivated          {}", ids.join(", "));
        let _ = writeln!(out, "  deny attached        {}", quarantine.deny_all_policy_arn);
        let _ = writeln!(out, "  tagged               {}={}", quarantine.tag_key, quarantine.quarantined_until);
        let _ = writeln!(
            out,
            "  deletion due {}: run `offboard delete --user-name {}` then; `offboard restore --user-name {}` undoes it",
            quarantine.quarantined_until, user.user_name, user.user_name
        );
        return out;
    }
    let _ = writeln!(out, "  {verb}:");
    let mut line = |what: &str, values: Vec<String>| {
        if !values.is_empty() {
            let _ = writeln!(out, "    {what:<30} {}", values.join(", "));
        }
    };
    line("login profile", items.login_profile.iter().map(|_| "yes".to_string()).collect());
    line("access keys", items.access_keys.iter().map(|k| format!("{} ({})", k.access_key_id, k.status)).collect());
    line("SSH public keys", items.ssh_public_keys.iter().map(|k| k.ssh_public_key_id.clone()).collect());
    line("signing certificates", items.signing_certificates.iter().map(|c| c.certificate_id.clone()).collect());
    line(
        "service-specific credentials",
        items
            .service_specific_credentials
            .iter()
            .map(|c| format!("{} ({})", c.service_specific_credential_id, c.service_name))
            .collect(),
    );
    line(
        "MFA devices",
        items.mfa_devices.iter().map(|d| format!("{} [{:?}]", d.serial_number, d.handled_as)).collect(),
    );
    line("groups", items.groups.iter().map(|g| g.group_name.clone()).collect());
    line("inline policies", items.inline_policies.iter().map(|p| p.policy_name.clone()).collect());
    line("attached policies", items.attached_policies.iter().map(|p| p.policy_arn.clone()).collect());
    if let Some(deletion) = &record.user_deletion {
        let _ = writeln!(
            out,
            "  user deleted ({:?}), verified gone after {} GetUser call(s)",
            deletion.outcome, deletion.verification_attempts
        );
    }
    let total: u64 = record.timings.values().sum();
    let _ = writeln!(out, "  {} items in {} ms of stage time", items.count(), total);
    out
}

async fn start_execution(
    config: &SdkConfig,
    state_machine_arn: &str,
    name: &str,
    input: Value,
    wait: bool,
    output: Output,
) -> Result<(), Failure> {
    let sfn = aws_sdk_sfn::Client::new(config);
    let started =
        sfn.start_execution().state_machine_arn(state_machine_arn).name(name).input(input.to_string()).send().await;
    let execution_arn = match started {
        Ok(started) => started.execution_arn().to_string(),
        Err(error) if aws_sdk_sfn::error::ProvideErrorMetadata::code(&error) == Some("ExecutionAlreadyExists") => {
            return Err(Failure::Local(format!(
                "an execution named {name} already exists on {state_machine_arn}: this user is (or was) already being offboarded. Inspect it, or pass --execution-name to start a new attempt"
            )));
        }
        Err(error) => {
            return Err(Failure::Local(format!(
                "states:StartExecution failed: {}",
                aws_sdk_sfn::error::DisplayErrorContext(&error)
            )))
        }
    };
    eprintln!("started {execution_arn}");
    if !wait {
        if output == Output::Json {
            println!("{}", json!({"ExecutionArn": execution_arn}));
        }
        return Ok(());
    }
    // A batch's size is known here; mid-run, a Map Run's own total counts
    // only the items started so far.
    let batch_size = input.get("UserNames").and_then(Value::as_array).map(Vec::len);
    follow_execution(&sfn, &execution_arn, batch_size, output).await
}

/// Prints each state as it completes, then the execution's output or error.
async fn follow_execution(
    sfn: &aws_sdk_sfn::Client,
    execution_arn: &str,
    batch_size: Option<usize>,
    output: Output,
) -> Result<(), Failure> {
    use aws_sdk_sfn::types::{ExecutionStatus, HistoryEventType};
    let mut seen = 0;
    let mut map_run: Option<String> = None;
    let mut last_progress = String::new();
    loop {
        // The status first, then the history: a status read after the
        // history could be terminal with the last states not yet printed.
        let execution = sfn.describe_execution().execution_arn(execution_arn).send().await.map_err(|e| {
            Failure::Local(format!("states:DescribeExecution failed: {}", aws_sdk_sfn::error::DisplayErrorContext(&e)))
        })?;
        let history =
            sfn.get_execution_history().execution_arn(execution_arn).max_results(1000).send().await.map_err(|e| {
                Failure::Local(format!(
                    "states:GetExecutionHistory failed: {}",
                    aws_sdk_sfn::error::DisplayErrorContext(&e)
                ))
            })?;
        for event in history.events().iter().skip(seen) {
            if event.r#type() == &HistoryEventType::TaskStateExited
                || event.r#type() == &HistoryEventType::PassStateExited
            {
                if let Some(details) = event.state_exited_event_details() {
                    eprintln!("  ✓ {}", details.name());
                }
            }
            if let Some(details) = event.map_run_started_event_details() {
                map_run = details.map_run_arn().map(str::to_string);
            }
        }
        seen = history.events().len();
        if let Some(map_run_arn) = &map_run {
            // A batch: its items' progress, from the Map Run's own counts.
            if let Ok(run) = sfn.describe_map_run().map_run_arn(map_run_arn).send().await {
                if let Some(counts) = run.item_counts() {
                    let progress = format!(
                        "  items done {}/{} ({} failed)",
                        counts.succeeded() + counts.failed() + counts.aborted() + counts.timed_out(),
                        batch_size.map_or(counts.total(), |size| size as i64),
                        counts.failed() + counts.aborted() + counts.timed_out()
                    );
                    if progress != last_progress {
                        eprintln!("{progress}");
                        last_progress = progress;
                    }
                }
            }
        }
        match execution.status() {
            ExecutionStatus::Running | ExecutionStatus::PendingRedrive => {
                tokio::time::sleep(Duration::from_secs(1)).await
            }
            ExecutionStatus::Succeeded => {
                let text = execution.output().unwrap_or("{}");
                match (output, serde_json::from_str::<AuditRecord>(text)) {
                    (Output::Text, Ok(record)) => print!("{}", render_text(&record)),
                    _ => println!("{text}"),
                }
                return Ok(());
            }
            status => {
                return Err(Failure::Local(format!(
                    "execution {} {}: {}: {}",
                    execution_arn,
                    status.as_str(),
                    execution.error().unwrap_or("unknown"),
                    execution.cause().unwrap_or("")
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_shape_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn one_user_selector_exactly() {
        assert!(Cli::try_parse_from(["offboard", "delete", "--yes"]).is_err());
        assert!(Cli::try_parse_from(["offboard", "delete", "--user-name", "a", "--user-id", "AIDAX"]).is_err());
        assert!(Cli::try_parse_from(["offboard", "plan", "--user-name", "alice"]).is_ok());
        assert!(Cli::try_parse_from(["offboard", "plan", "--user-name", "alice", "--mfa-serial", "x"]).is_err());
        assert!(Cli::try_parse_from([
            "offboard",
            "delete",
            "--user-name",
            "a",
            "--record-dir",
            "d",
            "--record-bucket",
            "b"
        ])
        .is_err());
        assert!(Cli::try_parse_from(["offboard", "records", "--user-name", "a", "--record-bucket", "b"]).is_ok());
        assert!(Cli::try_parse_from(["offboard", "restore", "--record", "r.json", "--dry-run"]).is_ok());
        assert!(Cli::try_parse_from(["offboard", "restore"]).is_err());
        assert!(
            Cli::try_parse_from(["offboard", "restore", "--user-name", "a", "--record-bucket", "b", "--yes"]).is_ok()
        );
        assert!(
            Cli::try_parse_from(["offboard", "restore", "--user-name", "a"]).is_err(),
            "the records to search are required"
        );
        assert!(Cli::try_parse_from(["offboard", "restore", "--user-name", "a", "--record", "r.json"]).is_err());
    }

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
        let Command::Start { who, grace, .. } = &cli.command else { panic!("start") };
        let common = Common { target: Target { user_name: who.user_name.clone(), user_id: None }, context: None };
        assert_eq!(execution_input(&common, false, grace).ok().unwrap(), json!({"UserName": "a", "GraceDays": 364}));
        let cli = Cli::try_parse_from(["offboard", "delete", "--user-name", "a"]).unwrap();
        let Command::Delete { common, grace, .. } = &cli.command else { panic!("delete") };
        assert_eq!(execution_input(common, false, grace).ok().unwrap(), json!({"UserName": "a"}));
    }

    #[test]
    fn execution_names_follow_the_cores_rule() {
        let target = Target { user_name: Some("A,b@c".into()), user_id: None };
        assert_eq!(execution_name_for(&target), input::execution_name_for(&UserRef::Name("a,b@c".into())));
        assert!(execution_name_for(&target).starts_with("a_b_c-"));
    }
}
