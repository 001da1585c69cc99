//! Org-wide offboarding's first step: an input naming `Accounts` or
//! `OrganizationalUnits` is validated whole and turned into one child
//! execution per ACTIVE account, before any account is touched. The state
//! machine's Distributed Map starts the children (the single-account flow,
//! run in each account with that account's session, see
//! [`crate::sessions`]); [`crate::account_summary`] reads how each ended.
//!
//! A grace period is decided here, once: `GraceDays` becomes one
//! `DeleteAfter` in the input every child gets, and every child starts at
//! once, so each account's user is quarantined within minutes and all are
//! deleted at the same time, however many accounts there are.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::accounts::{accounts_in_scope, parse_account_scope};
use crate::context::StageContext;
use crate::errors::{invalid_input as invalid, OffboardError};
use crate::input::{format_timestamp, parse_execution_input, OffboardRequest, PARENT_FIELD};
use crate::stage::Timed;

/// The field under which the state machine hands GetUsername's function an
/// org-wide input, with the execution's name: `{"ResolveAccounts":
/// {"Input": <input>, "ExecutionName": <name>}}`.
pub const RESOLVE_ACCOUNTS: &str = "ResolveAccounts";
/// Step Functions execution names are 1 to 80 characters (StartExecution,
/// `name`).
pub const MAX_EXECUTION_NAME: usize = 80;
/// An account id's length (12 digits, [`crate::accounts::validate_account_id`]).
const ACCOUNT_ID_LENGTH: usize = 12;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ResolveAccountsRequest {
    pub input: Value,
    pub execution_name: String,
    /// The org-wide execution: every child names it as its parent.
    pub execution_id: String,
}

/// What the Map runs, kept in the execution's state: the account ids and
/// nothing else per account (15 bytes each in JSON), the suffix that names
/// each child, and the input every child gets (the execution's input without
/// its account scope, its grace period as one `DeleteAfter`; the Map adds
/// each child's `Account` and `ExecutionName`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct AccountFanOut {
    pub accounts: Vec<String>,
    /// Each child is named `<account>-<ChildNameSuffix>` (the Map's
    /// `States.Format`): [`child_execution_name`].
    pub child_name_suffix: String,
    pub child_input: Value,
    /// Every account at once with a grace period (each is quarantined now
    /// and waits), `AccountConcurrency` otherwise.
    pub max_concurrency: u32,
    pub dry_run: bool,
    /// The one deletion time every child waits for; `null` without a grace period.
    pub delete_after: Option<String>,
    #[serde(default)]
    pub duration_ms: Option<u64>,
}

impl Timed for AccountFanOut {
    fn set_duration_ms(&mut self, duration_ms: u64) {
        self.duration_ms = Some(duration_ms);
    }
}

/// The child execution of `parent` in `account`: the account first, so a
/// parent name cut to fit 80 characters still names the account, and
/// distinct per account so a retried start is `ExecutionAlreadyExists`,
/// never a second offboarding.
pub fn child_execution_name(parent: &str, account: &str) -> String {
    format!("{account}-{parent}").chars().take(MAX_EXECUTION_NAME).collect()
}

/// What follows `<account>-` in each child's name: `parent` cut so that the
/// name is [`child_execution_name`] for every 12-digit account.
pub fn child_name_suffix(parent: &str) -> String {
    parent.chars().take(MAX_EXECUTION_NAME - ACCOUNT_ID_LENGTH - 1).collect()
}

/// The child input: the execution's fields without the account scope, with
/// `parent` (the org-wide execution) named as its parent and a grace period
/// as one `DeleteAfter` (`GraceDays` counted from now, here, once: every
/// child deletes at the same time, whenever it starts), validated as a
/// single offboarding's input is. Returns the input and its parse.
pub fn child_input(fields: &Map<String, Value>, parent: &str) -> Result<(Value, OffboardRequest), OffboardError> {
    let mut child: Map<String, Value> = fields
        .iter()
        .filter(|(key, _)| !matches!(key.as_str(), "Accounts" | "OrganizationalUnits"))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    child.insert(PARENT_FIELD.into(), Value::String(parent.into()));
    if let Some(at) = parse_execution_input(&Value::Object(child.clone()))?.delete_after {
        child.remove("GraceDays");
        child.insert("DeleteAfter".into(), Value::String(format_timestamp(at)));
    }
    let child = Value::Object(child);
    let request = parse_execution_input(&child)?;
    Ok((child, request))
}

