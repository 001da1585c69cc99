//! Which accounts an org-wide offboarding covers, as the execution input
//! names them, validated before any AWS call: `Accounts` (a list of account
//! ids, or `"ORGANIZATION"` for every ACTIVE account of the organization) or
//! `OrganizationalUnits`. Without either, an offboarding covers the account it
//! runs in, as before.

use serde_json::{Map, Value};

use crate::errors::{invalid_input as invalid, OffboardError};

/// The most accounts one execution offboards from. Each account's outcome
/// and record travel in the execution's output, which Step Functions caps
/// at 256 KiB; a larger organization is split by organizational unit.
pub const MAX_ACCOUNTS: usize = 1_000;
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
            let ids = distinct_ids(units, "OrganizationalUnits", MAX_ORGANIZATIONAL_UNITS, validate_organizational_unit_id)?;
            Ok(Some(AccountScope::OrganizationalUnits(ids)))
        }
    }
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
    for item in items {
        let id = item.as_str().ok_or_else(|| invalid(format!("{field} must hold strings, got {item}")))?;
        validate(id)?;
        if ids.iter().any(|seen| seen == id) {
            return Err(invalid(format!("{field} lists {id} twice")));
        }
        ids.push(id.to_string());
    }
    Ok(ids)
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
            (json!({"Accounts": []}), "give 1 to 1000"),
            (json!({"Accounts": too_many}), "lists 1001 ids"),
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
        assert!(matches!(scope(json!({"Accounts": most})), Ok(Some(AccountScope::Listed(ids))) if ids.len() == MAX_ACCOUNTS));
        let longest = format!("ou-{}-{}", "a".repeat(32), "9".repeat(32));
        assert!(scope(json!({"OrganizationalUnits": [longest]})).is_ok());
    }
}
