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
use crate::inventory::{attached_policy_arns, gather_credentials};
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
    /// A quarantine that failed part-way: its error name and message. The
    /// record then says what it did change, for a restore to undo exactly that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
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

/// IAM's quota of tags per user ("IAM and AWS STS quotas": 50 tags per
/// IAM user); TagUser beyond it answers LimitExceeded.
pub const MAX_USER_TAGS: usize = 50;

/// Quarantines `user` until `until`, from its inventory (the statuses before
/// the quarantine, so a retry records the same items). Order: the tag
/// first, so that a quarantine that fails part-way still holds the user
/// (a new offboarding of it is refused, and restore finds it); then the deny
/// (it stops every session at once); then the credentials. The tag quota is
/// checked before the first change.
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
    let (active, already_inactive) = by_status(credentials);
    if quarantined_until(user).is_none() && user.tags.len() >= MAX_USER_TAGS {
        return Err(OffboardError::LimitExceeded(format!(
            "user {user_name} already has {} tags, IAM's quota per user ({MAX_USER_TAGS}): the quarantine tag {QUARANTINE_TAG_KEY} cannot be added. Nothing was changed; remove a tag, then re-run.",
            user.tags.len()
        )));
    }
    let tag = IamTag::builder()
        .key(QUARANTINE_TAG_KEY)
        .value(until)
        .build()
        .map_err(|e| OffboardError::InvalidInput(format!("the quarantine tag is malformed: {e}")))?;
    iam.tag_user().user_name(user_name).tags(tag).send().await.map_err(|error| {
        classify_sdk_error(error, "iam:TagUser", &format!("user {user_name}"))
            .with_note("Nothing was changed by the quarantine.")
    })?;
    let done = |deactivated: &CredentialIds, deny: bool| {
        let mut done = vec![format!("tag {QUARANTINE_TAG_KEY}={until} set")];
        if deny {
            done.push(format!("{DENY_ALL_POLICY_NAME} attached"));
        }
        done.extend(deactivated.items().map(|(kind, id)| format!("{} {id} deactivated", kind.label())));
        format!(
            "Done before the failure: {}. The record of what it changed is written; restore undoes it.",
            done.join(", ")
        )
    };
    if !had_deny_all {
        // A user holds at most 10 managed policies by default ("IAM and AWS
        // STS quotas"): IAM then answers LimitExceeded.
        iam.attach_user_policy().user_name(user_name).policy_arn(&deny_all).send().await.map_err(|error| {
            classify_sdk_error(error, "iam:AttachUserPolicy", &format!("user {user_name} ({deny_all})"))
                .with_note(&done(&CredentialIds::default(), false))
        })?;
    }
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
    if let Some(error) = first_error {
        return Err(error.with_note(&done(&deactivated, true)));
    }
    Ok(record(until, execution_arn, credentials, already_inactive, deactivated, deny_all, !had_deny_all))
}

/// A quarantine's record: what it changed (`deactivated`, and whether it
/// attached `deny_all`) beside what it found and kept, with no error.
fn record(
    until: &str,
    execution_arn: Option<String>,
    credentials: &CredentialInventory,
    already_inactive: CredentialIds,
    deactivated: CredentialIds,
    deny_all: String,
    deny_all_attached_by_quarantine: bool,
) -> QuarantineRecord {
    QuarantineRecord {
        quarantined_until: until.to_string(),
        execution_arn,
        tag_key: QUARANTINE_TAG_KEY.to_string(),
        deny_all_policy_arn: deny_all,
        deny_all_attached_by_quarantine,
        deactivated,
        already_inactive,
        kept: KeptItems {
            login_profile: credentials.login_profile.is_some(),
            mfa_devices: credentials.mfa_devices.iter().map(|device| device.serial_number.clone()).collect(),
        },
        error: None,
        cause: None,
        duration_ms: None,
    }
}

/// The record of a quarantine that failed part-way (`error`, with its Step
/// Functions cause), from the inventory taken before it and the user as IAM
/// has it now: a credential active before and inactive now was deactivated
/// by it, AWSDenyAll attached now and not before was attached by it. What a
/// restore then undoes is exactly that. (Someone else switching a key off
/// in the same seconds would be counted too; the record names every item.)
pub async fn partial_quarantine(
    iam: &Client,
    user: &TargetUser,
    credentials: &CredentialInventory,
    permissions: &PermissionInventory,
    until: &str,
    execution_arn: Option<String>,
    (error, cause): (String, String),
) -> Result<QuarantineRecord, OffboardError> {
    let deny_all = deny_all_policy_arn(&user.arn);
    let had_deny_all = permissions.attached_policies.iter().any(|policy| policy.policy_arn == deny_all);
    let (active_before, already_inactive) = by_status(credentials);
    let (_, inactive_now) = by_status(&gather_credentials(iam, &user.user_name).await?);
    let mut deactivated = CredentialIds::default();
    for (kind, id) in active_before.items() {
        if inactive_now.items().any(|(kind_now, id_now)| kind_now == kind && id_now == id) {
            deactivated.push(kind, id.clone());
        }
    }
    let attached_now = attached_policy_arns(iam, &user.user_name).await?;
    let attached_by_quarantine = !had_deny_all && attached_now.contains(&deny_all);
    let tagged = quarantined_until(user) == Some(until);
    Ok(QuarantineRecord {
        error: Some(error),
        cause: Some(if tagged { cause } else { format!("{cause} (the quarantine tag was not set)") }),
        ..record(until, execution_arn, credentials, already_inactive, deactivated, deny_all, attached_by_quarantine)
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