/// Validates an org-wide input whole and lists the accounts it covers.
pub async fn resolve_accounts(
    ctx: &StageContext,
    request: ResolveAccountsRequest,
) -> Result<AccountFanOut, OffboardError> {
    let Value::Object(fields) = &request.input else {
        return Err(invalid("input must be a JSON object"));
    };
    let scope = parse_account_scope(fields)?
        .ok_or_else(|| invalid("an org-wide offboarding names Accounts or OrganizationalUnits"))?;
    let (child_input, child_request) = child_input(fields, &request.execution_id)?;
    let accounts = accounts_in_scope(ctx.organizations.as_ref(), &scope).await?;
    let home = ctx.caller().await?.account.clone();
    if ctx.sessions.is_none() {
        if let Some(other) = accounts.iter().find(|account| **account != home) {
            return Err(invalid(format!(
                "account {other} is not this deployment's ({home}) and the deployment names no target role (TargetRoleName); nothing was changed"
            )));
        }
    }
    let delete_after = child_request.delete_after.map(format_timestamp);
    // A grace period holds in every account at once: a child waits its
    // grace period out, so AccountConcurrency children at a time would
    // quarantine the next accounts only after the first ones' deletion.
    // MAX_ACCOUNTS (5,000) is within a Distributed Map's 10,000.
    let max_concurrency = match delete_after {
        Some(_) => u32::try_from(accounts.len()).unwrap_or(u32::MAX),
        None => ctx.account_concurrency,
    };
    tracing::info!(accounts = accounts.len(), scope = ?scope, max_concurrency, delete_after = ?delete_after, "accounts resolved");
    Ok(AccountFanOut {
        accounts,
        child_name_suffix: child_name_suffix(&request.execution_name),
        child_input,
        max_concurrency,
        dry_run: child_request.dry_run,
        delete_after,
        duration_ms: None,
    })
}

