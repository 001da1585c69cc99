//! Quarantine: disable at once, delete after a grace period. Every
//! credential that can be switched off is set `Inactive`, the AWS managed
//! policy `AWSDenyAll` is attached (an explicit deny overrides every grant),
//! and the user is tagged with the time its deletion is due. The login
//! profile and MFA devices are kept: the deny makes them useless, and a
//! restore needs them.

use aws_sdk_iam::types::{StatusType, Tag as IamTag};
use aws_sdk_iam::Client;
use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::errors::{classify_sdk_error, OffboardError};
use crate::iam_calls::{idempotent, CONCURRENCY};
use crate::items::{CredentialInventory, Outcome, PermissionInventory};
use crate::target::TargetUser;

/// The tag a quarantine leaves on the user; its value is the deletion time.
pub const QUARANTINE_TAG_KEY: &str = "offboard:quarantined-until";
/// "Deny all access" (AWS managed policy reference, AWSDenyAll).
pub const DENY_ALL_POLICY_NAME: &str = "AWSDenyAll";

/// The four kinds of credential IAM can switch between Active and Inactive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CredentialIds {
    pub access_keys: Vec<String>,
    #[serde(rename = "SSHPublicKeys")]
    pub ssh_public_keys: Vec<String>,
    pub signing_certificates: Vec<String>,
    pub service_specific_credentials: Vec<String>,
}

impl CredentialIds {
    /// Every id with its kind, access keys first.
    pub fn items(&self) -> impl Iterator<Item = (CredentialKind, &String)> {
        let kind = |kind: CredentialKind| move |id| (kind, id);
        self.access_keys
            .iter()
            .map(kind(CredentialKind::AccessKey))
            .chain(self.ssh_public_keys.iter().map(kind(CredentialKind::SshPublicKey)))
            .chain(self.signing_certificates.iter().map(kind(CredentialKind::SigningCertificate)))
            .chain(self.service_specific_credentials.iter().map(kind(CredentialKind::ServiceSpecificCredential)))
    }

    fn push(&mut self, kind: CredentialKind, id: String) {
        match kind {
            CredentialKind::AccessKey => self.access_keys.push(id),
            CredentialKind::SshPublicKey => self.ssh_public_keys.push(id),
            CredentialKind::SigningCertificate => self.signing_certificates.push(id),
            CredentialKind::ServiceSpecificCredential => self.service_specific_credentials.push(id),
        }
    }

    pub fn count(&self) -> usize {
        self.items().count()
    }
}

/// What a quarantine left as it was, so that a restore finds it unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct KeptItems {
    pub login_profile: bool,
    #[serde(rename = "MFADevices")]
    pub mfa_devices: Vec<String>,
}

/// What a quarantine did: QuarantineUser's output, and the `Quarantine`
/// section of the records of an offboarding that went through one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct QuarantineRecord {
    /// When the deletion is due; also the tag's value.
    pub quarantined_until: String,
    /// The execution that waits to delete the user (none from the CLI).
    pub execution_arn: Option<String>,
    pub tag_key: String,
    pub deny_all_policy_arn: String,
    /// False when the user already had AWSDenyAll: a restore leaves it then.
    pub deny_all_attached_by_quarantine: bool,
    /// Set Inactive by the quarantine: what a restore reactivates.
    pub deactivated: CredentialIds,
    /// Inactive before the quarantine: a restore leaves them inactive.
    pub already_inactive: CredentialIds,
    pub kept: KeptItems,
    #[serde(default)]
    pub duration_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    AccessKey,
    SshPublicKey,
    SigningCertificate,
    ServiceSpecificCredential,
}

impl CredentialKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::AccessKey => "access key",
            Self::SshPublicKey => "SSH public key",
            Self::SigningCertificate => "signing certificate",
            Self::ServiceSpecificCredential => "service-specific credential",
        }
    }
}

