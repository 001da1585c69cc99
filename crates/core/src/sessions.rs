//! Working in another account of the organization: a stage whose payload
//! names an account other than its own assumes the target role there
//! (`infra/target-account.yaml`) and makes its IAM calls with that session.
//! Sessions are short (STS's minimum, 15 minutes), named after the execution
//! so CloudTrail in the target account says which offboarding acted, and
//! kept per account and execution in the warm process until they near their
//! end.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_sdk_iam::config::{Credentials, SharedCredentialsProvider};
use tokio::sync::Mutex;

use serde_json::Value;

use crate::accounts::validate_account_id;
use crate::budget::IamBudget;
use crate::clients;
use crate::errors::{classify_sdk_error, invalid_input as invalid, OffboardError};
use crate::input::is_iam_name_char;
use crate::target::CallerIdentity;

/// The prefix of the roles each target account holds, one per stage
/// (`<prefix>-<Stage>`); the same parameter (`TargetRoleName`) in both
/// templates.
pub const ENV_TARGET_ROLE_NAME: &str = "OFFBOARD_TARGET_ROLE_NAME";

/// STS's shortest session (AssumeRole `DurationSeconds`: 900 to the role's
/// maximum); a stage runs for at most its timeout, 300 s by default.
pub const SESSION_LENGTH: Duration = Duration::from_secs(900);
/// A kept session this close to its end is replaced before a stage uses it.
pub const RENEW_BEFORE_END: Duration = Duration::from_secs(5 * 60);

/// The target role in `account`: `arn:<partition>:iam::<account>:role/<name>`,
/// the partition being the one the function runs in (from its own ARN).
pub fn target_role_arn(partition: &str, account: &str, role_name: &str) -> String {
    format!("arn:{partition}:iam::{account}:role/{role_name}")
}

/// The partition of an ARN (`arn:aws-us-gov:...` → `aws-us-gov`).
pub fn partition_of(arn: &str) -> &str {
    arn.split(':').nth(1).filter(|part| !part.is_empty()).unwrap_or("aws")
}

/// A role session name from the execution's name: AssumeRole allows
/// `[\w+=,.@-]`, 2 to 64 characters; anything else becomes `-`.
pub fn session_name(execution: &str) -> String {
    let mut name: String =
        format!("offboard-{execution}").chars().map(|c| if is_iam_name_char(c) { c } else { '-' }).take(64).collect();
    if name.len() < 2 {
        name.push_str("-x");
    }
    name
}

/// Where a stage's payload says it runs: another account of the
/// organization, for one execution. The state machine adds `Account` and
/// `ExecutionName` to a stage's payload beside the stage's own fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub account: String,
    pub execution: String,
}

pub const ACCOUNT_FIELD: &str = "Account";
pub const EXECUTION_FIELD: &str = "ExecutionName";

/// Takes the placement fields out of a stage's payload: both or neither.
pub fn split_placement(payload: Value) -> Result<(Option<Placement>, Value), OffboardError> {
    let Value::Object(mut fields) = payload else {
        return Ok((None, payload));
    };
    match (fields.remove(ACCOUNT_FIELD), fields.remove(EXECUTION_FIELD)) {
        (None, None) => Ok((None, Value::Object(fields))),
        (Some(Value::String(account)), Some(Value::String(execution))) => {
            validate_account_id(&account)?;
            if execution.is_empty() || execution.len() > 80 {
                return Err(invalid(format!("{EXECUTION_FIELD} must be 1-80 characters, got {execution:?}")));
            }
            Ok((Some(Placement { account, execution }), Value::Object(fields)))
        }
        (account, execution) => Err(invalid(format!(
            "a stage payload names its account with both {ACCOUNT_FIELD} and {EXECUTION_FIELD} as strings, got {account:?} and {execution:?}"
        ))),
    }
}

/// A stage's session in a target account: its IAM client and who it is
/// there (the assumed role), for the self check.
#[derive(Debug, Clone)]
pub struct TargetSession {
    pub iam: aws_sdk_iam::Client,
    pub caller: CallerIdentity,
}

