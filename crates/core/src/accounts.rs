//! Which accounts an org-wide offboarding covers, as the execution input
//! names them, validated before any AWS call: `Accounts` (a list of account
//! ids, or `"ORGANIZATION"` for every ACTIVE account of the organization) or
//! `OrganizationalUnits`. Without either, an offboarding covers the account it
//! runs in, as before.

use std::collections::HashSet;

use aws_sdk_organizations::types::{Account, AccountState, AccountStatus};
use serde_json::{Map, Value};

use crate::errors::{invalid_input as invalid, OffboardError};
use crate::iam_calls::collect_all;

/// The most accounts one execution offboards from. The state machine keeps
/// only the account ids in its state (15 bytes each in JSON: 75 KB for
/// 5,000, under Step Functions' 256 KiB state quota with the rest of the
/// fan-out; `crates/core/tests/accounts.rs` measures the largest), its
/// Distributed Map keeps each account's outcome in its report in S3, not in
/// the state. A larger organization is offboarded by organizational unit,
/// one execution per unit.
pub const MAX_ACCOUNTS: usize = 5_000;
/// The most organizational units one execution names.
pub const MAX_ORGANIZATIONAL_UNITS: usize = 100;
/// `Accounts` takes this string for every ACTIVE account of the organization.
pub const WHOLE_ORGANIZATION: &str = "ORGANIZATION";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountScope {
    Listed(Vec<String>),
    Organization,
    OrganizationalUnits(Vec<String>),
}

/// An AWS account id: exactly 12 digits (Organizations API reference,
/// `Account.Id`: pattern `^\d{12}$`).
pub fn validate_account_id(id: &str) -> Result<(), OffboardError> {
    if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(format!("account id {id:?} is not an AWS account id: it must be exactly 12 digits")));
    }
    Ok(())
}

/// An organizational unit id (Organizations API reference,
/// `OrganizationalUnit.Id`: pattern `^ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}$`).
pub fn validate_organizational_unit_id(id: &str) -> Result<(), OffboardError> {
    let lower_alnum = |part: &str, min: usize| {
        (min..=32).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    };
    let valid = id
        .strip_prefix("ou-")
        .and_then(|rest| rest.split_once('-'))
        .is_some_and(|(root, unit)| lower_alnum(root, 4) && lower_alnum(unit, 8));
    if !valid {
        return Err(invalid(format!(
            "organizational unit id {id:?} is not one: it must match ^ou-[0-9a-z]{{4,32}}-[a-z0-9]{{8,32}}$"
        )));
    }
    Ok(())
}

/// The account scope of an execution input's fields; `None` when it names
/// neither `Accounts` nor `OrganizationalUnits`.
pub fn parse_account_scope(fields: &Map<String, Value>) -> Result<Option<AccountScope>, OffboardError> {
    match (fields.get("Accounts"), fields.get("OrganizationalUnits")) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(invalid("input has both Accounts and OrganizationalUnits; give at most one")),
        (Some(Value::String(whole)), None) if whole == WHOLE_ORGANIZATION => Ok(Some(AccountScope::Organization)),
        (Some(accounts), None) => {
            let ids = distinct_ids(accounts, "Accounts", MAX_ACCOUNTS, validate_account_id)?;
            Ok(Some(AccountScope::Listed(ids)))
        }
        (None, Some(units)) => {
            let ids =
                distinct_ids(units, "OrganizationalUnits", MAX_ORGANIZATIONAL_UNITS, validate_organizational_unit_id)?;
            Ok(Some(AccountScope::OrganizationalUnits(ids)))
        }
    }
}

/// Whether an account of an Organizations listing is ACTIVE. `State` is the
/// field to read: the Organizations API reference (`Account`) retires
/// `Status` on 2026-09-09 and recommends `State`; an answer without `State`
/// (an older endpoint) is read by `Status`. SUSPENDED, PENDING_CLOSURE,
/// CLOSED and PENDING_ACTIVATION accounts are skipped: there is no session
/// to be had in them.
pub fn is_active(account: &Account) -> bool {
    match account.state() {
        Some(state) => *state == AccountState::Active,
        None => account.status() == Some(&AccountStatus::Active),
    }
}

