//! The MFA rule. Only virtual devices (`arn:<partition>:iam::<account>:mfa/...`)
//! exist as IAM entities of their own and need DeleteVirtualMFADevice; passkeys
//! and security keys (`...:u2f/...`) and hardware TOTP tokens (plain serials
//! such as `GAKT12345678`) need DeactivateMFADevice alone. Calling
//! DeleteVirtualMFADevice on them is what makes other tools fail with
//! NoSuchEntity on the first run.

use std::time::Instant;

use crate::errors::{classify_sdk_error, is_no_such_entity, OffboardError};
use crate::iam_calls::idempotent;
use crate::items::{MfaClass, MfaDevice, Outcome};
use aws_sdk_iam::types::Tag;
use aws_sdk_iam::Client;

/// The state machine's Choice uses this very pattern (`StringMatches`).
pub const VIRTUAL_MFA_SERIAL_PATTERN: &str = "arn:aws*:iam::*:mfa/*";

pub fn classify(serial_number: &str) -> MfaClass {
    if string_matches(VIRTUAL_MFA_SERIAL_PATTERN, serial_number) {
        MfaClass::Virtual
    } else {
        MfaClass::NonVirtual
    }
}

/// Amazon States Language `StringMatches`: `*` matches any run of characters
/// (the patterns used here contain no escapes).
pub fn string_matches(pattern: &str, value: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = value.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// The tag a virtual device gets just before it is deactivated: the id of the
/// user it is taken from. A stage that stops between deactivating and
/// deleting the device (its deadline, throttling) leaves it unassigned; the
/// state machine's retry then finds the user no longer holds the serial, and
/// deletes the device only if it carries this user's id. An unassigned device
/// without it may be someone else's, created and not yet enabled: never
/// deleted.
pub const TAKEN_FROM_TAG: &str = "offboard:deactivated-from";

/// Removes one MFA device from the user, as the state machine's Map does for
/// each device. `handled_as` is the route the caller chose (the state
/// machine's Choice, or [`classify`] for the CLI).
pub async fn remove_mfa_device(
    iam: &Client,
    user_name: &str,
    user_id: &str,
    mut device: MfaDevice,
    handled_as: MfaClass,
) -> Result<MfaDevice, OffboardError> {
    let started = Instant::now();
    let serial = device.serial_number.clone();
    let resource = format!("MFA device {serial} of user {user_name}");
    if handled_as == MfaClass::Virtual {
        mark_taken_from(iam, &serial, user_id).await?;
    }
    let deactivation = idempotent(
        iam.deactivate_mfa_device().user_name(user_name).serial_number(&serial).send().await,
        "iam:DeactivateMFADevice",
        &resource,
    )?;
    device.handled_as = handled_as;
    device.deactivation = Some(deactivation);
    if handled_as == MfaClass::Virtual {
        // NoSuchEntity here means the device was not a virtual one after all
        // (or is already gone): either way there is nothing left to delete.
        device.virtual_device_deletion = Some(delete_virtual_device(iam, &serial).await?);
    }
    device.duration_ms = Some(started.elapsed().as_millis() as u64);
    tracing::info!(serial_number = %serial, handled_as = ?handled_as, ?deactivation, "MFA device removed");
    Ok(device)
}

/// DeleteVirtualMFADevice; NoSuchEntity is `AlreadyAbsent`.
async fn delete_virtual_device(iam: &Client, serial: &str) -> Result<Outcome, OffboardError> {
    idempotent(
        iam.delete_virtual_mfa_device().serial_number(serial).send().await,
        "iam:DeleteVirtualMFADevice",
        &format!("virtual MFA device {serial}"),
    )
}

/// Tags a virtual device with [`TAKEN_FROM_TAG`]. The mark only makes a
/// retry able to finish the job, so a deployment whose role may not tag
/// (a target account's role from before the tag) or a device at IAM's 50-tag
/// limit goes on without it, logged; NoSuchEntity means the serial is not a
/// virtual device after all, which DeleteVirtualMFADevice then records.
async fn mark_taken_from(iam: &Client, serial: &str, user_id: &str) -> Result<(), OffboardError> {
    let tag = Tag::builder()
        .key(TAKEN_FROM_TAG)
        .value(user_id)
        .build()
        .map_err(|error| OffboardError::InvalidInput(format!("tag for MFA device {serial}: {error}")))?;
    match iam.tag_mfa_device().serial_number(serial).tags(tag).send().await {
        Ok(_) => Ok(()),
        Err(error) if is_no_such_entity(&error) => Ok(()),
        Err(error) => match classify_sdk_error(error, "iam:TagMFADevice", &format!("virtual MFA device {serial}")) {
            OffboardError::AccessDenied(why) | OffboardError::LimitExceeded(why) => {
                tracing::warn!(serial_number = %serial, %why,
                    "the virtual MFA device could not be marked as taken from this user; if this stage stops between deactivating and deleting it, its retry will leave it unassigned");
                Ok(())
            }
            other => Err(other),
        },
    }
}

/// On the state machine's retry, a virtual device the user no longer holds:
/// deleted when it carries this user's id in [`TAKEN_FROM_TAG`] (an earlier
/// attempt deactivated it and stopped before deleting it), left alone
/// otherwise. `None` when nothing was deleted.
pub async fn delete_left_unassigned(
    iam: &Client,
    serial: &str,
    user_id: &str,
) -> Result<Option<Outcome>, OffboardError> {
    // One page holds every tag: IAM allows 50 per resource and answers 100 by default.
    let tags = match iam.list_mfa_device_tags().serial_number(serial).send().await {
        Ok(answer) => answer.tags,
        Err(error) if is_no_such_entity(&error) => return Ok(Some(Outcome::AlreadyAbsent)),
        Err(error) => {
            return Err(classify_sdk_error(error, "iam:ListMFADeviceTags", &format!("virtual MFA device {serial}")))
        }
    };
    if !tags.iter().any(|tag| tag.key == TAKEN_FROM_TAG && tag.value == user_id) {
        tracing::warn!(serial_number = %serial,
            "the user no longer holds this MFA device and it is not marked as taken from this user; it is left alone");
        return Ok(None);
    }
    match delete_virtual_device(iam, serial).await {
        Err(OffboardError::DeleteConflict(why)) => {
            tracing::warn!(serial_number = %serial, %why, "the device was assigned again since; it is left alone");
            Ok(None)
        }
        deleted => deleted.map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_devices_in_every_partition() {
        for serial in [
            "arn:aws:iam::123456789012:mfa/alice",
            "arn:aws:iam::123456789012:mfa/engineering/alice-phone",
            "arn:aws-cn:iam::123456789012:mfa/alice",
            "arn:aws-us-gov:iam::123456789012:mfa/alice",
        ] {
            assert_eq!(classify(serial), MfaClass::Virtual, "{serial}");
        }
    }

    #[test]
    fn passkeys_security_keys_and_hardware_tokens_are_not_virtual() {
        for serial in [
            "arn:aws:iam::123456789012:u2f/user/alice/key-ABCDEFGHIJKLMNOPQRSTUVWXYZ",
            "arn:aws-us-gov:iam::123456789012:u2f/user/alice/yubikey-1",
            "GAKT12345678",
            "GAHT12345678",
            "arn:aws:iam::123456789012:user/alice",
            "mfa/alice",
            "",
        ] {
            assert_eq!(classify(serial), MfaClass::NonVirtual, "{serial}");
        }
    }

    #[test]
    fn string_matches_follows_asl() {
        assert!(string_matches("*", ""));
        assert!(string_matches("a*", "a"));
        assert!(string_matches("*b", "ab"));
        assert!(!string_matches("*ab", "b"));
        assert!(string_matches("a*b*c", "a-b-c"));
        assert!(!string_matches("a*b*c", "a-c-b"));
        assert!(!string_matches("abc", "abcd"));
        assert!(!string_matches("a*b", "axc"), "the end must match, not only be long enough");
        assert!(string_matches("abc", "abc"));
    }
}