/// `arn:<partition>:iam::aws:policy/AWSDenyAll`, in the user's partition.
pub fn deny_all_policy_arn(user_arn: &str) -> String {
    let partition = user_arn.split(':').nth(1).filter(|p| !p.is_empty()).unwrap_or("aws");
    format!("arn:{partition}:iam::aws:policy/{DENY_ALL_POLICY_NAME}")
}

/// The quarantine tag's value, if the user carries it (IAM tag keys are
/// case-insensitive).
pub fn quarantined_until(user: &TargetUser) -> Option<&str> {
    user.tags.iter().find(|tag| tag.key.eq_ignore_ascii_case(QUARANTINE_TAG_KEY)).map(|tag| tag.value.as_str())
}

/// Refuses a quarantine of a user another quarantine holds. The same
/// deletion time is the same quarantine (QuarantineUser retried), which goes on.
pub fn refuse_if_quarantined_otherwise(user: &TargetUser, delete_after: &str) -> Result<(), OffboardError> {
    match quarantined_until(user) {
        Some(until) if until != delete_after => Err(already_quarantined(user, until)),
        _ => Ok(()),
    }
}

/// Refuses a new grace request for a user that carries any quarantine tag.
pub fn refuse_if_quarantined(user: &TargetUser) -> Result<(), OffboardError> {
    match quarantined_until(user) {
        Some(until) => Err(already_quarantined(user, until)),
        None => Ok(()),
    }
}

fn already_quarantined(user: &TargetUser, until: &str) -> OffboardError {
    OffboardError::AlreadyQuarantined(format!(
        "user {} is already quarantined until {until} (tag {QUARANTINE_TAG_KEY}); nothing was changed. Let that quarantine run its course, or restore the user first (offboard restore --user-name {}).",
        user.user_name, user.user_name
    ))
}

/// Sets one credential's status; `AlreadyAbsent` when it no longer exists.
pub async fn set_status(
    iam: &Client,
    user_name: &str,
    kind: CredentialKind,
    id: &str,
    status: StatusType,
) -> Result<Outcome, OffboardError> {
    let resource = format!("{} {id} of user {user_name}", kind.label());
    match kind {
        CredentialKind::AccessKey => idempotent(
            iam.update_access_key().user_name(user_name).access_key_id(id).status(status).send().await,
            "iam:UpdateAccessKey",
            &resource,
        ),
        CredentialKind::SshPublicKey => idempotent(
            iam.update_ssh_public_key().user_name(user_name).ssh_public_key_id(id).status(status).send().await,
            "iam:UpdateSSHPublicKey",
            &resource,
        ),
        CredentialKind::SigningCertificate => idempotent(
            iam.update_signing_certificate().user_name(user_name).certificate_id(id).status(status).send().await,
            "iam:UpdateSigningCertificate",
            &resource,
        ),
        CredentialKind::ServiceSpecificCredential => idempotent(
            iam.update_service_specific_credential()
                .user_name(user_name)
                .service_specific_credential_id(id)
                .status(status)
                .send()
                .await,
            "iam:UpdateServiceSpecificCredential",
            &resource,
        ),
    }
}

/// Splits the inventory's switchable credentials into active and inactive.
fn by_status(credentials: &CredentialInventory) -> (CredentialIds, CredentialIds) {
    let mut active = CredentialIds::default();
    let mut inactive = CredentialIds::default();
    let items = credentials
        .access_keys
        .iter()
        .map(|k| (CredentialKind::AccessKey, &k.access_key_id, &k.status))
        .chain(
            credentials.ssh_public_keys.iter().map(|k| (CredentialKind::SshPublicKey, &k.ssh_public_key_id, &k.status)),
        )
        .chain(
            credentials
                .signing_certificates
                .iter()
                .map(|c| (CredentialKind::SigningCertificate, &c.certificate_id, &c.status)),
        )
        .chain(
            credentials
                .service_specific_credentials
                .iter()
                .map(|c| (CredentialKind::ServiceSpecificCredential, &c.service_specific_credential_id, &c.status)),
        );
    for (kind, id, status) in items {
        let list = if status == "Active" { &mut active } else { &mut inactive };
        list.push(kind, id.clone());
    }
    (active, inactive)
}

