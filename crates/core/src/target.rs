//! GetUsername: find the user, then refuse protected users and the caller's
//! own identity before anything is changed.

use aws_sdk_iam::Client;
use serde::{Deserialize, Serialize};

use crate::errors::{classify_sdk_error, is_no_such_entity, OffboardError};
use crate::iam_calls::{format_date, PAGE_SIZE};
use crate::input::UserRef;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// The user as found, recorded (tags and permissions boundary are recorded,
/// never removed: they do not block DeleteUser).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct TargetUser {
    pub user_name: String,
    pub user_id: String,
    pub arn: String,
    pub path: String,
    pub create_date: Option<String>,
    pub password_last_used: Option<String>,
    pub tags: Vec<Tag>,
    pub permissions_boundary: Option<String>,
}

/// Which users may never be offboarded, from the function's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectionPolicy {
    /// A user carrying this tag with value `true` is protected.
    pub tag_key: String,
    /// Protected user names (IAM names are case-insensitive).
    pub user_names: Vec<String>,
    /// Protected paths: `/admin/` protects `/admin/` and `/admin/ops/`.
    pub path_prefixes: Vec<String>,
}

pub const DEFAULT_PROTECTION_TAG_KEY: &str = "offboard:protected";
pub const ENV_PROTECTION_TAG_KEY: &str = "OFFBOARD_PROTECTED_TAG_KEY";
pub const ENV_PROTECTED_USER_NAMES: &str = "OFFBOARD_PROTECTED_USER_NAMES";
pub const ENV_PROTECTED_PATH_PREFIXES: &str = "OFFBOARD_PROTECTED_PATH_PREFIXES";

impl Default for ProtectionPolicy {
    fn default() -> Self {
        Self { tag_key: DEFAULT_PROTECTION_TAG_KEY.into(), user_names: Vec::new(), path_prefixes: Vec::new() }
    }
}

impl ProtectionPolicy {
    /// Reads the three `OFFBOARD_PROTECTED_*` variables (comma-separated lists).
    pub fn from_env() -> Result<Self, OffboardError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Builds the policy from a variable lookup. A path prefix that does not
    /// start and end with `/` would silently protect nothing (IAM paths
    /// always do), so it is refused here, at init.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, OffboardError> {
        let list = |name: &str| -> Vec<String> {
            var(name)
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(String::from)
                .collect()
        };
        let path_prefixes = list(ENV_PROTECTED_PATH_PREFIXES);
        if let Some(bad) = path_prefixes.iter().find(|prefix| !(prefix.starts_with('/') && prefix.ends_with('/'))) {
            return Err(OffboardError::InvalidInput(format!(
                "{ENV_PROTECTED_PATH_PREFIXES} holds {bad:?}, which is not an IAM path prefix: each must start and end with / (for example /breakglass/). Fix the configuration; nothing is offboarded until then."
            )));
        }
        Ok(Self {
            tag_key: var(ENV_PROTECTION_TAG_KEY)
                .map(|key| key.trim().to_string())
                .filter(|key| !key.is_empty())
                .unwrap_or_else(|| DEFAULT_PROTECTION_TAG_KEY.into()),
            user_names: list(ENV_PROTECTED_USER_NAMES),
            path_prefixes,
        })
    }

    /// Why the user is protected, if it is. IAM treats user tag keys and
    /// user names without regard to case, and so does this check.
    pub fn reason(&self, user: &TargetUser) -> Option<String> {
        if let Some(tag) = user
            .tags
            .iter()
            .find(|tag| tag.key.eq_ignore_ascii_case(&self.tag_key) && tag.value.eq_ignore_ascii_case("true"))
        {
            return Some(format!("it carries the tag {}={}", tag.key, tag.value));
        }
        if let Some(name) = self.user_names.iter().find(|name| name.eq_ignore_ascii_case(&user.user_name)) {
            return Some(format!("{name} is in {ENV_PROTECTED_USER_NAMES}"));
        }
        if let Some(prefix) = self.path_prefixes.iter().find(|prefix| user.path.starts_with(prefix.as_str())) {
            return Some(format!("its path {} is under {prefix} ({ENV_PROTECTED_PATH_PREFIXES})", user.path));
        }
        None
    }
}

/// Who the caller is, from STS GetCallerIdentity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    pub arn: String,
    pub user_id: String,
    pub account: String,
}

pub async fn get_caller_identity(sts: &aws_sdk_sts::Client) -> Result<CallerIdentity, OffboardError> {
    let output = sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| classify_sdk_error(e, "sts:GetCallerIdentity", "the caller's own identity"))?;
    Ok(CallerIdentity {
        arn: output.arn().unwrap_or_default().to_string(),
        user_id: output.user_id().unwrap_or_default().to_string(),
        account: output.account().unwrap_or_default().to_string(),
    })
}

