//! The clients and settings every stage works with, built once per process
//! (Lambda init, or the CLI) and reused by every invocation.

use std::sync::Arc;

use aws_config::SdkConfig;
use tokio::sync::OnceCell;

use crate::accounts::DEFAULT_ACCOUNT_CONCURRENCY;
use crate::clients;
use crate::errors::OffboardError;
use crate::input::{checked_user_name, validate_user_id};
use crate::removal::VerifyPolicy;
use crate::sessions::{partition_of, AccountSessions, Placement, TargetSession, ENV_TARGET_ROLE_NAME};
use crate::target::{get_caller_identity, recheck_user, CallerIdentity, ExpectedUser, ProtectionPolicy, TargetUser};

/// Clients and settings, built once per process (Lambda init) and reused.
pub struct StageContext {
    pub iam: aws_sdk_iam::Client,
    pub sts: aws_sdk_sts::Client,
    /// The batch stage's user lists and reports; `None` in tests that need none.
    pub s3: Option<aws_sdk_s3::Client>,
    pub protection: ProtectionPolicy,
    pub verify: VerifyPolicy,
    caller: OnceCell<CallerIdentity>,
    /// Sessions in other accounts of the organization, when the deployment
    /// names the target roles (see [`crate::sessions`]).
    pub sessions: Option<Arc<AccountSessions>>,
    /// GetUsername's Organizations listing of an org-wide input; `None` in
    /// the other stages.
    pub organizations: Option<aws_sdk_organizations::Client>,
    /// The Map concurrency over accounts of an org-wide offboarding.
    pub account_concurrency: u32,
}

impl StageContext {
    pub fn new(config: &SdkConfig, protection: ProtectionPolicy) -> Self {
        Self::from_clients(clients::iam_client(config), aws_sdk_sts::Client::new(config), protection)
    }

    pub fn from_clients(iam: aws_sdk_iam::Client, sts: aws_sdk_sts::Client, protection: ProtectionPolicy) -> Self {
        Self {
            iam,
            sts,
            s3: None,
            protection,
            verify: VerifyPolicy::default(),
            caller: OnceCell::new(),
            sessions: None,
            organizations: None,
            account_concurrency: DEFAULT_ACCOUNT_CONCURRENCY,
        }
    }

    /// The context of `placement`'s account when that is another account
    /// than this function's: the same settings with that account's session
    /// (its IAM client, and the assumed role as the caller for the self
    /// check). `None` when the placement is this function's own account.
    pub async fn in_account(&self, placement: &Placement) -> Result<Option<StageContext>, OffboardError> {
        let home = self.caller().await?;
        if placement.account == home.account {
            return Ok(None);
        }
        let sessions = self.sessions.as_ref().ok_or_else(|| {
            OffboardError::InvalidInput(format!(
                "the stage was asked to work in account {} but this deployment names no target role ({ENV_TARGET_ROLE_NAME} is unset): it works in {} only",
                placement.account, home.account
            ))
        })?;
        let session =
            sessions.iam_for(&self.sts, partition_of(&home.arn), &placement.account, &placement.execution).await?;
        Ok(Some(self.with_session(session)))
    }

    /// The same settings working in another account with `session`: its IAM
    /// client, and its assumed role as the caller for the self check.
    pub fn with_session(&self, session: TargetSession) -> StageContext {
        StageContext {
            iam: session.iam,
            sts: self.sts.clone(),
            s3: self.s3.clone(),
            protection: self.protection.clone(),
            verify: self.verify,
            caller: OnceCell::new_with(Some(session.caller)),
            sessions: None,
            organizations: None,
            account_concurrency: self.account_concurrency,
        }
    }

    /// The identity this process runs as, asked of STS once and then cached.
    pub async fn caller(&self) -> Result<&CallerIdentity, OffboardError> {
        self.caller.get_or_try_init(|| get_caller_identity(&self.sts)).await
    }

    /// The re-check every mutating stage makes before its first change (see
    /// [`recheck_user`]); `None` when the user no longer exists.
    pub(crate) async fn recheck(&self, user_name: &str, user_id: &str) -> Result<Option<TargetUser>, OffboardError> {
        checked_user_name(user_name)?;
        validate_user_id(user_id)?;
        let caller = self.caller().await?;
        recheck_user(&self.iam, ExpectedUser { user_name, user_id }, &self.protection, caller).await
    }

    /// [`Self::recheck`] for stages that need the user to still exist.
    pub(crate) async fn recheck_existing(&self, user_name: &str, user_id: &str) -> Result<TargetUser, OffboardError> {
        self.recheck(user_name, user_id).await?.ok_or_else(|| {
            OffboardError::UserNotFound(format!(
                "user {user_name} ({user_id}) no longer exists; nothing was changed. Someone else deleted it during the offboarding."
            ))
        })
    }
}
