//! The state machine's flow, run in-process for `offboard plan|delete`: the
//! same stages with the same requests, the same MFA rule per device, and the
//! same bounded DeleteConflict loop. A grace period (`GraceDays`) stops
//! after the quarantine: a process cannot wait days; a later `offboard
//! delete` (or the state machine) does the deletion.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::errors::OffboardError;
use crate::items::{CredentialInventory, PermissionInventory};
use crate::mfa::classify;
use crate::quarantine::QuarantineRecord;
use crate::record::Items;
use crate::record::{step_functions_cause, AuditRecord, FailureRecord, PartialRemoval};
use crate::stages::{
    invoke, CredentialRemoval, CredentialRemovalRequest, DeleteGroupsAndPolicies, DeleteIamUserAndVerify,
    DeleteKeysCertificatesMfaAndCredentials, GetGroupsAndPolicies, GetKeysCertificatesMfaAndCredentials, GetUsername,
    PermissionRemovalRequest, QuarantineAction, QuarantineOutcome, QuarantineRequest, QuarantineUser, Resolution,
    RoundRemoval, Stage, StageContext, TaskFailure, UserDeletionRequest, UserRequest,
};
use crate::target::TargetUser;

/// Extra inventory rounds after a DeleteConflict, as in the state machine.
pub const MAX_CONFLICT_ROUNDS: u32 = 3;

/// Told as each stage completes, for progress output.
pub trait Progress {
    fn stage_done(&mut self, stage: &str, detail: &str);

    /// The plan, once, after the first inventory and before anything is
    /// removed (where the state machine writes plan.json). An error here
    /// stops the offboarding before its first change.
    #[allow(async_fn_in_trait)]
    async fn plan_ready(&mut self, _plan: &AuditRecord) -> Result<(), OffboardError> {
        Ok(())
    }
}

/// A failed offboarding: its error and the record of what was done.
#[derive(Debug)]
pub struct Failed {
    pub error: OffboardError,
    pub record: FailureRecord,
}

impl<F: FnMut(&str, &str)> Progress for F {
    fn stage_done(&mut self, stage: &str, detail: &str) {
        self(stage, detail)
    }
}

struct Inventory {
    credentials: CredentialInventory,
    permissions: PermissionInventory,
}

async fn take_inventory(
    ctx: &StageContext,
    user: &TargetUser,
    progress: &mut impl Progress,
) -> Result<Inventory, OffboardError> {
    let request = || UserRequest { user_name: user.user_name.clone(), user_id: user.user_id.clone() };
    let credentials = invoke::<GetKeysCertificatesMfaAndCredentials>(ctx, request()).await?;
    progress.stage_done(
        GetKeysCertificatesMfaAndCredentials::NAME,
        &format!("{} credentials, {} MFA devices", credentials.item_count(), credentials.mfa_devices.len()),
    );
    let permissions = invoke::<GetGroupsAndPolicies>(ctx, request()).await?;
    progress.stage_done(GetGroupsAndPolicies::NAME, &format!("{} groups and policies", permissions.item_count()));
    Ok(Inventory { credentials, permissions })
}

async fn resolve(ctx: &StageContext, input: Value, progress: &mut impl Progress) -> Result<Resolution, OffboardError> {
    let target = invoke::<GetUsername>(ctx, input).await?;
    progress.stage_done(GetUsername::NAME, &format!("{} ({})", target.user.user_name, target.user.user_id));
    Ok(target)
}

/// Gathers everything and changes nothing: the dry-run record.
pub async fn plan(
    ctx: &StageContext,
    input: Value,
    progress: &mut impl Progress,
) -> Result<AuditRecord, OffboardError> {
    let target = resolve(ctx, input, progress).await?;
    let inventory = take_inventory(ctx, &target.user, progress).await?;
    let plan = build_plan(target, inventory.credentials, inventory.permissions);
    progress.plan_ready(&plan).await?;
    Ok(plan)
}

/// Offboards the user the execution input names, or returns the plan when
/// the input asks for a dry run, or, with a grace period, quarantines the
/// user and returns the quarantine's record (its `Quarantine` set, no
/// `UserDeletion`). A failure comes with its record.
pub async fn offboard(ctx: &StageContext, input: Value, progress: &mut impl Progress) -> Result<AuditRecord, Failed> {
    let target = match resolve(ctx, input.clone(), progress).await {
        Ok(target) => target,
        Err(error) => return Err(Failed { record: FailureRecord::refusal(&error, input), error }),
    };
    let mut run = Run {
        target,
        plan: None,
        removed: PartialRemoval::default(),
        round: 0,
        earlier_rounds: Value::Null,
        partial_quarantine: None,
    };
    match run.run_to_the_end(ctx, progress).await {
        Ok(record) => Ok(record),
        Err(error) => Err(run.failed(error)),
    }
}