/// AssumeRole into the target role; an account without it, or a role that
/// does not trust this function, is `AccessDenied` naming both.
pub async fn assume_target_role(
    sts: &aws_sdk_sts::Client,
    role_arn: &str,
    session_name: &str,
) -> Result<(Credentials, CallerIdentity), OffboardError> {
    let output = sts
        .assume_role()
        .role_arn(role_arn)
        .role_session_name(session_name)
        .duration_seconds(SESSION_LENGTH.as_secs() as i32)
        .send()
        .await
        .map_err(|error| classify_sdk_error(error, "sts:AssumeRole", role_arn))?;
    let credentials = output
        .credentials()
        .ok_or_else(|| OffboardError::AccessDenied(format!("sts:AssumeRole on {role_arn} returned no credentials")))?;
    let expires = SystemTime::try_from(*credentials.expiration()).unwrap_or_else(|_| SystemTime::now());
    let assumed = output.assumed_role_user();
    let arn = assumed.map(|user| user.arn().to_string()).unwrap_or_default();
    let caller = CallerIdentity {
        account: arn.split(':').nth(4).unwrap_or_default().to_string(),
        user_id: assumed.map(|user| user.assumed_role_id().to_string()).unwrap_or_default(),
        arn,
    };
    let credentials = Credentials::new(
        credentials.access_key_id(),
        credentials.secret_access_key(),
        Some(credentials.session_token().to_string()),
        Some(expires),
        "iam-offboard-target-role",
    );
    Ok((credentials, caller))
}

/// The IAM clients of the target accounts one warm process has worked in,
/// keyed by account and execution.
#[derive(Debug)]
pub struct AccountSessions {
    config: SdkConfig,
    role_name: String,
    /// The deployment's budget, its DynamoDB client with the function's own
    /// credentials (the table is in the deployment's account).
    budget: Option<IamBudget>,
    kept: Mutex<HashMap<(String, String), (TargetSession, SystemTime)>>,
}

impl AccountSessions {
    pub fn new(config: SdkConfig, role_name: String, budget: Option<IamBudget>) -> Self {
        Self { config, role_name, budget, kept: Mutex::new(HashMap::new()) }
    }

    /// The sessions of stage `stage`'s function when its deployment names
    /// the target roles' prefix (`OFFBOARD_TARGET_ROLE_NAME`): it assumes
    /// `<prefix>-<stage>`, its own stage's role, and no other. `None`
    /// without a prefix.
    pub fn from_env(config: &SdkConfig, budget: Option<IamBudget>, stage: &str) -> Result<Option<Self>, OffboardError> {
        let name = std::env::var(ENV_TARGET_ROLE_NAME).unwrap_or_default().trim().to_string();
        if name.is_empty() {
            return Ok(None);
        }
        let valid = name.len() <= 24 && name.chars().all(is_iam_name_char);
        if !valid {
            return Err(OffboardError::InvalidInput(format!(
                "{ENV_TARGET_ROLE_NAME} holds {name:?}: a role name prefix of at most 24 characters of letters, digits and +=,.@_-"
            )));
        }
        Ok(Some(Self::new(config.clone(), format!("{name}-{stage}"), budget)))
    }

    /// The IAM client for `account`, assuming the target role with `sts`
    /// unless a session for this account and execution is still fresh. Its
    /// calls take slots of that account's IAM budget, not the home account's:
    /// IAM throttles each account on its own.
    pub async fn iam_for(
        &self,
        sts: &aws_sdk_sts::Client,
        partition: &str,
        account: &str,
        execution: &str,
    ) -> Result<TargetSession, OffboardError> {
        validate_account_id(account)?;
        let key = (account.to_string(), execution.to_string());
        let mut kept = self.kept.lock().await;
        if let Some((session, ends)) = kept.get(&key) {
            if *ends > SystemTime::now() + RENEW_BEFORE_END {
                return Ok(session.clone());
            }
        }
        let role_arn = target_role_arn(partition, account, &self.role_name);
        let (credentials, caller) = assume_target_role(sts, &role_arn, &session_name(execution)).await?;
        let ends = credentials.expiry().unwrap_or_else(SystemTime::now);
        let config = self
            .config
            .clone()
            .into_builder()
            .credentials_provider(SharedCredentialsProvider::new(credentials))
            .build();
        let budget = self.budget.as_ref().map(|budget| budget.for_account(account));
        let session = TargetSession { iam: clients::budgeted_iam_client(&config, budget), caller };
        kept.retain(|_, (_, ends)| *ends > SystemTime::now());
        kept.insert(key, (session.clone(), ends));
        Ok(session)
    }
}
