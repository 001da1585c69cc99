//! What a user holds: the two inventory stages. Every list is paginated.
//! Items carry an `Outcome` once a removal stage has handled them.

use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iam::Client;
use aws_smithy_async::future::pagination_stream::PaginationStream;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use futures_util::{StreamExt, TryStreamExt};
use serde_json::Value;

use crate::errors::{classify_sdk_error, is_no_such_entity, OffboardError};
use crate::iam_calls::{collect_all, format_date, CONCURRENCY, PAGE_SIZE};
use crate::items::{
    AccessKey, AttachedPolicy, CredentialInventory, GroupMembership, InlinePolicy, LoginProfile, MfaDevice,
    PermissionInventory, ServiceSpecificCredential, SigningCertificate, SshPublicKey,
};
use crate::mfa::classify;

fn user_resource(user_name: &str) -> String {
    format!("user {user_name}")
}

/// [`collect_all`] of a list about one user.
async fn collect_items<T, E>(
    items: PaginationStream<Result<T, SdkError<E, HttpResponse>>>,
    action: &str,
    user_name: &str,
) -> Result<Vec<T>, OffboardError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    collect_all(items, action, &user_resource(user_name)).await
}

/// Lists everything GetKeysCertificatesMfaAndCredentials reports, with the
/// six list calls in flight together.
pub async fn gather_credentials(iam: &Client, user_name: &str) -> Result<CredentialInventory, OffboardError> {
    let (login_profile, access_keys, ssh_public_keys, signing_certificates, service_specific_credentials, mfa_devices) =
        tokio::try_join!(
            get_login_profile(iam, user_name),
            list_access_keys(iam, user_name),
            list_ssh_public_keys(iam, user_name),
            list_signing_certificates(iam, user_name),
            list_service_specific_credentials(iam, user_name),
            list_mfa_devices(iam, user_name),
        )?;
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

async fn get_login_profile(iam: &Client, user_name: &str) -> Result<Option<LoginProfile>, OffboardError> {
    match iam.get_login_profile().user_name(user_name).send().await {
        Ok(output) => Ok(output.login_profile().map(|profile| LoginProfile {
            create_date: Some(format_date(profile.create_date())),
            password_reset_required: profile.password_reset_required(),
            outcome: None,
        })),
        // GetLoginProfile answers NoSuchEntity both for "no password" and for
        // "no user"; the sibling list calls tell a missing user apart.
        Err(error) if is_no_such_entity(&error) => Ok(None),
        Err(error) => Err(classify_sdk_error(error, "iam:GetLoginProfile", &user_resource(user_name))),
    }
}

async fn list_access_keys(iam: &Client, user_name: &str) -> Result<Vec<AccessKey>, OffboardError> {
    let items = iam.list_access_keys().user_name(user_name).max_items(PAGE_SIZE).into_paginator().items().send();
    collect_items(items, "iam:ListAccessKeys", user_name).await.map(|keys| {
        keys.into_iter()
            .filter_map(|key| {
                Some(AccessKey {
                    access_key_id: key.access_key_id?,
                    status: key.status.map(|s| s.as_str().to_string()).unwrap_or_default(),
                    create_date: key.create_date.as_ref().map(format_date),
                    outcome: None,
                })
            })
            .collect()
    })
}

async fn list_ssh_public_keys(iam: &Client, user_name: &str) -> Result<Vec<SshPublicKey>, OffboardError> {
    let items = iam.list_ssh_public_keys().user_name(user_name).max_items(PAGE_SIZE).into_paginator().items().send();
    collect_items(items, "iam:ListSSHPublicKeys", user_name).await.map(|keys| {
        keys.into_iter()
            .map(|key| SshPublicKey {
                ssh_public_key_id: key.ssh_public_key_id().to_string(),
                status: key.status().as_str().to_string(),
                upload_date: Some(format_date(key.upload_date())),
                outcome: None,
            })
            .collect()
    })
}

async fn list_signing_certificates(iam: &Client, user_name: &str) -> Result<Vec<SigningCertificate>, OffboardError> {
    let items =
        iam.list_signing_certificates().user_name(user_name).max_items(PAGE_SIZE).into_paginator().items().send();
    collect_items(items, "iam:ListSigningCertificates", user_name).await.map(|certificates| {
        certificates
            .into_iter()
            .map(|certificate| SigningCertificate {
                certificate_id: certificate.certificate_id().to_string(),
                status: certificate.status().as_str().to_string(),
                upload_date: certificate.upload_date().map(format_date),
                outcome: None,
            })
            .collect()
    })
}

/// No ServiceName filter, so Bedrock API keys are listed with the rest.
/// The SDK generates no paginator for this operation: follow Marker by hand.
async fn list_service_specific_credentials(
    iam: &Client,
    user_name: &str,
) -> Result<Vec<ServiceSpecificCredential>, OffboardError> {
    let mut credentials = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = iam
            .list_service_specific_credentials()
            .user_name(user_name)
            .max_items(PAGE_SIZE)
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| classify_sdk_error(e, "iam:ListServiceSpecificCredentials", &user_resource(user_name)))?;
        credentials.extend(page.service_specific_credentials().iter().map(|credential| ServiceSpecificCredential {
            service_specific_credential_id: credential.service_specific_credential_id().to_string(),
            service_name: credential.service_name().to_string(),
            service_user_name: Some(credential.service_user_name().to_string()).filter(|name| !name.is_empty()),
            status: credential.status().as_str().to_string(),
            create_date: Some(format_date(credential.create_date())),
            outcome: None,
        }));
        match page.marker() {
            Some(next) if page.is_truncated() => marker = Some(next.to_string()),
            _ => return Ok(credentials),
        }
    }
}