/// Quarantines `user` until `until`, from its inventory (the statuses before
/// the quarantine, so a retry records the same items). Order: the deny
/// first (it stops every session at once), then the credentials, then the
/// tag, which marks a finished quarantine.
pub async fn quarantine_user(
    iam: &Client,
    user: &TargetUser,
    credentials: &CredentialInventory,
    permissions: &PermissionInventory,
    until: &str,
    execution_arn: Option<String>,
) -> Result<QuarantineRecord, OffboardError> {
    let user_name = user.user_name.as_str();
    let deny_all = deny_all_policy_arn(&user.arn);
    let had_deny_all = permissions.attached_policies.iter().any(|policy| policy.policy_arn == deny_all);
    if !had_deny_all {
        // A user holds at most 10 managed policies by default ("IAM and AWS
        // STS quotas"): IAM then answers LimitExceeded, before any change.
        iam.attach_user_policy().user_name(user_name).policy_arn(&deny_all).send().await.map_err(|error| {
            classify_sdk_error(error, "iam:AttachUserPolicy", &format!("user {user_name} ({deny_all})"))
                .with_note("Nothing was changed by the quarantine.")
        })?;
    }
    let (active, already_inactive) = by_status(credentials);
    let results: Vec<(CredentialKind, String, Result<Outcome, OffboardError>)> =
        futures_util::stream::iter(active.items())
            .map(|(kind, id)| async move {
                (kind, id.clone(), set_status(iam, user_name, kind, id, StatusType::Inactive).await)
            })
            .buffered(CONCURRENCY)
            .collect()
            .await;
    let mut deactivated = CredentialIds::default();
    let mut first_error = None;
    for (kind, id, result) in results {
        match result {
            Ok(Outcome::Removed) => deactivated.push(kind, id),
            Ok(Outcome::AlreadyAbsent) => {
                tracing::warn!(kind = kind.label(), id = %id, "deleted since the inventory; nothing to deactivate")
            }
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    let done = || {
        let mut done = vec![format!("{DENY_ALL_POLICY_NAME} attached")];
        done.extend(deactivated.items().map(|(kind, id)| format!("{} {id} deactivated", kind.label())));
        format!("Done before the failure: {}. Re-run to finish.", done.join(", "))
    };
    if let Some(error) = first_error {
        return Err(error.with_note(&done()));
    }
    let tag = IamTag::builder()
        .key(QUARANTINE_TAG_KEY)
        .value(until)
        .build()
        .map_err(|e| OffboardError::InvalidInput(format!("the quarantine tag is malformed: {e}")))?;
    iam.tag_user()
        .user_name(user_name)
        .tags(tag)
        .send()
        .await
        .map_err(|error| classify_sdk_error(error, "iam:TagUser", &format!("user {user_name}")).with_note(&done()))?;
    Ok(QuarantineRecord {
        quarantined_until: until.to_string(),
        execution_arn,
        tag_key: QUARANTINE_TAG_KEY.to_string(),
        deny_all_policy_arn: deny_all,
        deny_all_attached_by_quarantine: !had_deny_all,
        deactivated,
        already_inactive,
        kept: KeptItems {
            login_profile: credentials.login_profile.is_some(),
            mfa_devices: credentials.mfa_devices.iter().map(|device| device.serial_number.clone()).collect(),
        },
        duration_ms: None,
    })
}

/// Reactivates what a quarantine deactivated, at most [`CONCURRENCY`] at a
/// time; each credential's outcome in order (`AlreadyAbsent`: deleted since).
pub async fn reactivate(
    iam: &Client,
    user_name: &str,
    deactivated: &CredentialIds,
) -> Result<Vec<(String, Outcome)>, OffboardError> {
    futures_util::stream::iter(deactivated.items())
        .map(|(kind, id)| async move {
            let outcome = set_status(iam, user_name, kind, id, StatusType::Active).await?;
            Ok::<_, OffboardError>((format!("{} {id}", kind.label()), outcome))
        })
        .buffered(CONCURRENCY)
        .try_collect()
        .await
}
