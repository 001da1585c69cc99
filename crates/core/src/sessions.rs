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

use crate::accounts::validate_account_id;
use crate::budget::BudgetConfig;
use crate::clients;
use crate::errors::{classify_sdk_error, OffboardError};

/// The name of the role each target account holds for the stages; the
/// same parameter (`TargetRoleName`) in both templates.
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
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c);
    let mut name: String = format!("offboard-{execution}")
        .chars()
        .map(|c| if allowed(c) { c } else { '-' })
        .take(64)
        .collect();
    if name.len() < 2 {
        name.push_str("-x");
    }
    name
}

/// AssumeRole into the target role; an account without it, or a role that
/// does not trust this function, is `AccessDenied` naming both.
pub async fn assume_target_role(
    sts: &aws_sdk_sts::Client,
    role_arn: &str,
    session_name: &str,
) -> Result<Credentials, OffboardError> {
    let output = sts
        .assume_role()
        .role_arn(role_arn)
        .role_session_name(session_name)
        .duration_seconds(SESSION_LENGTH.as_secs() as i32)
        .send()
        .await
        .map_err(|error| classify_sdk_error(error, "sts:AssumeRole", role_arn))?;
    let credentials = output.credentials().ok_or_else(|| {
        OffboardError::AccessDenied(format!("sts:AssumeRole on {role_arn} returned no credentials"))
    })?;
    let expires = SystemTime::try_from(*credentials.expiration()).unwrap_or_else(|_| SystemTime::now());
    Ok(Credentials::new(
        credentials.access_key_id(),
        credentials.secret_access_key(),
        Some(credentials.session_token().to_string()),
        Some(expires),
        "iam-offboard-target-role",
    ))
}

/// The IAM clients of the target accounts one warm process has worked in,
/// keyed by account and execution.
#[derive(Debug)]
pub struct AccountSessions {
    config: SdkConfig,
    role_name: String,
    budget: Option<BudgetConfig>,
    kept: Mutex<HashMap<(String, String), (aws_sdk_iam::Client, SystemTime)>>,
}

impl AccountSessions {
    pub fn new(config: SdkConfig, role_name: String, budget: Option<BudgetConfig>) -> Self {
        Self { config, role_name, budget, kept: Mutex::new(HashMap::new()) }
    }

    pub fn role_name(&self) -> &str {
        &self.role_name
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
    ) -> Result<aws_sdk_iam::Client, OffboardError> {
        validate_account_id(account)?;
        let key = (account.to_string(), execution.to_string());
        let mut kept = self.kept.lock().await;
        if let Some((client, ends)) = kept.get(&key) {
            if *ends > SystemTime::now() + RENEW_BEFORE_END {
                return Ok(client.clone());
            }
        }
        let role_arn = target_role_arn(partition, account, &self.role_name);
        let credentials = assume_target_role(sts, &role_arn, &session_name(execution)).await?;
        let ends = credentials.expiry().unwrap_or_else(SystemTime::now);
        let config = self
            .config
            .clone()
            .into_builder()
            .credentials_provider(SharedCredentialsProvider::new(credentials))
            .build();
        let budget = self.budget.clone().map(|budget| budget.for_account(account));
        let client = clients::budgeted_iam_client(&config, budget);
        kept.retain(|_, (_, ends)| *ends > SystemTime::now());
        kept.insert(key, (client.clone(), ends));
        Ok(client)
    }
}