/// The ACTIVE accounts `scope` covers, in the order listed: the ids as given
/// for `Listed` (no Organizations call), every ACTIVE account of the
/// organization (`ListAccounts`), or every ACTIVE account in the units and
/// the units below them (`ListAccountsForParent`,
/// `ListOrganizationalUnitsForParent`). An empty or too large result is
/// `InvalidInput`, before any account is touched.
pub async fn accounts_in_scope(
    organizations: Option<&aws_sdk_organizations::Client>,
    scope: &AccountScope,
) -> Result<Vec<String>, OffboardError> {
    let listed: Vec<Account> = match scope {
        AccountScope::Listed(ids) => return Ok(ids.clone()),
        AccountScope::Organization => {
            let pages = organizations_client(organizations)?.list_accounts().into_paginator().send();
            let pages = collect_all(pages, "organizations:ListAccounts", "the organization").await?;
            pages.into_iter().flat_map(|page| page.accounts.unwrap_or_default()).collect()
        }
        AccountScope::OrganizationalUnits(units) => {
            let organizations = organizations_client(organizations)?;
            let mut accounts = Vec::new();
            let mut pending: Vec<String> = units.iter().rev().cloned().collect();
            while let Some(unit) = pending.pop() {
                let pages = organizations.list_accounts_for_parent().parent_id(&unit).into_paginator().send();
                let pages = collect_all(pages, "organizations:ListAccountsForParent", &unit).await?;
                accounts.extend(pages.into_iter().flat_map(|page| page.accounts.unwrap_or_default()));
                let pages =
                    organizations.list_organizational_units_for_parent().parent_id(&unit).into_paginator().send();
                let pages = collect_all(pages, "organizations:ListOrganizationalUnitsForParent", &unit).await?;
                let children: Vec<String> = pages
                    .into_iter()
                    .flat_map(|page| page.organizational_units.unwrap_or_default())
                    .filter_map(|child| child.id)
                    .collect();
                pending.extend(children.into_iter().rev());
            }
            accounts
        }
    };
    // An organization holds up to thousands of accounts: a set, not a scan per account.
    let mut seen = HashSet::with_capacity(listed.len());
    let mut distinct: Vec<String> = Vec::with_capacity(listed.len());
    for account in listed {
        match account.id() {
            Some(id) if is_active(&account) => {
                if seen.insert(id.to_string()) {
                    distinct.push(id.to_string());
                }
            }
            _ => {
                tracing::info!(account = ?account.id(), state = ?account.state(), status = ?account.status(), "account skipped: not ACTIVE")
            }
        }
    }
    if distinct.is_empty() {
        return Err(invalid("the organization scope holds no ACTIVE account; nothing was changed"));
    }
    if distinct.len() > MAX_ACCOUNTS {
        return Err(invalid(format!(
            "the organization scope holds {} ACTIVE accounts, more than the {MAX_ACCOUNTS} one execution covers; name OrganizationalUnits, one execution per unit. Nothing was changed.",
            distinct.len()
        )));
    }
    Ok(distinct)
}

fn organizations_client(
    organizations: Option<&aws_sdk_organizations::Client>,
) -> Result<&aws_sdk_organizations::Client, OffboardError> {
    organizations.ok_or_else(|| invalid("this function has no Organizations client; list the accounts in Accounts"))
}

fn distinct_ids(
    value: &Value,
    field: &str,
    max: usize,
    validate: fn(&str) -> Result<(), OffboardError>,
) -> Result<Vec<String>, OffboardError> {
    let Value::Array(items) = value else {
        let also = if field == "Accounts" { format!(" or \"{WHOLE_ORGANIZATION}\"") } else { String::new() };
        return Err(invalid(format!("{field} must be a list of ids{also}")));
    };
    if items.is_empty() || items.len() > max {
        return Err(invalid(format!("{field} lists {} ids; give 1 to {max}", items.len())));
    }
    let mut ids: Vec<String> = Vec::with_capacity(items.len());
    let mut seen = HashSet::with_capacity(items.len());
    for item in items {
        let id = item.as_str().ok_or_else(|| invalid(format!("{field} must hold strings, got {item}")))?;
        validate(id)?;
        if !seen.insert(id) {
            return Err(invalid(format!("{field} lists {id} twice")));
        }
        ids.push(id.to_string());
    }
    Ok(ids)
}

/// The deployment's Map concurrency over accounts when there is no grace
/// period (template parameter `AccountConcurrency`); with one, every account
/// runs at once ([`crate::fanout`]).
pub const ENV_ACCOUNT_CONCURRENCY: &str = "OFFBOARD_ACCOUNT_CONCURRENCY";
pub const DEFAULT_ACCOUNT_CONCURRENCY: u32 = 10;
/// A Distributed Map runs up to 10,000 child workflows at once (Step
/// Functions developer guide, "Map workflow state", processing modes:
/// "high concurrency of up to 10,000 parallel child workflow executions"),
/// so the Map is not what bounds this. Lambda is: an AWS account has 1,000
/// concurrent executions per Region by default (Lambda developer guide,
/// "Lambda quotas"), and every child runs its stages on the same functions,
/// so more children at once than that only queue for a free instance (the
/// state machine's admission retrier). 1,000 is therefore the most that can
/// make an offboarding without a grace period faster; the default stays 10.
pub const MAX_ACCOUNT_CONCURRENCY: u32 = 1_000;

