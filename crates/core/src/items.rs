//! What a user holds, item by item: the inventory stages' output, and with
//! an `Outcome` on each item, the removal stages'. Every field is always
//! present so the state machine's JSONPath can address it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MfaClass {
    /// Deactivate, then DeleteVirtualMFADevice.
    Virtual,
    /// Passkey, security key or hardware token: deactivate only.
    NonVirtual,
}

/// What a removal did to one item. Absent in an inventory or a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Removed by this run.
    Removed,
    /// Already gone when this run got to it (IAM said NoSuchEntity).
    AlreadyAbsent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct AccessKey {
    pub access_key_id: String,
    pub status: String,
    pub create_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct SshPublicKey {
    #[serde(rename = "SSHPublicKeyId")]
    pub ssh_public_key_id: String,
    pub status: String,
    pub upload_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct SigningCertificate {
    pub certificate_id: String,
    pub status: String,
    pub upload_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

/// CodeCommit/Keyspaces passwords and Bedrock API keys alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ServiceSpecificCredential {
    pub service_specific_credential_id: String,
    pub service_name: String,
    pub service_user_name: Option<String>,
    pub status: String,
    pub create_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct MfaDevice {
    pub serial_number: String,
    pub enable_date: Option<String>,
    /// How the device is (or, in a plan, will be) removed.
    pub handled_as: MfaClass,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deactivation: Option<Outcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_device_deletion: Option<Outcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct LoginProfile {
    pub create_date: Option<String>,
    pub password_reset_required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

/// Output of GetKeysCertificatesMfaAndCredentials; with outcomes, of
/// DeleteKeysCertificatesMfaAndCredentials. Every field is always present
/// so the state machine's JSONPath can address it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CredentialInventory {
    pub login_profile: Option<LoginProfile>,
    pub access_keys: Vec<AccessKey>,
    #[serde(rename = "SSHPublicKeys")]
    pub ssh_public_keys: Vec<SshPublicKey>,
    pub signing_certificates: Vec<SigningCertificate>,
    pub service_specific_credentials: Vec<ServiceSpecificCredential>,
    #[serde(rename = "MFADevices")]
    pub mfa_devices: Vec<MfaDevice>,
    #[serde(default)]
    pub duration_ms: Option<u64>,
}

impl CredentialInventory {
    pub fn item_count(&self) -> usize {
        usize::from(self.login_profile.is_some())
            + self.access_keys.len()
            + self.ssh_public_keys.len()
            + self.signing_certificates.len()
            + self.service_specific_credentials.len()
            + self.mfa_devices.len()
    }

    /// Every item, named as a person would ("access key AKIA...").
    pub fn item_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.login_profile.iter().map(|_| "login profile".to_string()).collect();
        names.extend(self.access_keys.iter().map(|key| format!("access key {}", key.access_key_id)));
        names.extend(self.ssh_public_keys.iter().map(|key| format!("SSH public key {}", key.ssh_public_key_id)));
        names.extend(
            self.signing_certificates.iter().map(|cert| format!("signing certificate {}", cert.certificate_id)),
        );
        names.extend(self.service_specific_credentials.iter().map(|credential| {
            format!("{} credential {}", credential.service_name, credential.service_specific_credential_id)
        }));
        names.extend(self.mfa_devices.iter().map(|device| format!("MFA device {}", device.serial_number)));
        names
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct GroupMembership {
    pub group_name: String,
    pub group_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct InlinePolicy {
    pub policy_name: String,
    /// The decoded policy document, so the permissions can be recreated.
    pub policy_document: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct AttachedPolicy {
    pub policy_name: Option<String>,
    pub policy_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

/// Output of GetGroupsAndPolicies; with outcomes, of DeleteGroupsAndPolicies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PermissionInventory {
    pub groups: Vec<GroupMembership>,
    pub inline_policies: Vec<InlinePolicy>,
    pub attached_policies: Vec<AttachedPolicy>,
    #[serde(default)]
    pub duration_ms: Option<u64>,
}

impl PermissionInventory {
    pub fn item_count(&self) -> usize {
        self.groups.len() + self.inline_policies.len() + self.attached_policies.len()
    }
}