/// An offboarding under way: what the failure record needs if it fails.
struct Run {
    target: Resolution,
    plan: Option<AuditRecord>,
    removed: PartialRemoval,
    round: u32,
    earlier_rounds: Value,
    /// What a quarantine that failed part-way did change.
    partial_quarantine: Option<QuarantineRecord>,
}

impl Run {
    async fn run_to_the_end(
        &mut self,
        ctx: &StageContext,
        progress: &mut impl Progress,
    ) -> Result<AuditRecord, OffboardError> {
        let user_name = self.target.user.user_name.clone();
        let user_id = self.target.user.user_id.clone();
        loop {
            let inventory = take_inventory(ctx, &self.target.user, progress).await?;
            if self.plan.is_none() {
                let plan =
                    build_plan(self.target.clone(), inventory.credentials.clone(), inventory.permissions.clone());
                progress.plan_ready(&plan).await?;
                if self.target.dry_run {
                    return Ok(plan);
                }
                if let Some(until) = self.target.delete_after.clone() {
                    let request = QuarantineRequest {
                        action: QuarantineAction::Quarantine,
                        user_name: user_name.clone(),
                        user_id: user_id.clone(),
                        delete_after: until.clone(),
                        execution_arn: None,
                        credentials: Some(inventory.credentials),
                        permissions: Some(inventory.permissions),
                        failure: None,
                    };
                    self.plan = Some(plan.clone());
                    let outcome = match invoke::<QuarantineUser>(ctx, request.clone()).await {
                        Ok(outcome) => outcome,
                        Err(error) => {
                            self.partial_quarantine = partial_quarantine(ctx, request, &error).await;
                            return Err(error);
                        }
                    };
                    let QuarantineOutcome::Quarantined(quarantine) = outcome else {
                        unreachable!("a Quarantine request answers with the quarantine's record")
                    };
                    progress.stage_done(
                        QuarantineUser::NAME,
                        &format!(
                            "{} credentials deactivated, AWSDenyAll attached, deletion due {until}",
                            quarantine.deactivated.count()
                        ),
                    );
                    return Ok(AuditRecord { quarantine: Some(*quarantine), ..plan });
                }
                self.plan = Some(plan);
            }
            let mut timings = BTreeMap::new();
            timings.insert(GetKeysCertificatesMfaAndCredentials::NAME.to_string(), inventory.credentials.duration_ms);
            timings.insert(GetGroupsAndPolicies::NAME.to_string(), inventory.permissions.duration_ms);
            self.removed = PartialRemoval::default();
            let (message, removed) =
                match remove_everything(ctx, &user_name, &user_id, inventory, &mut self.removed, progress).await? {
                    RoundEnd::Conflict { message, partial } => (message, partial),
                    RoundEnd::Removed(removed) => {
                        let request = UserDeletionRequest {
                            target: self.target.clone(),
                            removed: removed.clone(),
                            timings,
                            round: self.round,
                            earlier_rounds: self.earlier_rounds.clone(),
                            quarantine: None,
                        };
                        match invoke::<DeleteIamUserAndVerify>(ctx, request).await {
                            Ok(record) => {
                                progress.stage_done(DeleteIamUserAndVerify::NAME, "user deleted and verified gone");
                                return Ok(record);
                            }
                            Err(OffboardError::DeleteConflict(message)) => (message, removed),
                            Err(error) => return Err(error),
                        }
                    }
                };
            if self.round >= MAX_CONFLICT_ROUNDS {
                return Err(OffboardError::DeleteConflict(message));
            }
            self.round += 1;
            progress.stage_done(
                DeleteIamUserAndVerify::NAME,
                &format!("DeleteConflict, inventory round {} of {MAX_CONFLICT_ROUNDS}: {message}", self.round),
            );
            let earlier = std::mem::take(&mut self.earlier_rounds);
            self.earlier_rounds = Value::Array(vec![earlier, serde_json::to_value(removed).unwrap_or_default()]);
        }
    }