/// The Map concurrency from `OFFBOARD_ACCOUNT_CONCURRENCY` (unset: 10).
pub fn account_concurrency_from_env() -> Result<u32, OffboardError> {
    match std::env::var(ENV_ACCOUNT_CONCURRENCY) {
        Err(_) => Ok(DEFAULT_ACCOUNT_CONCURRENCY),
        Ok(text) => {
            text.trim().parse::<u32>().ok().filter(|n| (1..=MAX_ACCOUNT_CONCURRENCY).contains(n)).ok_or_else(|| {
                invalid(format!(
                    "{ENV_ACCOUNT_CONCURRENCY} holds {text:?}: a whole number from 1 to {MAX_ACCOUNT_CONCURRENCY}"
                ))
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope(input: Value) -> Result<Option<AccountScope>, OffboardError> {
        parse_account_scope(input.as_object().unwrap())
    }

    #[test]
    fn listed_accounts_the_organization_and_units_are_read() {
        assert_eq!(scope(json!({"UserName": "alice"})), Ok(None));
        assert_eq!(
            scope(json!({"Accounts": ["111122223333", "444455556666"]})),
            Ok(Some(AccountScope::Listed(vec!["111122223333".into(), "444455556666".into()])))
        );
        assert_eq!(scope(json!({"Accounts": "ORGANIZATION"})), Ok(Some(AccountScope::Organization)));
        assert_eq!(
            scope(json!({"OrganizationalUnits": ["ou-ab12-cdef3456"]})),
            Ok(Some(AccountScope::OrganizationalUnits(vec!["ou-ab12-cdef3456".into()])))
        );
    }

    #[test]
    fn anything_else_is_invalid_input_naming_the_problem() {
        let too_many: Vec<String> = (0..=MAX_ACCOUNTS).map(|i| format!("{:012}", i)).collect();
        let too_many_units: Vec<String> = (0..=MAX_ORGANIZATIONAL_UNITS).map(|i| format!("ou-ab12-{:08}", i)).collect();
        for (input, says) in [
            (json!({"Accounts": ["11112222333"]}), "12 digits"),
            (json!({"Accounts": ["1111222233334"]}), "12 digits"),
            (json!({"Accounts": ["11112222333a"]}), "12 digits"),
            (json!({"Accounts": [" 111122223333"]}), "12 digits"),
            (json!({"Accounts": ["111122223333", "111122223333"]}), "twice"),
            (json!({"Accounts": []}), "give 1 to 5000"),
            (json!({"Accounts": too_many}), "lists 5001 ids"),
            (json!({"Accounts": [111122223333u64]}), "strings"),
            (json!({"Accounts": "organization"}), "list of ids or \"ORGANIZATION\""),
            (json!({"Accounts": "111122223333"}), "list of ids"),
            (json!({"Accounts": ["111122223333"], "OrganizationalUnits": ["ou-ab12-cdef3456"]}), "both"),
            (json!({"OrganizationalUnits": ["ou-AB12-cdef3456"]}), "organizational unit"),
            (json!({"OrganizationalUnits": ["ou-ab1-cdef3456"]}), "organizational unit"),
            (json!({"OrganizationalUnits": ["ou-ab12-cdef345"]}), "organizational unit"),
            (json!({"OrganizationalUnits": ["r-ab12"]}), "organizational unit"),
            (json!({"OrganizationalUnits": too_many_units}), "give 1 to 100"),
            (json!({"OrganizationalUnits": "ou-ab12-cdef3456"}), "list of ids"),
        ] {
            let error = scope(input.clone()).expect_err(&input.to_string());
            assert_eq!(error.name(), "InvalidInput", "{input}");
            assert!(error.to_string().contains(says), "{input}: {error}");
        }
    }

    #[test]
    fn the_limits_themselves_are_accepted() {
        let most: Vec<String> = (0..MAX_ACCOUNTS).map(|i| format!("{:012}", i)).collect();
        assert!(
            matches!(scope(json!({"Accounts": most})), Ok(Some(AccountScope::Listed(ids))) if ids.len() == MAX_ACCOUNTS)
        );
        let longest = format!("ou-{}-{}", "a".repeat(32), "9".repeat(32));
        assert!(scope(json!({"OrganizationalUnits": [longest]})).is_ok());
    }

    #[test]
    fn the_map_concurrency_is_1_to_1000_and_10_when_unset() {
        // The only test that sets this variable.
        std::env::remove_var(ENV_ACCOUNT_CONCURRENCY);
        assert_eq!(account_concurrency_from_env(), Ok(DEFAULT_ACCOUNT_CONCURRENCY));
        for (text, expected) in
            [("7", Some(7)), (" 1000 ", Some(1000)), ("1", Some(1)), ("0", None), ("1001", None), ("ten", None)]
        {
            std::env::set_var(ENV_ACCOUNT_CONCURRENCY, text);
            let read = account_concurrency_from_env();
            match expected {
                Some(n) => assert_eq!(read, Ok(n), "{text:?}"),
                None => assert_eq!(read.unwrap_err().name(), "InvalidInput", "{text:?}"),
            }
        }
        std::env::remove_var(ENV_ACCOUNT_CONCURRENCY);
    }
}
