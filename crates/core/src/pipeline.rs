//! The state machine's flow, run in-process for `offboard plan|delete`: the
//! same stages with the same requests, the same MFA rule per device, and the
//! same bounded DeleteConflict loop.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::errors::OffboardError;
use crate::inventory::CredentialInventory;
use crate::mfa::classify;
use crate::record::AuditRecord;
use crate::stages::{
    build_plan, invoke, CredentialRemoval, CredentialRemovalRequest, DeleteGroupsAndPolicies, DeleteIamUserAndVerify,
    DeleteKeysCertificatesMfaAndCredentials, GetGroupsAndPolicies, GetKeysCertificatesMfaAndCredentials, GetUsername,
    PermissionRemovalRequest, Resolution, RoundRemoval, Stage, StageContext, UserDeletionRequest, UserRequest,
};

/// Extra inventory rounds after a DeleteConflict, as in the state machine.
pub const MAX_CONFLICT_ROUNDS: u32 = 3;

/// Told as each stage completes, for progress output.
pub trait Progress {
    fn stage_done(&mut self, stage: &str, detail: &str);
}

impl<F: FnMut(&str, &str)> Progress for F {
    fn stage_done(&mut self, stage: &str, detail: &str) {
        self(stage, detail)
    }
}

struct Inventory {
    credentials: CredentialInventory,
    permissions: crate::inventory::PermissionInventory,
}

async fn take_inventory(
    ctx: &StageContext,
    user_name: &str,
    progress: &mut impl Progress,
) -> Result<Inventory, OffboardError> {
    let request = || UserRequest { user_name: user_name.to_string() };
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
pub async fn plan(ctx: &StageContext, input: Value, progress: &mut impl Progress) -> Result<AuditRecord, OffboardError> {
    let target = resolve(ctx, input, progress).await?;
    let inventory = take_inventory(ctx, &target.user.user_name, progress).await?;
    Ok(build_plan(target, inventory.credentials, inventory.permissions))
}

/// Offboards the user the execution input names, or returns the plan when
/// the input asks for a dry run.
pub async fn offboard(
    ctx: &StageContext,
    input: Value,
    progress: &mut impl Progress,
) -> Result<AuditRecord, OffboardError> {
    let target = resolve(ctx, input, progress).await?;
    let user_name = target.user.user_name.clone();
    let user_id = target.user.user_id.clone();
    let mut earlier_rounds = Value::Null;
    let mut round = 0;
    loop {
        let inventory = take_inventory(ctx, &user_name, progress).await?;
        if target.dry_run {
            return Ok(build_plan(target, inventory.credentials, inventory.permissions));
        }
        let mut timings = BTreeMap::new();
        timings.insert(GetKeysCertificatesMfaAndCredentials::NAME.to_string(), inventory.credentials.duration_ms);
        timings.insert(GetGroupsAndPolicies::NAME.to_string(), inventory.permissions.duration_ms);
        let removed = remove_everything(ctx, &user_name, &user_id, inventory, progress).await?;
        let request = UserDeletionRequest {
            target: target.clone(),
            removed: removed.clone(),
            timings,
            round,
            earlier_rounds: earlier_rounds.clone(),
        };
        match invoke::<DeleteIamUserAndVerify>(ctx, request).await {
            Ok(record) => {
                progress.stage_done(DeleteIamUserAndVerify::NAME, "user deleted and verified gone");
                return Ok(record);
            }
            Err(OffboardError::DeleteConflict(message)) if round < MAX_CONFLICT_ROUNDS => {
                round += 1;
                progress.stage_done(
                    DeleteIamUserAndVerify::NAME,
                    &format!("DeleteConflict, inventory round {round} of {MAX_CONFLICT_ROUNDS}: {message}"),
                );
                earlier_rounds = Value::Array(vec![earlier_rounds, serde_json::to_value(removed).unwrap_or_default()]);
            }
            Err(error) => return Err(error),
        }
    }
}

async fn remove_everything(
    ctx: &StageContext,
    user_name: &str,
    user_id: &str,
    inventory: Inventory,
    progress: &mut impl Progress,
) -> Result<RoundRemoval, OffboardError> {
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
        let CredentialRemoval::MfaDevice(device) = invoke::<DeleteKeysCertificatesMfaAndCredentials>(ctx, request).await?
        else {
            unreachable!("a one-device request answers with the device")
        };
        progress.stage_done(
            DeleteKeysCertificatesMfaAndCredentials::NAME,
            &format!("MFA device {} removed as {:?}", device.serial_number, device.handled_as),
        );
        mfa_devices.push(device);
    }
    let request = PermissionRemovalRequest {
        user_name: user_name.to_string(),
        user_id: user_id.to_string(),
        permissions: inventory.permissions,
    };
    let permissions = invoke::<DeleteGroupsAndPolicies>(ctx, request).await?;
    progress.stage_done(
        DeleteGroupsAndPolicies::NAME,
        &format!("{} groups and policies removed", permissions.item_count()),
    );
    Ok(RoundRemoval { credentials, mfa_devices, permissions })
}
