//! The removal stages. Every delete is idempotent (NoSuchEntity means the
//! item is already gone) and a stage that fails part-way says in its error
//! what it had already removed, so the record stays complete and a re-run
//! finishes the job.

use std::future::Future;
use std::time::Duration;

use aws_sdk_iam::error::ProvideErrorMetadata;
use aws_sdk_iam::Client;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::deadline;
use crate::errors::{classify_sdk_error, is_no_such_entity, OffboardError};
use crate::iam_calls::{idempotent, CONCURRENCY};
use crate::inventory::permission_names;
use crate::items::{AttachedPolicy, CredentialInventory, Outcome, PermissionInventory};
use crate::mfa::{classify, remove_mfa_device};
use crate::quarantine::deny_all_policy_arn;
use crate::target::TargetUser;

/// What a stage removed so far, so that a failure can name it.
#[derive(Default)]
struct Progress {
    removed: Vec<String>,
}

impl Progress {
    /// Runs `remove` on every item, at most [`CONCURRENCY`] at a time, in
    /// order. Every item is attempted even after a failure; the error then
    /// names everything this stage did remove.
    async fn remove_all<T, F, Fut>(
        &mut self,
        items: Vec<T>,
        describe: impl Fn(&T) -> String,
        remove: F,
    ) -> Result<Vec<T>, OffboardError>
    where
        F: Fn(T) -> Fut,
        Fut: Future<Output = Result<T, OffboardError>>,
    {
        let results: Vec<(String, Result<T, OffboardError>)> = futures_util::stream::iter(items)
            .map(|item| {
                let label = describe(&item);
                let removal = remove(item);
                async move {
                    let result = deadline::before_stop(removal, &label).await;
                    (label, result)
                }
            })
            .buffered(CONCURRENCY)
            .collect()
            .await;
        let mut done = Vec::with_capacity(results.len());
        let mut first_error = None;
        for (label, result) in results {
            match result {
                Ok(item) => {
                    self.removed.push(label);
                    done.push(item);
                }
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        match first_error {
            Some(error) => Err(self.annotate(error)),
            None => Ok(done),
        }
    }

    fn annotate(&self, error: OffboardError) -> OffboardError {
        if self.removed.is_empty() {
            error.with_note("Nothing was removed by this stage before the failure.")
        } else {
            error.with_note(&format!(
                "Removed before the failure: {}. Re-run to finish; removed items count as done.",
                self.removed.join(", ")
            ))
        }
    }
}

/// DeleteKeysCertificatesMfaAndCredentials for a whole inventory. The login
/// profile goes first so console access ends at once, access keys next.
/// MFA devices in the request are handled by the MFA rule (the state machine
/// sends them one by one instead and passes none here).
pub async fn delete_credentials(
    iam: &Client,
    user_name: &str,
    user_id: &str,
    inventory: CredentialInventory,
) -> Result<CredentialInventory, OffboardError> {
    let mut progress = Progress::default();
    let login_profile = match inventory.login_profile {
        None => None,
        Some(mut profile) => {
            let resource = format!("login profile of user {user_name}");
            let delete = async {
                idempotent(
                    iam.delete_login_profile().user_name(user_name).send().await,
                    "iam:DeleteLoginProfile",
                    &resource,
                )
            };
            let outcome = deadline::before_stop(delete, &resource).await.map_err(|e| progress.annotate(e))?;
            profile.outcome = Some(outcome);
            progress.removed.push("login profile".into());
            Some(profile)
        }
    };
    let access_keys = progress
        .remove_all(
            inventory.access_keys,
            |key| format!("access key {}", key.access_key_id),
            |mut key| async move {
                key.outcome = Some(idempotent(
                    iam.delete_access_key().user_name(user_name).access_key_id(&key.access_key_id).send().await,
                    "iam:DeleteAccessKey",
                    &format!("access key {} of user {user_name}", key.access_key_id),
                )?);
                Ok(key)
            },
        )
        .await?;
    let ssh_public_keys = progress
        .remove_all(
            inventory.ssh_public_keys,
            |key| format!("SSH key {}", key.ssh_public_key_id),
            |mut key| async move {
                key.outcome = Some(idempotent(
                    iam.delete_ssh_public_key()
                        .user_name(user_name)
                        .ssh_public_key_id(&key.ssh_public_key_id)
                        .send()
                        .await,
                    "iam:DeleteSSHPublicKey",
                    &format!("SSH public key {} of user {user_name}", key.ssh_public_key_id),
                )?);
                Ok(key)
            },
        )
        .await?;
    let signing_certificates = progress
        .remove_all(
            inventory.signing_certificates,
            |certificate| format!("signing certificate {}", certificate.certificate_id),
            |mut certificate| async move {
                certificate.outcome = Some(idempotent(
                    iam.delete_signing_certificate()
                        .user_name(user_name)
                        .certificate_id(&certificate.certificate_id)
                        .send()
                        .await,
                    "iam:DeleteSigningCertificate",
                    &format!("signing certificate {} of user {user_name}", certificate.certificate_id),
                )?);
                Ok(certificate)
            },
        )
        .await?;
    let service_specific_credentials = progress
        .remove_all(
            inventory.service_specific_credentials,
            |credential| {
                format!("{} credential {}", credential.service_name, credential.service_specific_credential_id)
            },
            |mut credential| async move {
                credential.outcome = Some(idempotent(
                    iam.delete_service_specific_credential()
                        .user_name(user_name)
                        .service_specific_credential_id(&credential.service_specific_credential_id)
                        .send()
                        .await,
                    "iam:DeleteServiceSpecificCredential",
                    &format!(
                        "{} credential {} of user {user_name}",
                        credential.service_name, credential.service_specific_credential_id
                    ),
                )?);
                Ok(credential)
            },
        )
        .await?;
    let mfa_devices = progress
        .remove_all(
            inventory.mfa_devices,
            |device| format!("MFA device {}", device.serial_number),
            |device| {
                let handled_as = classify(&device.serial_number);
                remove_mfa_device(iam, user_name, user_id, device, handled_as)
            },
        )
        .await?;
    Ok(CredentialInventory {
        login_profile,
        access_keys,
        ssh_public_keys,
        signing_certificates,
        service_specific_credentials,
        mfa_devices,
        duration_ms: None,
    })
}

/// DeleteGroupsAndPolicies: memberships, inline policies, attachments, and
/// `AWSDenyAll` last. A quarantined user keeps its deny until every other
/// group and policy is confirmed gone: a failure part-way (a detach an SCP
/// refuses, throttling past the stage's deadline) must never leave it with a
/// grant and no deny, since session credentials issued before the quarantine
/// (GetSessionToken: up to 36 hours) are evaluated at every request.
pub async fn delete_permissions(
    iam: &Client,
    user: &TargetUser,
    inventory: PermissionInventory,
) -> Result<PermissionInventory, OffboardError> {
    let user_name = user.user_name.as_str();
    let deny_all = deny_all_policy_arn(&user.arn);
    let (deny, attached): (Vec<AttachedPolicy>, Vec<AttachedPolicy>) =
        inventory.attached_policies.into_iter().partition(|policy| policy.policy_arn == deny_all);
    let mut progress = Progress::default();
    let groups = progress
        .remove_all(
            inventory.groups,
            |group| format!("membership of group {}", group.group_name),
            |mut group| async move {
                group.outcome = Some(idempotent(
                    iam.remove_user_from_group().user_name(user_name).group_name(&group.group_name).send().await,
                    "iam:RemoveUserFromGroup",
                    &format!("membership of user {user_name} in group {}", group.group_name),
                )?);
                Ok(group)
            },
        )
        .await?;
    let inline_policies = progress
        .remove_all(
            inventory.inline_policies,
            |policy| format!("inline policy {}", policy.policy_name),
            |mut policy| async move {
                policy.outcome = Some(idempotent(
                    iam.delete_user_policy().user_name(user_name).policy_name(&policy.policy_name).send().await,
                    "iam:DeleteUserPolicy",
                    &format!("inline policy {} of user {user_name}", policy.policy_name),
                )?);
                Ok(policy)
            },
        )
        .await?;
    let detach = |mut policy: AttachedPolicy| async move {
        policy.outcome = Some(idempotent(
            iam.detach_user_policy().user_name(user_name).policy_arn(&policy.policy_arn).send().await,
            "iam:DetachUserPolicy",
            &format!("policy {} attached to user {user_name}", policy.policy_arn),
        )?);
        Ok(policy)
    };
    let describe = |policy: &AttachedPolicy| format!("attached policy {}", policy.policy_arn);
    let mut attached_policies = progress.remove_all(attached, describe, detach).await?;
    if !deny.is_empty() {
        let remaining: Vec<String> = permission_names(iam, user_name)
            .await
            .map_err(|error| progress.annotate(error))?
            .into_iter()
            .filter(|name| *name != format!("attached policy {deny_all}"))
            .collect();
        if !remaining.is_empty() {
            return Err(progress.annotate(OffboardError::DeleteConflict(format!(
                "user {user_name} still has {}, so {deny_all} stays attached until they are gone. The state machine re-inventories and removes them.",
                remaining.join(", ")
            ))));
        }
        attached_policies.extend(progress.remove_all(deny, describe, detach).await?);
    }
    Ok(PermissionInventory { groups, inline_policies, attached_policies, duration_ms: None })
}

/// How long DeleteIAMUserAndVerify waits for IAM to agree the user is gone.
#[derive(Debug, Clone, Copy)]
pub struct VerifyPolicy {
    pub max_attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for VerifyPolicy {
    /// About 20 s in all: IAM usually settles within a few seconds.
    fn default() -> Self {
        Self { max_attempts: 10, first_delay: Duration::from_millis(200), max_delay: Duration::from_secs(4) }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct UserDeletion {
    pub outcome: Outcome,
    /// GetUser calls until IAM answered NoSuchEntity.
    pub verification_attempts: u32,
}

/// DeleteUser, then poll GetUser until NoSuchEntity: IAM is eventually
/// consistent, so a user can still be read for a moment after its deletion.
pub async fn delete_user_and_verify(
    iam: &Client,
    user_name: &str,
    policy: VerifyPolicy,
) -> Result<UserDeletion, OffboardError> {
    let resource = format!("user {user_name}");
    let outcome = match iam.delete_user().user_name(user_name).send().await {
        Ok(_) => Outcome::Removed,
        Err(error) if is_no_such_entity(&error) => Outcome::AlreadyAbsent,
        Err(error) if error.code() == Some("DeleteConflict") => {
            return Err(OffboardError::DeleteConflict(format!(
                "iam:DeleteUser on {resource} was refused: {} Something was added to the user after the inventory; the state machine re-inventories and removes what remains (or re-run `offboard delete`).",
                error.message().unwrap_or("the user still has attached entities.")
            )));
        }
        Err(error) => return Err(classify_sdk_error(error, "iam:DeleteUser", &resource)),
    };
    let mut delay = policy.first_delay;
    for attempt in 1..=policy.max_attempts {
        match iam.get_user().user_name(user_name).send().await {
            Err(error) if is_no_such_entity(&error) => {
                return Ok(UserDeletion { outcome, verification_attempts: attempt });
            }
            Err(error) => return Err(classify_sdk_error(error, "iam:GetUser", &resource)),
            Ok(_) if attempt < policy.max_attempts => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(policy.max_delay);
            }
            Ok(_) => {}
        }
    }
    Err(OffboardError::VerificationFailed(format!(
        "iam:DeleteUser on {resource} succeeded but GetUser still returned the user after {} attempts. IAM may be slow to settle: re-run DeleteIAMUserAndVerify (deleting again is harmless) or check in the console.",
        policy.max_attempts
    )))
}
