//! GetUsername: validate the execution input, resolve the user, refuse
//! protected users and the caller itself. Its function also answers an
//! org-wide input with the accounts to offboard in ([`GetUsernameOrAccounts`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::context::StageContext;
use crate::errors::{invalid_input as invalid, OffboardError};
use crate::fanout::{resolve_accounts, AccountFanOut, ResolveAccountsRequest, RESOLVE_ACCOUNTS};
use crate::input::parse_execution_input;
use crate::quarantine::refuse_if_quarantined;
use crate::stage::{Stage, Timed};
use crate::target::{refuse_if_protected, resolve_user, TargetUser};
use crate::workflow::Subject;

/// GetUsername's output: the user, and the execution's options carried along.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Resolution {
    pub user: TargetUser,
    /// The account the user was resolved in: every later stage of the
    /// execution works there (the state machine passes it as `Account`).
    #[serde(default)]
    pub account: String,
    pub dry_run: bool,
    pub context: Value,
    /// The end of the grace period (`GraceDays`/`DeleteAfter`): quarantine
    /// now, delete then. `null`: delete now.
    #[serde(default)]
    pub delete_after: Option<String>,
    #[serde(default)]
    pub duration_ms: Option<u64>,
}

impl Timed for Resolution {
    fn set_duration_ms(&mut self, duration_ms: u64) {
        self.duration_ms = Some(duration_ms);
    }
}
pub struct GetUsername;

impl Stage for GetUsername {
    const NAME: &'static str = "GetUsername";
    type Request = Value;
    type Response = Resolution;

    fn subject(request: &Value) -> Subject<'_> {
        Subject { user_name: request.get("UserName").and_then(Value::as_str), user_id: None }
    }

    async fn run(ctx: &StageContext, request: Value) -> Result<Resolution, OffboardError> {
        let request = parse_execution_input(&request)?;
        let user = resolve_user(&ctx.iam, &request.user).await?;
        tracing::Span::current().record("user_name", user.user_name.as_str());
        refuse_if_protected(&user, &ctx.protection, ctx.caller().await?)?;
        let delete_after = request.delete_after.map(crate::input::format_timestamp);
        if delete_after.is_some() {
            // GetUsername runs before its own execution's quarantine: any
            // quarantine tag, even with the same time, is another one's.
            refuse_if_quarantined(&user)?;
        }
        let account = ctx.caller().await?.account.clone();
        tracing::info!(user_id = %user.user_id, account = %account, dry_run = request.dry_run, delete_after = ?delete_after, "user resolved");
        Ok(Resolution {
            user,
            account,
            dry_run: request.dry_run,
            context: request.context,
            delete_after,
            duration_ms: None,
        })
    }
}
/// The field under which the state machine hands GetUsername the execution's input.
pub const ENVELOPED_INPUT: &str = "Input";

/// GetUsername's function answers both: a user resolved in one account, or
/// an org-wide input's accounts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Entry {
    User(Box<Resolution>),
    Accounts(AccountFanOut),
}

impl Timed for Entry {
    fn set_duration_ms(&mut self, duration_ms: u64) {
        match self {
            Self::User(resolution) => resolution.set_duration_ms(duration_ms),
            Self::Accounts(fan_out) => fan_out.set_duration_ms(duration_ms),
        }
    }
}

/// The stage GetUsername's function serves: [`GetUsername`], or
/// [`resolve_accounts`] for a payload under [`RESOLVE_ACCOUNTS`].
pub struct GetUsernameOrAccounts;

impl Stage for GetUsernameOrAccounts {
    const NAME: &'static str = GetUsername::NAME;
    const USES_ORGANIZATIONS: bool = true;
    type Request = Value;
    type Response = Entry;

    fn subject(request: &Value) -> Subject<'_> {
        let input = request.get(RESOLVE_ACCOUNTS).and_then(|fan_out| fan_out.get("Input")).unwrap_or(request);
        GetUsername::subject(input)
    }

    /// The state machine sends GetUsername the execution's input as
    /// `{"Input": <input>}` (a payload is an object of its own fields).
    fn unwrap_payload(payload: Value) -> Value {
        match payload {
            Value::Object(mut fields) if fields.len() == 1 && fields.contains_key(ENVELOPED_INPUT) => {
                fields.remove(ENVELOPED_INPUT).unwrap_or_default()
            }
            payload => payload,
        }
    }

    async fn run(ctx: &StageContext, request: Value) -> Result<Entry, OffboardError> {
        let fan_out = match request {
            Value::Object(mut fields) if fields.contains_key(RESOLVE_ACCOUNTS) => {
                if fields.len() > 1 {
                    return Err(invalid(format!("{RESOLVE_ACCOUNTS} comes alone")));
                }
                fields.remove(RESOLVE_ACCOUNTS).unwrap_or_default()
            }
            request => return GetUsername::run(ctx, request).await.map(|user| Entry::User(Box::new(user))),
        };
        let request: ResolveAccountsRequest = serde_json::from_value(fan_out)
            .map_err(|error| invalid(format!("{RESOLVE_ACCOUNTS} is malformed: {error}")))?;
        resolve_accounts(ctx, request).await.map(Entry::Accounts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_span_names_the_user_of_either_payload() {
        assert_eq!(GetUsernameOrAccounts::subject(&json!({"UserName": "alice"})).user_name, Some("alice"));
        let fan_out = json!({"ResolveAccounts": {"Input": {"UserName": "bob", "Accounts": ["111122223333"]}, "ExecutionName": "x"}});
        assert_eq!(GetUsernameOrAccounts::subject(&fan_out).user_name, Some("bob"));
        assert_eq!(GetUsernameOrAccounts::subject(&json!({"IAMUserId": "AIDAEXAMPLE"})).user_name, None);
    }
}
