//! The seven stages (six to offboard, QuarantineUser for a grace period),
//! each a request type, a response type and a `run`. The
//! Lambda binaries and the CLI both drive them through [`invoke`].

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use aws_config::SdkConfig;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::OnceCell;
use tracing::Instrument;

use crate::budget::BudgetConfig;
use crate::clients;
use crate::deadline;
use crate::errors::OffboardError;
use crate::input::{parse_execution_input, parse_timestamp, validate_user_id, validate_user_name};
use crate::inventory::{
    gather_credentials, gather_permissions, list_mfa_devices, CredentialInventory, MfaDevice, Outcome,
    PermissionInventory,
};
use crate::mfa::{delete_left_unassigned, remove_mfa_device, MfaClass};
use crate::quarantine::{
    quarantine_user, quarantined_until, refuse_if_quarantined, refuse_if_quarantined_otherwise, QuarantineRecord,
};
use crate::record::{AuditRecord, Items};
use crate::removal::{delete_credentials, delete_permissions, delete_user_and_verify, UserDeletion, VerifyPolicy};
use crate::sessions::{partition_of, AccountSessions, Placement, TargetSession, ENV_TARGET_ROLE_NAME};
use crate::target::{
    get_caller_identity, recheck_user, refuse_if_protected, resolve_user, CallerIdentity, ExpectedUser,
    ProtectionPolicy, TargetUser,
};

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
            account_concurrency: crate::fanout::DEFAULT_ACCOUNT_CONCURRENCY,
        }
    }

    /// A Lambda function's context: its AWS configuration
    /// ([`clients::lambda_config`]), the `OFFBOARD_PROTECTED_*` variables and
    /// the IAM budget (`OFFBOARD_IAM_*`, see [`crate::budget`]). A bad
    /// protection or budget configuration is refused here, at init.
    /// The S3 client only for a stage that uses it ([`Stage::USES_S3`], a
    /// constant): the other binaries then link no S3 code at all.
    pub async fn from_env<S: Stage>() -> Result<Self, OffboardError> {
        let protection = ProtectionPolicy::from_env()?;
        let budget = BudgetConfig::from_env()?;
        let config = clients::lambda_config().await;
        let sessions = AccountSessions::from_env(&config, budget.clone(), S::NAME)?.map(Arc::new);
        let iam = clients::budgeted_iam_client(&config, budget);
        let mut ctx = Self::from_clients(iam, aws_sdk_sts::Client::new(&config), protection);
        ctx.sessions = sessions;
        if S::USES_S3 {
            ctx.s3 = Some(clients::s3_client(&config));
        }
        if S::USES_ORGANIZATIONS {
            ctx.organizations = Some(aws_sdk_organizations::Client::new(&config));
            ctx.account_concurrency = crate::fanout::account_concurrency_from_env()?;
        }
        Ok(ctx)
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
    async fn recheck(&self, user_name: &str, user_id: &str) -> Result<Option<TargetUser>, OffboardError> {
        checked_user_name(user_name)?;
        validate_user_id(user_id)?;
        let caller = self.caller().await?;
        recheck_user(&self.iam, ExpectedUser { user_name, user_id }, &self.protection, caller).await
    }

    /// [`Self::recheck`] for stages that need the user to still exist.
    async fn recheck_existing(&self, user_name: &str, user_id: &str) -> Result<TargetUser, OffboardError> {
        self.recheck(user_name, user_id).await?.ok_or_else(|| {
            OffboardError::UserNotFound(format!(
                "user {user_name} ({user_id}) no longer exists; nothing was changed. Someone else deleted it during the offboarding."
            ))
        })
    }
}

