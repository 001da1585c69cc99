//! `plan` and `delete`, in the caller's account or in each account of a
//! scope (--accounts, --organization, --organizational-units). One path:
//! [`in_account`] works in the caller's own account (its credentials, no
//! role assumed) or in a scope's account alike, and files the same records
//! the same way, as the state machine files them: the plan, then the record,
//! under `records/<account>/<user>/<execution>/`, and a deletion refused
//! before its user is resolved under `records/<account>/_unresolved/<execution>/`.
//! One execution name, `cli-<unix ms>`, names the whole run. Only what is
//! printed differs: one account prints its record and fails with its error;
//! several print a line per account, then every account's outcome.

use std::sync::Arc;

use iam_offboard_core::accounts;
use iam_offboard_core::fanout::AccountOutcome;
use iam_offboard_core::input;
use iam_offboard_core::pipeline::{self, Progress};
use iam_offboard_core::record::{AuditRecord, FailureRecord};
use iam_offboard_core::sessions::{AccountSessions, Placement};
use iam_offboard_core::stages::StageContext;
use iam_offboard_core::target::{get_caller_identity, ProtectionPolicy};
use iam_offboard_core::OffboardError;
use serde_json::Value;

use crate::commands::{unix_millis, AccountArgs, Globals};
use crate::records::{user_prefix, RecordStore};
use crate::render::{print_account_outcomes, print_record};
use crate::Failure;

/// A plan or a deletion, as `plan` and `delete` describe it.
pub struct Offboarding<'a> {
    pub input: Value,
    /// `delete` (else `plan`): only a deletion files the record of a failure.
    pub deletes: bool,
    pub store: Option<RecordStore>,
    pub scope: &'a AccountArgs,
}

/// An account to work in.
enum Account<'a> {
    /// The caller's own, without account options: its id is looked up only
    /// when a record is filed.
    Callers,
    /// An account of the scope: the caller's own needs no role, any other
    /// is worked in with the role --role-name assumed there.
    Listed(&'a str),
}

pub async fn run(job: Offboarding<'_>, globals: &Globals) -> Result<(), Failure> {
    let execution = format!("cli-{}", unix_millis());
    if !job.scope.given() {
        let home = StageContext::new(&globals.config, protection_policy()?);
        return match in_account(&home, Account::Callers, &job, &execution).await {
            Ok(record) => print_record(&record, globals.output),
            Err(failure) => Err(Failure::Offboard(failure.noted(""))),
        };
    }
    let (home, accounts) = match home_and_accounts(&job, globals).await {
        Ok(found) => found,
        Err(failure) => {
            if let Failure::Offboard(error) = &failure {
                refused_before_any_account(&job, globals, &execution, error).await;
            }
            return Err(failure);
        }
    };
    let mut outcomes = Vec::with_capacity(accounts.len());
    for account in &accounts {
        eprintln!("account {account}:");
        let result = in_account(&home, Account::Listed(account), &job, &execution).await;
        outcomes.push(account_outcome(account, result, job.deletes));
    }
    let failed: Vec<&str> = outcomes.iter().filter(|o| o.failed()).map(|o| o.account.as_str()).collect();
    print_account_outcomes(&outcomes, &failed, globals.output);
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::Incomplete(format!("the offboarding failed in account(s) {}", failed.join(", "))))
    }
}

/// The context in the caller's account, set to assume --role-name in the
/// others, and the scope's accounts. As the state machine's ResolveAccounts
/// does, the whole input is checked first, so a bad input or account list
/// is refused before any account is worked in.
async fn home_and_accounts(job: &Offboarding<'_>, globals: &Globals) -> Result<(StageContext, Vec<String>), Failure> {
    input::parse_execution_input(&job.input)?;
    let Some(scope) = job.scope.scope()? else {
        return Err(Failure::Local("give --accounts, --organization or --organizational-units".into()));
    };
    let config = &globals.config;
    let mut home = StageContext::new(config, protection_policy()?);
    home.organizations = Some(aws_sdk_organizations::Client::new(config));
    home.sessions = Some(Arc::new(AccountSessions::new(config.clone(), job.scope.role_name.clone(), None)));
    let accounts = accounts::accounts_in_scope(home.organizations.as_ref(), &scope).await?;
    Ok((home, accounts))
}

/// One account's plan or offboarding: its record, or its failure (for a
/// deletion, the failure's record filed first).
async fn in_account(
    home: &StageContext,
    account: Account<'_>,
    job: &Offboarding<'_>,
    execution: &str,
) -> Result<AuditRecord, AccountFailure> {
    let store = job.store.as_ref();
    let (elsewhere, mut reporter) = match account {
        Account::Callers => {
            let account = match store {
                Some(_) => home.caller().await?.account.clone(),
                None => String::new(),
            };
            (None, Reporter { store, account, execution })
        }
        Account::Listed(account) => {
            let reporter = Reporter { store, account: account.to_string(), execution };
            let placement = Placement { account: account.to_string(), execution: execution.to_string() };
            match home.in_account(&placement).await {
                Ok(elsewhere) => (elsewhere, reporter),
                Err(error) => return Err(reporter.refused(error, job).await),
            }
        }
    };
    let ctx = elsewhere.as_ref().unwrap_or(home);
    if !job.deletes {
        return Ok(pipeline::plan(ctx, job.input.clone(), &mut reporter).await?);
    }
    match pipeline::offboard(ctx, job.input.clone(), &mut reporter).await {
        Ok(record) => {
            reporter.store(Some(&record.user.user_name), file_for(&record), &record).await?;
            Ok(record)
        }
        Err(failed) => {
            let user = failed.record.user.as_ref().map(|user| user.user_name.as_str());
            // A quarantine that failed part-way: what it changed, for restore.
            let partial = failed.record.plan.clone().zip(failed.record.quarantine.clone());
            let partial_not_filed = match partial {
                Some((plan, quarantine)) => {
                    let record = AuditRecord { quarantine: Some(quarantine), ..plan };
                    reporter.store(user, "quarantine.json", &record).await.err()
                }
                None => None,
            };
            let not_filed = reporter.store(user, "record.json", &failed.record).await.err().or(partial_not_filed);
            Err(AccountFailure { error: failed.error, not_filed })
        }
    }
}

