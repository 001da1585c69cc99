//! The audit record: what an offboarding removed (or, in a dry run, would
//! remove), with nothing secret in it. From it an operator can tell what was
//! lost and recreate the user's permissions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::items::{
    AccessKey, AttachedPolicy, CredentialInventory, GroupMembership, InlinePolicy, LoginProfile, MfaDevice,
    PermissionInventory, ServiceSpecificCredential, SigningCertificate, SshPublicKey,
};
use crate::quarantine::QuarantineRecord;
use crate::removal::UserDeletion;
use crate::target::TargetUser;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Items {
    pub login_profile: Option<LoginProfile>,
    pub access_keys: Vec<AccessKey>,
    #[serde(rename = "SSHPublicKeys")]
    pub ssh_public_keys: Vec<SshPublicKey>,
    pub signing_certificates: Vec<SigningCertificate>,
    pub service_specific_credentials: Vec<ServiceSpecificCredential>,
    #[serde(rename = "MFADevices")]
    pub mfa_devices: Vec<MfaDevice>,
    pub groups: Vec<GroupMembership>,
    pub inline_policies: Vec<InlinePolicy>,
    pub attached_policies: Vec<AttachedPolicy>,
}

impl Items {
    pub fn from_inventories(credentials: CredentialInventory, permissions: PermissionInventory) -> Self {
        Self {
            login_profile: credentials.login_profile,
            access_keys: credentials.access_keys,
            ssh_public_keys: credentials.ssh_public_keys,
            signing_certificates: credentials.signing_certificates,
            service_specific_credentials: credentials.service_specific_credentials,
            mfa_devices: credentials
                .mfa_devices
                .into_iter()
                .map(|device| MfaDevice { duration_ms: None, ..device })
                .collect(),
            groups: permissions.groups,
            inline_policies: permissions.inline_policies,
            attached_policies: permissions.attached_policies,
        }
    }

    /// Adds what an earlier round of the same offboarding removed.
    pub fn absorb(&mut self, earlier: Items) {
        if self.login_profile.is_none() {
            self.login_profile = earlier.login_profile;
        }
        self.access_keys.splice(0..0, earlier.access_keys);
        self.ssh_public_keys.splice(0..0, earlier.ssh_public_keys);
        self.signing_certificates.splice(0..0, earlier.signing_certificates);
        self.service_specific_credentials.splice(0..0, earlier.service_specific_credentials);
        self.mfa_devices.splice(0..0, earlier.mfa_devices);
        self.groups.splice(0..0, earlier.groups);
        self.inline_policies.splice(0..0, earlier.inline_policies);
        self.attached_policies.splice(0..0, earlier.attached_policies);
    }

    pub fn count(&self) -> usize {
        usize::from(self.login_profile.is_some())
            + self.access_keys.len()
            + self.ssh_public_keys.len()
            + self.signing_certificates.len()
            + self.service_specific_credentials.len()
            + self.mfa_devices.len()
            + self.groups.len()
            + self.inline_policies.len()
            + self.attached_policies.len()
    }
}

/// The output of a successful execution (DeleteIAMUserAndVerify), of a dry
/// run, and of `offboard plan|delete --output json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct AuditRecord {
    pub user: TargetUser,
    pub dry_run: bool,
    /// The caller's free-form input `Context`, unchanged.
    pub context: Value,
    /// Every item removed (each with its `Outcome`) or, in a dry run, planned.
    pub items: Items,
    /// Absent in a dry run.
    pub user_deletion: Option<UserDeletion>,
    /// Extra inventory rounds after DeleteConflict (0 when none was needed).
    pub rounds: u32,
    /// Milliseconds spent in each stage's own work.
    pub timings: BTreeMap<String, u64>,
    /// What the quarantine did, for an offboarding that began with one
    /// (`GraceDays`/`DeleteAfter`); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<QuarantineRecord>,
}

/// What each removal stage of the last round had finished removing when an
/// offboarding failed (`null` for a stage that had not finished).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PartialRemoval {
    pub credentials: Option<CredentialInventory>,
    #[serde(rename = "MFADevices")]
    pub mfa_devices: Option<Vec<MfaDevice>>,
    pub permissions: Option<PermissionInventory>,
}

/// The record of a failed offboarding, as the state machine's RecordFailure
/// and RecordRefusal states write it: the error, the plan, and what was
/// already removed (the failing stage's own removals are named in `Cause`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct FailureRecord {
    /// `None` when no user was resolved (the input is then recorded instead).
    pub user: Option<TargetUser>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    pub error: String,
    /// Step Functions' form: `{"errorType": ..., "errorMessage": ...}` as a string.
    pub cause: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<AuditRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<PartialRemoval>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earlier_rounds: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rounds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<QuarantineRecord>,
}

/// A function error's cause as Step Functions records it.
pub fn step_functions_cause(error: &crate::OffboardError) -> String {
    serde_json::json!({"errorType": error.name(), "errorMessage": error.to_string()}).to_string()
}

impl FailureRecord {
    /// GetUsername refused the input: nothing is known but the input.
    pub fn refusal(error: &crate::OffboardError, input: Value) -> Self {
        Self {
            user: None,
            input: Some(input),
            error: error.name().to_string(),
            cause: step_functions_cause(error),
            dry_run: None,
            context: None,
            plan: None,
            removed: None,
            earlier_rounds: None,
            rounds: None,
            quarantine: None,
        }
    }
}