pub async fn list_mfa_devices(iam: &Client, user_name: &str) -> Result<Vec<MfaDevice>, OffboardError> {
    let items = iam.list_mfa_devices().user_name(user_name).max_items(PAGE_SIZE).into_paginator().items().send();
    collect_items(items, "iam:ListMFADevices", user_name).await.map(|devices| {
        devices
            .into_iter()
            .map(|device| MfaDevice {
                handled_as: classify(device.serial_number()),
                serial_number: device.serial_number().to_string(),
                enable_date: Some(format_date(device.enable_date())),
                deactivation: None,
                virtual_device_deletion: None,
                duration_ms: None,
            })
            .collect()
    })
}

/// Lists what GetGroupsAndPolicies reports, capturing each inline policy's
/// document so the user's permissions can be recreated from the record.
pub async fn gather_permissions(iam: &Client, user_name: &str) -> Result<PermissionInventory, OffboardError> {
    let (groups, inline_policies, attached_policies) = tokio::try_join!(
        list_groups(iam, user_name),
        list_inline_policies(iam, user_name),
        list_attached_policies(iam, user_name),
    )?;
    Ok(PermissionInventory { groups, inline_policies, attached_policies, duration_ms: None })
}

async fn list_groups(iam: &Client, user_name: &str) -> Result<Vec<GroupMembership>, OffboardError> {
    let items = iam.list_groups_for_user().user_name(user_name).max_items(PAGE_SIZE).into_paginator().items().send();
    collect_items(items, "iam:ListGroupsForUser", user_name).await.map(|groups| {
        groups
            .into_iter()
            .map(|group| GroupMembership {
                group_name: group.group_name().to_string(),
                group_arn: Some(group.arn().to_string()),
                outcome: None,
            })
            .collect()
    })
}

async fn list_inline_policies(iam: &Client, user_name: &str) -> Result<Vec<InlinePolicy>, OffboardError> {
    let items = iam.list_user_policies().user_name(user_name).max_items(PAGE_SIZE).into_paginator().items().send();
    let names = collect_items(items, "iam:ListUserPolicies", user_name).await?;
    futures_util::stream::iter(names)
        .map(|policy_name| get_inline_policy(iam, user_name, policy_name))
        .buffered(CONCURRENCY)
        .try_collect()
        .await
}

async fn get_inline_policy(iam: &Client, user_name: &str, policy_name: String) -> Result<InlinePolicy, OffboardError> {
    let output = iam.get_user_policy().user_name(user_name).policy_name(&policy_name).send().await.map_err(|e| {
        classify_sdk_error(e, "iam:GetUserPolicy", &format!("inline policy {policy_name} of user {user_name}"))
    })?;
    Ok(InlinePolicy { policy_document: decode_policy_document(output.policy_document()), policy_name, outcome: None })
}

/// IAM returns policy documents URL-encoded (RFC 3986).
pub fn decode_policy_document(encoded: &str) -> Value {
    let decoded = percent_encoding::percent_decode_str(encoded).decode_utf8_lossy();
    serde_json::from_str(&decoded).unwrap_or_else(|_| Value::String(decoded.into_owned()))
}

async fn list_attached_policies(iam: &Client, user_name: &str) -> Result<Vec<AttachedPolicy>, OffboardError> {
    let items =
        iam.list_attached_user_policies().user_name(user_name).max_items(PAGE_SIZE).into_paginator().items().send();
    collect_items(items, "iam:ListAttachedUserPolicies", user_name).await.map(|policies| {
        policies
            .into_iter()
            .filter_map(|policy| {
                Some(AttachedPolicy { policy_arn: policy.policy_arn?, policy_name: policy.policy_name, outcome: None })
            })
            .collect()
    })
}

/// The user's group memberships and policies as they are now, named ("group
/// admins", "inline policy p", "attached policy arn"), without documents.
pub async fn permission_names(iam: &Client, user_name: &str) -> Result<Vec<String>, OffboardError> {
    let groups = iam.list_groups_for_user().user_name(user_name).max_items(PAGE_SIZE).into_paginator().items().send();
    let inline = iam.list_user_policies().user_name(user_name).max_items(PAGE_SIZE).into_paginator().items().send();
    let attached =
        iam.list_attached_user_policies().user_name(user_name).max_items(PAGE_SIZE).into_paginator().items().send();
    let (groups, inline, attached) = tokio::try_join!(
        collect_items(groups, "iam:ListGroupsForUser", user_name),
        collect_items(inline, "iam:ListUserPolicies", user_name),
        collect_items(attached, "iam:ListAttachedUserPolicies", user_name),
    )?;
    let mut names: Vec<String> = groups.iter().map(|group| format!("group {}", group.group_name())).collect();
    names.extend(inline.iter().map(|policy| format!("inline policy {policy}")));
    names.extend(attached.iter().filter_map(|policy| policy.policy_arn()).map(|arn| format!("attached policy {arn}")));
    Ok(names)
}

/// The ARNs of the managed policies attached to the user now.
pub async fn attached_policy_arns(iam: &Client, user_name: &str) -> Result<Vec<String>, OffboardError> {
    Ok(list_attached_policies(iam, user_name).await?.into_iter().map(|policy| policy.policy_arn).collect())
}
