//! Restore during a grace period: undo a quarantine from its record
//! ([`lift_quarantine`]). Restore after deletion: recreate a user's identity and permissions from
//! its audit record (same name, path, tags, permissions boundary, group
//! memberships, inline policies with their documents, managed policy
//! attachments). Credentials and MFA devices are never recreated: a restored
//! user gets new ones from its owner. Nothing is changed if a user of that
//! name exists.

use aws_sdk_iam::types::Tag as IamTag;
use aws_sdk_iam::Client;
use serde::{Deserialize, Serialize};

use crate::errors::{classify_sdk_error, is_no_such_entity, OffboardError};
use crate::items::Outcome;
use crate::quarantine::{quarantined_until, reactivate};
use crate::record::AuditRecord;
use crate::target::get_user;

/// What a restore did, or in a dry run would do.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RestoreReport {
    pub user_name: String,
    pub dry_run: bool,
    /// The user, its path, tags and boundary, groups and policies put back.
    pub restored: Vec<String>,
    /// Never restored by design: credentials and MFA devices.
    pub not_restored: Vec<String>,
    /// Restorable but gone from the account (a group or managed policy
    /// deleted since): the restore is incomplete.
    pub could_not_restore: Vec<String>,
}

/// Undoes the quarantine a record (quarantine.json) describes: reactivates
/// exactly the credentials it deactivated, detaches AWSDenyAll if the
/// quarantine attached it, and removes the tag last. The user must still be
/// the one quarantined (same id) and not be held by another quarantine. A
/// re-run after a partial restore finishes it. Stopping the waiting
/// execution first is the caller's part.
pub async fn lift_quarantine(
    iam: &Client,
    record: &AuditRecord,
    dry_run: bool,
) -> Result<RestoreReport, OffboardError> {
    let name = record.user.user_name.as_str();
    let Some(quarantine) = record.quarantine.as_ref().filter(|_| record.user_deletion.is_none()) else {
        return Err(OffboardError::InvalidInput(format!(
            "the record of {name} is not the record of a quarantine; restore --record takes a quarantine.json or a record.json"
        )));
    };
    let Some(user) = get_user(iam, name).await? else {
        return Err(OffboardError::UserNotFound(format!(
            "user {name} no longer exists: its quarantine ended in deletion. Restore it from its record.json instead."
        )));
    };
    if user.user_id != record.user.user_id {
        return Err(OffboardError::UserNotFound(format!(
            "user {name} now has id {}, not {} as quarantined: it is a different user. Nothing was changed.",
            user.user_id, record.user.user_id
        )));
    }
    match quarantined_until(&user) {
        Some(until) if until == quarantine.quarantined_until => {}
        Some(until) => {
            return Err(OffboardError::AlreadyQuarantined(format!(
                "user {name} is held by another quarantine (until {until}, not {}); restore from that quarantine's record. Nothing was changed.",
                quarantine.quarantined_until
            )))
        }
        // The tag goes last, so without it the restore is complete; going
        // on would re-enable a key someone disabled since.
        None => {
            return Err(OffboardError::InvalidInput(format!(
                "user {name} is not quarantined (no {} tag): already restored, or restored by hand. Nothing was changed.",
                quarantine.tag_key
            )))
        }
    }
    let mut report = RestoreReport { user_name: name.to_string(), dry_run, ..RestoreReport::default() };
    let detach = quarantine.deny_all_attached_by_quarantine;
    if dry_run {
        report.restored.extend(quarantine.deactivated.items().map(|(_, id)| format!("reactivate {id}")));
        if detach {
            report.restored.push(format!("detach {}", quarantine.deny_all_policy_arn));
        }
        report.restored.push(format!("remove tag {}", quarantine.tag_key));
        return Ok(report);
    }
    for (what, outcome) in reactivate(iam, name, &quarantine.deactivated).await? {
        match outcome {
            Outcome::Removed => report.restored.push(format!("{what} reactivated")),
            Outcome::AlreadyAbsent => {
                report.could_not_restore.push(format!("{what}: it was deleted since the quarantine"))
            }
        }
    }
    if detach {
        let detached =
            iam.detach_user_policy().user_name(name).policy_arn(&quarantine.deny_all_policy_arn).send().await;
        match detached {
            Ok(_) => report.restored.push(format!("{} detached", quarantine.deny_all_policy_arn)),
            Err(error) if is_no_such_entity(&error) => {
                report.restored.push(format!("{} (already detached)", quarantine.deny_all_policy_arn))
            }
            Err(error) => return Err(classify_sdk_error(error, "iam:DetachUserPolicy", &format!("user {name}"))),
        }
    }
    iam.untag_user()
        .user_name(name)
        .tag_keys(&quarantine.tag_key)
        .send()
        .await
        .map_err(|error| classify_sdk_error(error, "iam:UntagUser", &format!("user {name}")))?;
    report.restored.push(format!("tag {} removed", quarantine.tag_key));
    Ok(report)
}

