//! DeleteIAMUserAndVerify: delete the user, poll until IAM agrees it is
//! gone, and assemble the audit record from every round's removals.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::context::StageContext;
use crate::errors::OffboardError;
use crate::items::{CredentialInventory, MfaDevice, Outcome, PermissionInventory};
use crate::quarantine::QuarantineRecord;
use crate::record::{AuditRecord, Items};
use crate::removal::{delete_user_and_verify, UserDeletion};
use crate::stage::{Stage, Timed};
use crate::stages::{DeleteGroupsAndPolicies, DeleteKeysCertificatesMfaAndCredentials, GetUsername, Resolution};
use crate::target::find_user_name_by_id;
use crate::workflow::Subject;

/// What one round of removal stages produced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RoundRemoval {
    pub credentials: CredentialInventory,
    #[serde(rename = "MFADevices")]
    pub mfa_devices: Vec<MfaDevice>,
    /// `null` in a round that DeleteGroupsAndPolicies ended with
    /// DeleteConflict (a credential appeared): nothing of it was removed.
    #[serde(default)]
    pub permissions: Option<PermissionInventory>,
}

impl RoundRemoval {
    fn into_items(self) -> Items {
        let mut credentials = self.credentials;
        credentials.mfa_devices.extend(self.mfa_devices);
        Items::from_inventories(credentials, self.permissions.unwrap_or_default())
    }

    /// Milliseconds in DeleteKeysCertificatesMfaAndCredentials (the
    /// credentials call plus each MFA device's) and DeleteGroupsAndPolicies.
    fn timings(&self) -> [(&'static str, u64); 2] {
        let credential_ms = self.credentials.duration_ms.unwrap_or(0)
            + self.mfa_devices.iter().filter_map(|device| device.duration_ms).sum::<u64>();
        [
            (DeleteKeysCertificatesMfaAndCredentials::NAME, credential_ms),
            (DeleteGroupsAndPolicies::NAME, self.permissions.as_ref().and_then(|p| p.duration_ms).unwrap_or(0)),
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
pub struct DeleteIamUserAndVerify;

impl Stage for DeleteIamUserAndVerify {
    const NAME: &'static str = "DeleteIAMUserAndVerify";
    type Request = UserDeletionRequest;
    type Response = AuditRecord;

    fn subject(request: &UserDeletionRequest) -> Subject<'_> {
        Subject { user_name: Some(&request.target.user.user_name), user_id: Some(&request.target.user.user_id) }
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
        // Gone by name is not gone: the user may have been renamed since the
        // inventory. Verified by its id, which a rename keeps.
        if deletion.outcome == Outcome::AlreadyAbsent {
            if let Some(renamed) = find_user_name_by_id(&ctx.iam, &user.user_id).await? {
                return Err(OffboardError::VerificationFailed(format!(
                    "user {} ({}) was not deleted: it still exists, renamed to {renamed}. Nothing was deleted by this stage; offboard {renamed} with a new execution.",
                    user.user_name, user.user_id
                )));
            }
        }
        tracing::info!(attempts = deletion.verification_attempts, outcome = ?deletion.outcome, "user deleted and verified");
        build_record(request, deletion)
    }
}
impl Timed for AuditRecord {
    fn set_duration_ms(&mut self, duration_ms: u64) {
        self.timings.insert(DeleteIamUserAndVerify::NAME.into(), duration_ms);
    }
}