pub trait Stage {
    /// The state's name in the state machine; also the key in `Timings`.
    const NAME: &'static str;
    /// Reads S3 (the batch stage): its process builds an S3 client at init.
    const USES_S3: bool = false;
    /// Lists the organization's accounts (GetUsername's function).
    const USES_ORGANIZATIONS: bool = false;
    type Request: DeserializeOwned;
    type Response: Serialize + Timed;
    fn user_name(request: &Self::Request) -> Option<&str>;
    fn run(ctx: &StageContext, request: Self::Request) -> impl Future<Output = Result<Self::Response, OffboardError>>;
}

/// Responses record how long their stage took.
pub trait Timed {
    fn set_duration_ms(&mut self, duration_ms: u64);
}

/// Runs one stage inside a span carrying the stage and user name, and
/// stamps the response with the stage's duration.
pub async fn invoke<S: Stage>(ctx: &StageContext, request: S::Request) -> Result<S::Response, OffboardError> {
    let span = tracing::info_span!("stage", stage = S::NAME, user_name = tracing::field::Empty);
    if let Some(user_name) = S::user_name(&request) {
        span.record("user_name", user_name);
    }
    let started = Instant::now();
    let run = S::run(ctx, request).instrument(span.clone());
    // Backstop for calls not guarded by `deadline::before_stop`, a second
    // later so that a removal stage's own itemised error comes first.
    let result = match deadline::current() {
        Some(at) => tokio::time::timeout_at(at + std::time::Duration::from_secs(1), run)
            .await
            .unwrap_or_else(|_| Err(deadline::out_of_time(S::NAME))),
        None => run.await,
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    let _entered = span.enter();
    match result {
        Ok(mut response) => {
            response.set_duration_ms(duration_ms);
            tracing::info!(duration_ms, "stage succeeded");
            Ok(response)
        }
        Err(error) => {
            tracing::error!(error_type = error.name(), error = %error, duration_ms, "stage failed");
            Err(error)
        }
    }
}

/// Parses a stage's JSON payload; a malformed one is `InvalidInput`.
pub fn parse_request<S: Stage>(payload: Value) -> Result<S::Request, OffboardError> {
    serde_json::from_value(payload)
        .map_err(|error| OffboardError::InvalidInput(format!("{} input is malformed: {error}", S::NAME)))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct UserRequest {
    pub user_name: String,
}

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

impl Timed for CredentialInventory {
    fn set_duration_ms(&mut self, duration_ms: u64) {
        self.duration_ms = Some(duration_ms);
    }
}

impl Timed for PermissionInventory {
    fn set_duration_ms(&mut self, duration_ms: u64) {
        self.duration_ms = Some(duration_ms);
    }
}

impl Timed for AuditRecord {
    fn set_duration_ms(&mut self, duration_ms: u64) {
        self.timings.insert(DeleteIamUserAndVerify::NAME.into(), duration_ms);
    }
}

fn checked_user_name(user_name: &str) -> Result<&str, OffboardError> {
    validate_user_name(user_name).map(|()| user_name)
}

pub struct GetUsername;

impl Stage for GetUsername {
    const NAME: &'static str = "GetUsername";
    type Request = Value;
    type Response = Resolution;

    fn user_name(request: &Value) -> Option<&str> {
        request.get("UserName").and_then(Value::as_str)
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

pub struct GetKeysCertificatesMfaAndCredentials;

impl Stage for GetKeysCertificatesMfaAndCredentials {
    const NAME: &'static str = "GetKeysCertificatesMfaAndCredentials";
    type Request = UserRequest;
    type Response = CredentialInventory;

    fn user_name(request: &UserRequest) -> Option<&str> {
        Some(&request.user_name)
    }

    async fn run(ctx: &StageContext, request: UserRequest) -> Result<CredentialInventory, OffboardError> {
        let inventory = gather_credentials(&ctx.iam, checked_user_name(&request.user_name)?).await?;
        tracing::info!(items = inventory.item_count(), mfa_devices = inventory.mfa_devices.len(), "credentials listed");
        Ok(inventory)
    }
}

pub struct GetGroupsAndPolicies;

impl Stage for GetGroupsAndPolicies {
    const NAME: &'static str = "GetGroupsAndPolicies";
    type Request = UserRequest;
    type Response = PermissionInventory;

    fn user_name(request: &UserRequest) -> Option<&str> {
        Some(&request.user_name)
    }

    async fn run(ctx: &StageContext, request: UserRequest) -> Result<PermissionInventory, OffboardError> {
        let inventory = gather_permissions(&ctx.iam, checked_user_name(&request.user_name)?).await?;
        tracing::info!(items = inventory.item_count(), "groups and policies listed");
        Ok(inventory)
    }
}

/// Either the whole credential inventory, or one MFA device as the state
/// machine's Map sends it (with the route its Choice picked).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CredentialRemovalRequest {
    pub user_name: String,
    /// The id GetUsername resolved: re-checked before the first change.
    pub user_id: String,
    #[serde(default)]
    pub credentials: Option<CredentialInventory>,
    #[serde(default, rename = "MFADevice")]
    pub mfa_device: Option<MfaDevice>,
    #[serde(default)]
    pub handled_as: Option<MfaClass>,
    /// The state machine's `$$.State.RetryCount` for this MFA task: on a
    /// retry a serial the user no longer holds was most likely deactivated
    /// by the earlier attempt, so it is recorded rather than refused.
    #[serde(default)]
    pub retry_count: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum CredentialRemoval {
    Credentials(CredentialInventory),
    MfaDevice(MfaDevice),
}

impl Timed for CredentialRemoval {
    fn set_duration_ms(&mut self, duration_ms: u64) {
        match self {
            Self::Credentials(inventory) => inventory.duration_ms = Some(duration_ms),
            Self::MfaDevice(device) => device.duration_ms = Some(duration_ms),
        }
    }
}

pub struct DeleteKeysCertificatesMfaAndCredentials;

impl Stage for DeleteKeysCertificatesMfaAndCredentials {
    const NAME: &'static str = "DeleteKeysCertificatesMfaAndCredentials";
    type Request = CredentialRemovalRequest;
    type Response = CredentialRemoval;

    fn user_name(request: &CredentialRemovalRequest) -> Option<&str> {
        Some(&request.user_name)
    }

    async fn run(ctx: &StageContext, request: CredentialRemovalRequest) -> Result<CredentialRemoval, OffboardError> {
        let user_name = request.user_name.as_str();
        match (request.credentials, request.mfa_device, request.handled_as) {
            (Some(credentials), None, None) => {
                ctx.recheck_existing(user_name, &request.user_id).await?;
                let removed = delete_credentials(&ctx.iam, user_name, &request.user_id, credentials).await?;
                tracing::info!(items = removed.item_count(), "credentials removed");
                Ok(CredentialRemoval::Credentials(removed))
            }
            (None, Some(device), handled_as) => {
                ctx.recheck_existing(user_name, &request.user_id).await?;
                let handled_as = handled_as.unwrap_or(device.handled_as);
                let held = list_mfa_devices(&ctx.iam, user_name).await?;
                if held.iter().any(|d| d.serial_number == device.serial_number) {
                    return Ok(CredentialRemoval::MfaDevice(
                        remove_mfa_device(&ctx.iam, user_name, &request.user_id, device, handled_as).await?,
                    ));
                }
                if request.retry_count == 0 {
                    return Err(OffboardError::InvalidInput(format!(
                        "user {user_name} holds no MFA device {}; nothing was changed. Send a serial from the user's own inventory.",
                        device.serial_number
                    )));
                }
                // The earlier attempt most likely deactivated it. Its device is
                // deleted only when marked as taken from this very user: an
                // unmarked one may be another identity's.
                let virtual_device_deletion = match handled_as {
                    MfaClass::Virtual => {
                        delete_left_unassigned(&ctx.iam, &device.serial_number, &request.user_id).await?
                    }
                    MfaClass::NonVirtual => None,
                };
                tracing::info!(serial_number = %device.serial_number, retry_count = request.retry_count,
                    ?virtual_device_deletion, "the user no longer holds this MFA device: an earlier attempt deactivated it");
                Ok(CredentialRemoval::MfaDevice(MfaDevice {
                    handled_as,
                    deactivation: Some(Outcome::AlreadyAbsent),
                    virtual_device_deletion,
                    ..device
                }))
            }
            (Some(_), Some(_), _) => Err(OffboardError::InvalidInput(format!(
                "{} input has both Credentials and MFADevice; send one",
                Self::NAME
            ))),
            (None, None, _) => Err(OffboardError::InvalidInput(format!(
                "{} input has neither Credentials nor MFADevice; send one",
                Self::NAME
            ))),
            (Some(_), None, Some(_)) => Err(OffboardError::InvalidInput(format!(
                "{} input: HandledAs goes with MFADevice, not with Credentials",
                Self::NAME
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PermissionRemovalRequest {
    pub user_name: String,
    /// The id GetUsername resolved: re-checked before the first change.
    pub user_id: String,
    pub permissions: PermissionInventory,
}

pub struct DeleteGroupsAndPolicies;

impl Stage for DeleteGroupsAndPolicies {
    const NAME: &'static str = "DeleteGroupsAndPolicies";
    type Request = PermissionRemovalRequest;
    type Response = PermissionInventory;

    fn user_name(request: &PermissionRemovalRequest) -> Option<&str> {
        Some(&request.user_name)
    }

    async fn run(ctx: &StageContext, request: PermissionRemovalRequest) -> Result<PermissionInventory, OffboardError> {
        ctx.recheck_existing(&request.user_name, &request.user_id).await?;
        let removed = delete_permissions(&ctx.iam, &request.user_name, request.permissions).await?;
        tracing::info!(items = removed.item_count(), "groups and policies removed");
        Ok(removed)
    }
}

/// What one round of removal stages produced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RoundRemoval {
    pub credentials: CredentialInventory,
    #[serde(rename = "MFADevices")]
    pub mfa_devices: Vec<MfaDevice>,
    pub permissions: PermissionInventory,
}

impl RoundRemoval {
    fn into_items(self) -> Items {
        let mut credentials = self.credentials;
        credentials.mfa_devices.extend(self.mfa_devices);
        Items::from_inventories(credentials, self.permissions)
    }

    /// Milliseconds in DeleteKeysCertificatesMfaAndCredentials (the
    /// credentials call plus each MFA device's) and DeleteGroupsAndPolicies.
    fn timings(&self) -> [(&'static str, u64); 2] {
        let credential_ms = self.credentials.duration_ms.unwrap_or(0)
            + self.mfa_devices.iter().filter_map(|device| device.duration_ms).sum::<u64>();
        [
            (DeleteKeysCertificatesMfaAndCredentials::NAME, credential_ms),
            (DeleteGroupsAndPolicies::NAME, self.permissions.duration_ms.unwrap_or(0)),
        ]
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct UserDeletionRequest {
    pub target: Resolution,
    pub removed: RoundRemoval,
    /// Durations of the stages whose output is not part of this request.
    #[serde(default)]
    pub timings: BTreeMap<String, Option<u64>>,
    /// The DeleteConflict round counter kept by the state machine.
    #[serde(default)]
    pub round: u32,
    /// Earlier rounds' removals, nested as the state machine's
    /// `States.Array($.EarlierRounds, $.Removed)` builds them.
    #[serde(default)]
    pub earlier_rounds: Value,
    /// The quarantine this deletion ends, carried into the record.
    #[serde(default)]
    pub quarantine: Option<QuarantineRecord>,
}

/// Flattens `EarlierRounds` (`[[[], r1], r2]`, or null) into the rounds in order.
pub fn flatten_rounds(value: Value, into: &mut Vec<RoundRemoval>) -> Result<(), OffboardError> {
    match value {
        Value::Null => Ok(()),
        Value::Array(values) => values.into_iter().try_for_each(|value| flatten_rounds(value, into)),
        round @ Value::Object(_) => {
            into.push(serde_json::from_value(round).map_err(|error| {
                OffboardError::InvalidInput(format!("EarlierRounds holds a malformed round: {error}"))
            })?);
            Ok(())
        }
        other => Err(OffboardError::InvalidInput(format!("EarlierRounds must hold rounds, found {other}"))),
    }
}

/// Assembles the audit record of a completed offboarding.
pub fn build_record(
    request: UserDeletionRequest,
    user_deletion: crate::removal::UserDeletion,
) -> Result<AuditRecord, OffboardError> {
    let mut timings: BTreeMap<String, u64> =
        request.timings.into_iter().filter_map(|(stage, ms)| ms.map(|ms| (stage, ms))).collect();
    timings.insert(GetUsername::NAME.into(), request.target.duration_ms.unwrap_or(0));
    let mut earlier = Vec::new();
    flatten_rounds(request.earlier_rounds, &mut earlier)?;
    let mut items = Items::default();
    for round in earlier.into_iter().chain([request.removed]) {
        for (stage, ms) in round.timings() {
            *timings.entry(stage.into()).or_default() += ms;
        }
        let mut round_items = round.into_items();
        round_items.absorb(std::mem::take(&mut items));
        items = round_items;
    }
    Ok(AuditRecord {
        user: request.target.user,
        dry_run: false,
        context: request.target.context,
        items,
        user_deletion: Some(user_deletion),
        rounds: request.round,
        timings,
        quarantine: request.quarantine,
    })
}

/// The plan: what would be removed (the whole record of a dry run, and
/// plan.json before a real run's first change). The state machine's
/// BuildPlan Pass state builds the same document.
pub fn build_plan(
    target: Resolution,
    credentials: CredentialInventory,
    permissions: PermissionInventory,
) -> AuditRecord {
    let timings = [
        (GetUsername::NAME, target.duration_ms),
        (GetKeysCertificatesMfaAndCredentials::NAME, credentials.duration_ms),
        (GetGroupsAndPolicies::NAME, permissions.duration_ms),
    ]
    .into_iter()
    .filter_map(|(stage, ms)| ms.map(|ms| (stage.to_string(), ms)))
    .collect();
    AuditRecord {
        dry_run: target.dry_run,
        user: target.user,
        context: target.context,
        items: Items::from_inventories(credentials, permissions),
        user_deletion: None,
        rounds: 0,
        timings,
        quarantine: None,
    }
}

pub struct DeleteIamUserAndVerify;

impl Stage for DeleteIamUserAndVerify {
    const NAME: &'static str = "DeleteIAMUserAndVerify";
    type Request = UserDeletionRequest;
    type Response = AuditRecord;

    fn user_name(request: &UserDeletionRequest) -> Option<&str> {
        Some(&request.target.user.user_name)
    }

    async fn run(ctx: &StageContext, request: UserDeletionRequest) -> Result<AuditRecord, OffboardError> {
        if request.target.dry_run {
            return Err(OffboardError::InvalidInput(format!(
                "{} was given a dry run's target; a dry run deletes nothing",
                Self::NAME
            )));
        }
        let user = &request.target.user;
        // A user already gone (an earlier attempt deleted it) is verified, not deleted again.
        let deletion = match ctx.recheck(&user.user_name, &user.user_id).await? {
            Some(_) => delete_user_and_verify(&ctx.iam, &user.user_name, ctx.verify).await?,
            None => UserDeletion { outcome: Outcome::AlreadyAbsent, verification_attempts: 1 },
        };
        tracing::info!(attempts = deletion.verification_attempts, outcome = ?deletion.outcome, "user deleted and verified");
        build_record(request, deletion)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QuarantineAction {
    /// Disable the user now (from its inventory) and tag it.
    Quarantine,
    /// After the wait: is the user still held by this quarantine?
    Check,
}

/// QuarantineUser's input: `Quarantine` carries the inventory, `Check` none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct QuarantineRequest {
    pub action: QuarantineAction,
    pub user_name: String,
    /// The id GetUsername resolved: re-checked before the first change.
    pub user_id: String,
    /// The deletion time: the tag's value.
    pub delete_after: String,
    #[serde(default)]
    pub execution_arn: Option<String>,
    #[serde(default)]
    pub credentials: Option<CredentialInventory>,
    #[serde(default)]
    pub permissions: Option<PermissionInventory>,
}

/// The check after the wait.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct QuarantineCheck {
    pub still_quarantined: bool,
    pub reason: String,
    #[serde(default)]
    pub duration_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum QuarantineOutcome {
    Quarantined(QuarantineRecord),
    Checked(QuarantineCheck),
}

impl Timed for QuarantineOutcome {
    fn set_duration_ms(&mut self, duration_ms: u64) {
        match self {
            Self::Quarantined(record) => record.duration_ms = Some(duration_ms),
            Self::Checked(check) => check.duration_ms = Some(duration_ms),
        }
    }
}

pub struct QuarantineUser;

impl Stage for QuarantineUser {
    const NAME: &'static str = "QuarantineUser";
    type Request = QuarantineRequest;
    type Response = QuarantineOutcome;

    fn user_name(request: &QuarantineRequest) -> Option<&str> {
        Some(&request.user_name)
    }

    async fn run(ctx: &StageContext, request: QuarantineRequest) -> Result<QuarantineOutcome, OffboardError> {
        let until = crate::input::format_timestamp(parse_timestamp(&request.delete_after, "DeleteAfter")?);
        match (request.action, request.credentials, request.permissions) {
            (QuarantineAction::Quarantine, Some(credentials), Some(permissions)) => {
                let user = ctx.recheck_existing(&request.user_name, &request.user_id).await?;
                refuse_if_quarantined_otherwise(&user, &until)?;
                let record =
                    quarantine_user(&ctx.iam, &user, &credentials, &permissions, &until, request.execution_arn).await?;
                tracing::info!(deactivated = record.deactivated.count(), until = %until, "user quarantined");
                Ok(QuarantineOutcome::Quarantined(record))
            }
            (QuarantineAction::Check, None, None) => {
                let user = ctx.recheck_existing(&request.user_name, &request.user_id).await?;
                let check = match quarantined_until(&user) {
                    Some(tagged) if tagged == until => QuarantineCheck {
                        still_quarantined: true,
                        reason: format!("still quarantined until {until}: the deletion goes ahead"),
                        duration_ms: None,
                    },
                    Some(tagged) => QuarantineCheck {
                        still_quarantined: false,
                        reason: format!("now held by another quarantine (until {tagged}): this one deletes nothing"),
                        duration_ms: None,
                    },
                    None => QuarantineCheck {
                        still_quarantined: false,
                        reason: "the quarantine tag was removed (the user was restored): nothing is deleted".into(),
                        duration_ms: None,
                    },
                };
                tracing::info!(still_quarantined = check.still_quarantined, reason = %check.reason, "quarantine checked");
                Ok(QuarantineOutcome::Checked(check))
            }
            (QuarantineAction::Quarantine, _, _) => Err(OffboardError::InvalidInput(format!(
                "{} input: Action Quarantine needs Credentials and Permissions (the user's inventory)",
                Self::NAME
            ))),
            (QuarantineAction::Check, _, _) => Err(OffboardError::InvalidInput(format!(
                "{} input: Action Check takes no Credentials or Permissions",
                Self::NAME
            ))),
        }
    }
}