/// Restores the user the record describes. `dry_run`: only the check that
/// no user of that name exists, then the report of what would be done.
pub async fn restore_from_record(
    iam: &Client,
    record: &AuditRecord,
    dry_run: bool,
) -> Result<RestoreReport, OffboardError> {
    let user = &record.user;
    let name = user.user_name.as_str();
    if record.dry_run || record.user_deletion.is_none() {
        return Err(OffboardError::InvalidInput(format!(
            "the record of {name} is a plan, not the record of a deletion; there is nothing to restore"
        )));
    }
    if let Some(existing) = get_user(iam, name).await? {
        return Err(OffboardError::InvalidInput(format!(
            "a user named {name} already exists ({}); restore never overwrites a user. Nothing was changed.",
            existing.user_id
        )));
    }
    let items = &record.items;
    let mut report = RestoreReport { user_name: name.to_string(), dry_run, ..RestoreReport::default() };
    report.not_restored = never_restored(record);
    let quarantine_deny = quarantine_deny(record);
    if dry_run {
        report.restored.push(format!("user {name} at path {}", user.path));
        report.restored.extend(items.groups.iter().map(|g| format!("membership of group {}", g.group_name)));
        report.restored.extend(items.inline_policies.iter().map(|p| format!("inline policy {}", p.policy_name)));
        report.restored.extend(
            items
                .attached_policies
                .iter()
                .filter(|p| Some(p.policy_arn.as_str()) != quarantine_deny)
                .map(|p| format!("attached policy {}", p.policy_arn)),
        );
        return Ok(report);
    }
    let tags: Vec<IamTag> = user
        .tags
        .iter()
        .map(|tag| IamTag::builder().key(&tag.key).value(&tag.value).build())
        .collect::<Result<_, _>>()
        .map_err(|e| OffboardError::InvalidInput(format!("the record's tags are malformed: {e}")))?;
    iam.create_user()
        .user_name(name)
        .path(&user.path)
        .set_permissions_boundary(user.permissions_boundary.clone())
        .set_tags((!tags.is_empty()).then_some(tags))
        .send()
        .await
        .map_err(|e| classify_sdk_error(e, "iam:CreateUser", &format!("user {name}")))?;
    report.restored.push(format!(
        "user {name} at path {} with {} tag(s){}",
        user.path,
        user.tags.len(),
        user.permissions_boundary.as_deref().map(|b| format!(" and permissions boundary {b}")).unwrap_or_default()
    ));
    for group in &items.groups {
        let what = format!("membership of group {}", group.group_name);
        let added = iam.add_user_to_group().user_name(name).group_name(&group.group_name).send().await;
        settle(&mut report, what, added.map(drop), "iam:AddUserToGroup")?;
    }
    for policy in &items.inline_policies {
        let document = serde_json::to_string(&policy.policy_document).unwrap_or_default();
        iam.put_user_policy()
            .user_name(name)
            .policy_name(&policy.policy_name)
            .policy_document(document)
            .send()
            .await
            .map_err(|e| {
            classify_sdk_error(e, "iam:PutUserPolicy", &format!("inline policy {} of user {name}", policy.policy_name))
        })?;
        report.restored.push(format!("inline policy {}", policy.policy_name));
    }
    for policy in items.attached_policies.iter().filter(|p| Some(p.policy_arn.as_str()) != quarantine_deny) {
        let what = format!("attached policy {}", policy.policy_arn);
        let attached = iam.attach_user_policy().user_name(name).policy_arn(&policy.policy_arn).send().await;
        settle(&mut report, what, attached.map(drop), "iam:AttachUserPolicy")?;
    }
    Ok(report)
}