/// Refuses the user if it is protected or is the identity doing the work.
pub fn refuse_if_protected(
    user: &TargetUser,
    policy: &ProtectionPolicy,
    caller: &CallerIdentity,
) -> Result<(), OffboardError> {
    if caller.user_id == user.user_id || caller.arn.eq_ignore_ascii_case(&user.arn) {
        return Err(OffboardError::ProtectedUser(format!(
            "user {} ({}) is the identity running this offboarding ({}); it will not delete itself. Run it with another identity.",
            user.user_name, user.arn, caller.arn
        )));
    }
    if let Some(reason) = policy.reason(user) {
        return Err(OffboardError::ProtectedUser(format!(
            "user {} ({}) is protected: {reason}. Nothing was changed; remove the protection first if offboarding is intended.",
            user.user_name, user.arn
        )));
    }
    Ok(())
}

/// Finds the user: GetUser by name (its answer carries the tags), or
/// ListUsers (1000 a page, stopping at the first match) by id first.
pub async fn resolve_user(iam: &Client, user: &UserRef) -> Result<TargetUser, OffboardError> {
    let user_name = match user {
        UserRef::Name(name) => name.clone(),
        UserRef::Id(id) => find_user_name_by_id(iam, id).await?.ok_or_else(|| not_found(user))?,
    };
    let found = get_user(iam, &user_name).await?.ok_or_else(|| not_found(user))?;
    // Between the listing and GetUser the name may have passed to another user.
    if let UserRef::Id(id) = user {
        if found.user_id != *id {
            return Err(replaced(&found, id));
        }
    }
    Ok(found)
}

fn replaced(found: &TargetUser, expected_id: &str) -> OffboardError {
    OffboardError::UserReplaced(format!(
        "user {} now has id {}, not {expected_id} as resolved for this offboarding: it is a different user (the one resolved was deleted or renamed and the name reused). Nothing was changed; offboard the new user with a new execution if that is intended.",
        found.user_name, found.user_id
    ))
}

/// GetUser; `None` when IAM has no such user.
pub async fn get_user(iam: &Client, user_name: &str) -> Result<Option<TargetUser>, OffboardError> {
    let found = match iam.get_user().user_name(user_name).send().await {
        Ok(output) => match output.user {
            Some(user) => user,
            None => return Ok(None),
        },
        Err(error) if is_no_such_entity(&error) => return Ok(None),
        Err(error) => return Err(classify_sdk_error(error, "iam:GetUser", &format!("user {user_name}"))),
    };
    Ok(Some(TargetUser {
        user_name: found.user_name().to_string(),
        user_id: found.user_id().to_string(),
        arn: found.arn().to_string(),
        path: found.path().to_string(),
        create_date: Some(format_date(found.create_date())),
        password_last_used: found.password_last_used().map(format_date),
        tags: found
            .tags()
            .iter()
            .map(|tag| Tag { key: tag.key().to_string(), value: tag.value().to_string() })
            .collect(),
        permissions_boundary: found
            .permissions_boundary()
            .and_then(|boundary| boundary.permissions_boundary_arn())
            .map(String::from),
    }))
}

/// What a mutating stage was told about its target, to be re-checked
/// against IAM before its first change.
#[derive(Debug, Clone, Copy)]
pub struct ExpectedUser<'a> {
    pub user_name: &'a str,
    pub user_id: &'a str,
}

/// The check every mutating stage makes before its first change, because a
/// direct `lambda:Invoke` skips GetUsername: the user still exists with the
/// `UserId` GetUsername resolved (a user deleted and recreated under the
/// same name is someone else), is not protected, and is not the caller.
/// `Ok(None)`: the user no longer exists at all.
pub async fn recheck_user(
    iam: &Client,
    expected: ExpectedUser<'_>,
    policy: &ProtectionPolicy,
    caller: &CallerIdentity,
) -> Result<Option<TargetUser>, OffboardError> {
    let Some(user) = get_user(iam, expected.user_name).await? else {
        return Ok(None);
    };
    if user.user_id != expected.user_id {
        return Err(replaced(&user, expected.user_id));
    }
    refuse_if_protected(&user, policy, caller)?;
    Ok(Some(user))
}

/// The name of the user with `user_id`, if IAM has one (ListUsers, 1000 a
/// page, stopping at the first match).
pub async fn find_user_name_by_id(iam: &Client, user_id: &str) -> Result<Option<String>, OffboardError> {
    let mut users = iam.list_users().max_items(PAGE_SIZE).into_paginator().items().send();
    while let Some(user) = users.next().await {
        let user = user.map_err(|e| classify_sdk_error(e, "iam:ListUsers", &format!("user id {user_id}")))?;
        if user.user_id() == user_id {
            return Ok(Some(user.user_name().to_string()));
        }
    }
    Ok(None)
}