/// One account's outcome in an org-wide offboarding, as `offboard
/// plan|delete --accounts` reports it (the state machine counts the same
/// outcomes from its Map's report: [`crate::account_summary`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccountOutcome {
    pub account: String,
    /// `Offboarded`, `Planned`, `Quarantined`, `NotPresent` or `Failed`.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl AccountOutcome {
    /// `Ok` names what a successful run did; an account where the user does
    /// not exist is `NotPresent`, not a failure.
    pub fn of(account: &str, result: &Result<String, OffboardError>) -> Self {
        let (outcome, error) = match result {
            Ok(done) => (done.as_str(), None),
            Err(OffboardError::UserNotFound(_)) => ("NotPresent", None),
            Err(error) => ("Failed", Some(error.name().to_string())),
        };
        Self { account: account.to_string(), outcome: outcome.to_string(), error }
    }

    pub fn failed(&self) -> bool {
        self.outcome == "Failed"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_account_without_the_user_is_not_present_and_only_other_errors_fail() {
        let ok: Result<String, OffboardError> = Ok("Offboarded".into());
        assert_eq!(AccountOutcome::of("111122223333", &ok).outcome, "Offboarded");
        let absent = Err(OffboardError::UserNotFound("no".into()));
        let outcome = AccountOutcome::of("111122223333", &absent);
        assert_eq!((outcome.outcome.as_str(), outcome.error.as_deref(), outcome.failed()), ("NotPresent", None, false));
        let denied = Err(OffboardError::AccessDenied("no".into()));
        let outcome = AccountOutcome::of("111122223333", &denied);
        assert!(outcome.failed());
        assert_eq!(outcome.error.as_deref(), Some("AccessDenied"));
    }

    #[test]
    fn child_names_lead_with_the_account_and_fit_80_characters() {
        assert_eq!(child_execution_name("alice-1a2b3c4d", "111122223333"), "111122223333-alice-1a2b3c4d");
        let long = "x".repeat(80);
        let name = child_execution_name(&long, "111122223333");
        assert_eq!(name.len(), 80);
        assert!(name.starts_with("111122223333-x"));
        assert_ne!(child_execution_name(&long, "111122223333"), child_execution_name(&long, "444455556666"));
        // The state machine names each child `<account>-<suffix>`: the same name.
        for parent in ["alice-1a2b3c4d", &"x".repeat(66), &"x".repeat(67), &"x".repeat(68), &"é".repeat(80)] {
            let suffix = child_name_suffix(parent);
            assert_eq!(format!("111122223333-{suffix}"), child_execution_name(parent, "111122223333"), "{parent}");
            assert!(format!("111122223333-{suffix}").chars().count() <= MAX_EXECUTION_NAME);
        }
    }

    #[test]
    fn the_child_input_is_the_input_without_its_scope_and_must_be_valid_itself() {
        let parent = "arn:aws:states:us-east-1:111122223333:execution:hub-offboard:alice-1a2b3c4d";
        let child = |input: Value| child_input(input.as_object().unwrap(), parent).map(|(child, _)| child);
        let input =
            json!({"UserName": "alice", "Accounts": ["111122223333"], "DryRun": true, "Context": {"Ticket": "T-1"}});
        assert_eq!(
            child(input),
            Ok(json!({"UserName": "alice", "DryRun": true, "Context": {"Ticket": "T-1"}, PARENT_FIELD: parent}))
        );
        let forged = json!({"UserName": "alice", "Accounts": ["111122223333"], PARENT_FIELD: "arn:aws:states:r:1:execution:m:x"});
        assert_eq!(child(forged).unwrap()[PARENT_FIELD], parent, "the parent is the execution's own id");
        assert_eq!(
            child(json!({"UserName": "al ice", "Accounts": ["111122223333"]})).unwrap_err().name(),
            "InvalidInput"
        );
        let own = child(json!({"UserName": "alice", "Accounts": ["111122223333"], "Account": "111122223333"}));
        assert_eq!(own.unwrap_err().name(), "InvalidInput", "a child's own fields are not the caller's to set");
    }

    #[test]
    fn grace_days_become_one_delete_after_counted_from_now_once() {
        let parent = "arn:aws:states:us-east-1:111122223333:execution:hub-offboard:alice-1a2b3c4d";
        let before = std::time::SystemTime::now();
        let input = json!({"UserName": "alice", "Accounts": ["111122223333"], "GraceDays": 7});
        let (child, request) = child_input(input.as_object().unwrap(), parent).unwrap();
        let after = std::time::SystemTime::now();
        assert!(child.get("GraceDays").is_none(), "{child}");
        let at = request.delete_after.expect("a grace period");
        assert_eq!(child["DeleteAfter"], format_timestamp(at), "the input parser's UTC form");
        let week = std::time::Duration::from_secs(7 * 86_400);
        let secs = |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        assert!((secs(before + week)..=secs(after + week)).contains(&at.secs()), "{at:?}");
        // A child parsing the input later gets that same time, not its own now + 7 days.
        let again = parse_execution_input(&child).unwrap().delete_after.unwrap();
        assert_eq!(again.secs(), at.secs());

        // A DeleteAfter given is kept, in the same form.
        let tomorrow = format_timestamp(aws_sdk_iam::primitives::DateTime::from_secs(secs(after) + 86_400));
        let given = json!({"UserName": "alice", "Accounts": ["111122223333"], "DeleteAfter": tomorrow});
        let (child, request) = child_input(given.as_object().unwrap(), parent).unwrap();
        assert_eq!(
            (child["DeleteAfter"].as_str(), request.delete_after.map(format_timestamp)),
            (Some(tomorrow.as_str()), Some(tomorrow.clone()))
        );
        let plain = json!({"UserName": "alice", "Accounts": ["111122223333"]});
        let (child, request) = child_input(plain.as_object().unwrap(), parent).unwrap();
        assert!(child.get("DeleteAfter").is_none() && request.delete_after.is_none());
    }
}