/// A deletion refused before any account was worked in is filed under the
/// caller's account, as the state machine files a refused input under its own.
async fn refused_before_any_account(job: &Offboarding<'_>, globals: &Globals, execution: &str, error: &OffboardError) {
    let (true, Some(store)) = (job.deletes, job.store.as_ref()) else {
        return;
    };
    let not_filed = match get_caller_identity(&aws_sdk_sts::Client::new(&globals.config)).await {
        Ok(caller) => {
            let reporter = Reporter { store: Some(store), account: caller.account, execution };
            reporter.store(None, "record.json", &FailureRecord::refusal(error, job.input.clone())).await.err()
        }
        Err(lookup) => Some(lookup),
    };
    if let Some(not_filed) = not_filed {
        eprintln!("error: {}: {not_filed}", not_filed.name());
    }
}

/// What a finished deletion leaves: a quarantine's record or the offboarding's.
fn file_for(record: &AuditRecord) -> &'static str {
    if record.quarantine.is_some() {
        "quarantine.json"
    } else {
        "record.json"
    }
}

/// Prints how the run in `account` ended, under its `account` line, and
/// returns its outcome for the summary.
fn account_outcome(account: &str, result: Result<AuditRecord, AccountFailure>, deletes: bool) -> AccountOutcome {
    let result = match result {
        Ok(_) if !deletes => Ok("Planned".to_string()),
        Ok(record) if record.quarantine.is_some() => Ok("Quarantined".to_string()),
        Ok(_) => Ok("Offboarded".to_string()),
        Err(failure) => Err(failure.noted("  ")),
    };
    let outcome = AccountOutcome::of(account, &result);
    match &result {
        Err(error) => eprintln!("  {} {}: {error}", outcome.outcome, error.name()),
        Ok(done) => eprintln!("  {done}"),
    }
    outcome
}

/// A bad protection configuration is a local problem (exit 2), not an offboarding error.
fn protection_policy() -> Result<ProtectionPolicy, Failure> {
    ProtectionPolicy::from_env().map_err(|error| Failure::Local(error.to_string()))
}

/// How an account's run failed, and why its record was not filed if it was not.
struct AccountFailure {
    error: OffboardError,
    not_filed: Option<OffboardError>,
}

impl From<OffboardError> for AccountFailure {
    fn from(error: OffboardError) -> Self {
        Self { error, not_filed: None }
    }
}

impl AccountFailure {
    /// The run's error, once the record's own error (if any) is printed,
    /// `indent`ed as the lines around it.
    fn noted(self, indent: &str) -> OffboardError {
        if let Some(not_filed) = self.not_filed {
            eprintln!("{indent}error: {}: {not_filed}", not_filed.name());
        }
        self.error
    }
}

/// Prints progress to stderr (so that `--output json` stays parseable) and,
/// given a store, files the plan before the first change and the record at
/// the end, as the state machine does.
struct Reporter<'a> {
    store: Option<&'a RecordStore>,
    account: String,
    execution: &'a str,
}

impl Reporter<'_> {
    /// Files `document` as `file` of this run in the account, under the
    /// user's name, or `_unresolved` without one.
    async fn store(
        &self,
        user_name: Option<&str>,
        file: &str,
        document: &impl serde::Serialize,
    ) -> Result<(), OffboardError> {
        let Some(store) = self.store else {
            return Ok(());
        };
        let key = format!("{}{}/{file}", user_prefix(&self.account, user_name), self.execution);
        let location = store.put(&key, document).await.map_err(|why| {
            OffboardError::RecordNotWritten(format!("the {file} of this offboarding could not be stored: {why}"))
        })?;
        eprintln!("  {file} written to {location}");
        Ok(())
    }

    /// A run that failed before its user was resolved: for a deletion, the
    /// input and the error filed under `_unresolved`, as GetUsername's
    /// refusals are.
    async fn refused(&self, error: OffboardError, job: &Offboarding<'_>) -> AccountFailure {
        let not_filed = match job.deletes {
            true => self.store(None, "record.json", &FailureRecord::refusal(&error, job.input.clone())).await.err(),
            false => None,
        };
        AccountFailure { error, not_filed }
    }
}

impl Progress for Reporter<'_> {
    fn stage_done(&mut self, stage: &str, detail: &str) {
        eprintln!("  ✓ {stage:<42} {detail}")
    }

    async fn plan_ready(&mut self, plan: &AuditRecord) -> Result<(), OffboardError> {
        self.store(Some(&plan.user.user_name), "plan.json", plan).await
    }
}