fn not_found(user: &UserRef) -> OffboardError {
    OffboardError::UserNotFound(format!(
        "{user} does not exist in this account. Check the name or id; an already deleted user needs no offboarding."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, path: &str, tags: &[(&str, &str)]) -> TargetUser {
        TargetUser {
            user_name: name.into(),
            user_id: "AIDAEXAMPLE1234567890".into(),
            arn: format!("arn:aws:iam::123456789012:user{path}{name}"),
            path: path.into(),
            create_date: None,
            password_last_used: None,
            tags: tags.iter().map(|(k, v)| Tag { key: (*k).into(), value: (*v).into() }).collect(),
            permissions_boundary: None,
        }
    }

    fn someone_else() -> CallerIdentity {
        CallerIdentity {
            arn: "arn:aws:sts::123456789012:assumed-role/offboard/fn".into(),
            user_id: "AROAEXAMPLE:fn".into(),
            account: "123456789012".into(),
        }
    }

    #[test]
    fn tag_names_and_paths_protect() {
        let policy = ProtectionPolicy {
            tag_key: "offboard:protected".into(),
            user_names: vec!["BreakGlass".into()],
            path_prefixes: vec!["/admin/".into()],
        };
        let caller = someone_else();
        assert!(refuse_if_protected(&user("alice", "/", &[]), &policy, &caller).is_ok());
        assert!(refuse_if_protected(&user("alice", "/", &[("offboard:protected", "false")]), &policy, &caller).is_ok());
        for protected in [
            user("alice", "/", &[("offboard:protected", "true")]),
            user("alice", "/", &[("offboard:protected", "TRUE")]),
            user("breakglass", "/", &[]),
            user("alice", "/admin/", &[]),
            user("alice", "/admin/ops/", &[]),
        ] {
            match refuse_if_protected(&protected, &policy, &caller) {
                Err(OffboardError::ProtectedUser(message)) => assert!(message.contains("protected"), "{message}"),
                other => panic!("{protected:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn tag_keys_compare_without_case_like_iam() {
        let policy = ProtectionPolicy::default();
        let caller = someone_else();
        for key in ["Offboard:Protected", "OFFBOARD:PROTECTED", "offboard:protected"] {
            let err = refuse_if_protected(&user("alice", "/", &[(key, "true")]), &policy, &caller).unwrap_err();
            assert_eq!(err.name(), "ProtectedUser", "{key}");
        }
        assert!(
            refuse_if_protected(&user("alice", "/", &[("offboard:protected-not", "true")]), &policy, &caller).is_ok()
        );
    }

    fn policy_from(vars: &[(&str, &str)]) -> Result<ProtectionPolicy, OffboardError> {
        ProtectionPolicy::from_vars(|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn configuration_is_read_and_bad_path_prefixes_refused_at_init() {
        let policy = policy_from(&[
            (ENV_PROTECTED_USER_NAMES, " breakglass , ,Admin"),
            (ENV_PROTECTED_PATH_PREFIXES, "/admin/,/ops/team/"),
            (ENV_PROTECTION_TAG_KEY, " keep "),
        ])
        .unwrap();
        assert_eq!(policy.user_names, ["breakglass", "Admin"]);
        assert_eq!(policy.path_prefixes, ["/admin/", "/ops/team/"]);
        assert_eq!(policy.tag_key, "keep");
        assert_eq!(policy_from(&[]).unwrap(), ProtectionPolicy::default());
        for bad in ["admin/", "/admin", "admin", "/admin/,ops"] {
            let err = policy_from(&[(ENV_PROTECTED_PATH_PREFIXES, bad)]).unwrap_err();
            assert_eq!(err.name(), "InvalidInput", "{bad}");
            assert!(err.to_string().contains("must start and end with /"), "{err}");
        }
    }

    #[test]
    fn the_callers_own_user_is_refused() {
        let target = user("ops-bot", "/", &[]);
        let caller =
            CallerIdentity { arn: target.arn.clone(), user_id: target.user_id.clone(), account: "123456789012".into() };
        let err = refuse_if_protected(&target, &ProtectionPolicy::default(), &caller).unwrap_err();
        assert_eq!(err.name(), "ProtectedUser");
        assert!(err.to_string().contains("will not delete itself"));
        // Either one identifies the caller: the same id, or the same ARN in any case.
        let by_id = CallerIdentity { arn: "arn:aws:iam::123456789012:user/renamed".into(), ..caller.clone() };
        assert!(refuse_if_protected(&target, &ProtectionPolicy::default(), &by_id).is_err());
        let by_arn = CallerIdentity { arn: target.arn.to_uppercase(), user_id: "AIDAOTHER".into(), ..caller };
        assert!(refuse_if_protected(&target, &ProtectionPolicy::default(), &by_arn).is_err());
    }
}