/// A group or managed policy that no longer exists is reported, not fatal:
/// the rest of the user's permissions still come back.
fn settle<E>(
    report: &mut RestoreReport,
    what: String,
    result: Result<(), aws_sdk_iam::error::SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>>,
    action: &str,
) -> Result<(), OffboardError>
where
    E: aws_sdk_iam::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(()) => report.restored.push(what),
        Err(error) if is_no_such_entity(&error) => {
            report.could_not_restore.push(format!("{what}: it no longer exists"))
        }
        Err(error) => return Err(classify_sdk_error(error, action, &what)),
    }
    Ok(())
}

/// The deny a quarantine attached before the user's deletion: part of the
/// deletion's inventory, never of the user's own permissions, so a restore
/// leaves it out (the restored user could do nothing otherwise).
fn quarantine_deny(record: &AuditRecord) -> Option<&str> {
    record
        .quarantine
        .as_ref()
        .filter(|quarantine| quarantine.deny_all_attached_by_quarantine)
        .map(|quarantine| quarantine.deny_all_policy_arn.as_str())
}

/// Everything restoring `record` would grant, for the operator to read
/// before confirming: the user's boundary (or its absence), groups, every
/// managed policy ARN, every inline policy's name and document size.
pub fn grants(record: &AuditRecord) -> Vec<String> {
    let items = &record.items;
    let mut grants = vec![match &record.user.permissions_boundary {
        Some(boundary) => format!("permissions boundary {boundary}"),
        None => "NO permissions boundary".to_string(),
    }];
    grants.extend(items.groups.iter().map(|group| format!("membership of group {}", group.group_name)));
    let deny = quarantine_deny(record);
    grants.extend(
        items
            .attached_policies
            .iter()
            .filter(|policy| Some(policy.policy_arn.as_str()) != deny)
            .map(|policy| format!("managed policy {}", policy.policy_arn)),
    );
    grants.extend(items.inline_policies.iter().map(|policy| {
        let size = serde_json::to_string(&policy.policy_document).map(|text| text.len()).unwrap_or_default();
        format!("inline policy {} ({size} bytes)", policy.policy_name)
    }));
    grants
}

/// What lifting the quarantine of `record` changes, for the operator to read
/// before confirming.
pub fn lift_changes(record: &AuditRecord) -> Vec<String> {
    let Some(quarantine) = &record.quarantine else { return Vec::new() };
    let mut changes: Vec<String> =
        quarantine.deactivated.items().map(|(kind, id)| format!("reactivate {} {id}", kind.label())).collect();
    if quarantine.deny_all_attached_by_quarantine {
        changes.push(format!("detach {}", quarantine.deny_all_policy_arn));
    }
    changes.push(format!("remove tag {}", quarantine.tag_key));
    changes
}

fn never_restored(record: &AuditRecord) -> Vec<String> {
    let items = &record.items;
    let mut lost = Vec::new();
    if let Some(deny) = quarantine_deny(record) {
        lost.push(format!("{deny}: attached by the quarantine, not the user's own"));
    }
    if items.login_profile.is_some() {
        lost.push("console password (login profile): set a new one".to_string());
    }
    lost.extend(items.access_keys.iter().map(|k| format!("access key {}", k.access_key_id)));
    lost.extend(items.ssh_public_keys.iter().map(|k| format!("SSH public key {}", k.ssh_public_key_id)));
    lost.extend(items.signing_certificates.iter().map(|c| format!("signing certificate {}", c.certificate_id)));
    lost.extend(
        items
            .service_specific_credentials
            .iter()
            .map(|c| format!("{} credential {}", c.service_name, c.service_specific_credential_id)),
    );
    lost.extend(items.mfa_devices.iter().map(|d| format!("MFA device {}", d.serial_number)));
    lost
}