    fn failed(self, error: OffboardError) -> Failed {
        let record = FailureRecord {
            error: error.name().to_string(),
            cause: step_functions_cause(&error),
            dry_run: Some(self.target.dry_run),
            context: Some(self.target.context),
            user: Some(self.target.user),
            input: None,
            plan: self.plan,
            removed: Some(self.removed),
            earlier_rounds: Some(self.earlier_rounds),
            rounds: Some(self.round),
            quarantine: self.partial_quarantine,
        };
        Failed { error, record }
    }
}

/// How a round of removal stages ended.
enum RoundEnd {
    Removed(RoundRemoval),
    /// DeleteGroupsAndPolicies found something to take first (a credential
    /// that appeared since the inventory): another round, as in the state
    /// machine; `partial` holds what this round did remove.
    Conflict {
        message: String,
        partial: RoundRemoval,
    },
}

async fn remove_everything(
    ctx: &StageContext,
    user_name: &str,
    user_id: &str,
    inventory: Inventory,
    done: &mut PartialRemoval,
    progress: &mut impl Progress,
) -> Result<RoundEnd, OffboardError> {
    let mut credentials = inventory.credentials;
    let devices = std::mem::take(&mut credentials.mfa_devices);
    let request = CredentialRemovalRequest {
        user_name: user_name.to_string(),
        user_id: user_id.to_string(),
        credentials: Some(credentials),
        mfa_device: None,
        handled_as: None,
        retry_count: 0,
    };
    let CredentialRemoval::Credentials(credentials) =
        invoke::<DeleteKeysCertificatesMfaAndCredentials>(ctx, request).await?
    else {
        unreachable!("a whole-credentials request answers with credentials")
    };
    progress.stage_done(
        DeleteKeysCertificatesMfaAndCredentials::NAME,
        &format!("{} credentials removed", credentials.item_count()),
    );
    done.credentials = Some(credentials.clone());
    let mut mfa_devices = Vec::with_capacity(devices.len());
    for device in devices {
        let handled_as = classify(&device.serial_number);
        let request = CredentialRemovalRequest {
            user_name: user_name.to_string(),
            user_id: user_id.to_string(),
            credentials: None,
            mfa_device: Some(device),
            handled_as: Some(handled_as),
            retry_count: 0,
        };
        let CredentialRemoval::MfaDevice(device) =
            invoke::<DeleteKeysCertificatesMfaAndCredentials>(ctx, request).await?
        else {
            unreachable!("a one-device request answers with the device")
        };
        progress.stage_done(
            DeleteKeysCertificatesMfaAndCredentials::NAME,
            &format!("MFA device {} removed as {:?}", device.serial_number, device.handled_as),
        );
        done.mfa_devices.get_or_insert_with(Vec::new).push(device.clone());
        mfa_devices.push(device);
    }
    let request = PermissionRemovalRequest {
        user_name: user_name.to_string(),
        user_id: user_id.to_string(),
        permissions: inventory.permissions,
    };
    let permissions = match invoke::<DeleteGroupsAndPolicies>(ctx, request).await {
        Ok(permissions) => permissions,
        Err(OffboardError::DeleteConflict(message)) => {
            return Ok(RoundEnd::Conflict {
                message,
                partial: RoundRemoval { credentials, mfa_devices, permissions: None },
            })
        }
        Err(error) => return Err(error),
    };
    progress.stage_done(
        DeleteGroupsAndPolicies::NAME,
        &format!("{} groups and policies removed", permissions.item_count()),
    );
    done.permissions = Some(permissions.clone());
    Ok(RoundEnd::Removed(RoundRemoval { credentials, mfa_devices, permissions: Some(permissions) }))
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

/// The record of a quarantine that failed with `error` part-way, as the state
/// machine's catch asks QuarantineUser for it; `None` if even that fails.
async fn partial_quarantine(
    ctx: &StageContext,
    request: QuarantineRequest,
    error: &OffboardError,
) -> Option<QuarantineRecord> {
    let failure = TaskFailure { error: error.name().to_string(), cause: step_functions_cause(error) };
    let request = QuarantineRequest { action: QuarantineAction::Record, failure: Some(failure), ..request };
    match invoke::<QuarantineUser>(ctx, request).await {
        Ok(QuarantineOutcome::Quarantined(record)) => Some(*record),
        _ => None,
    }
}
