//! The MFA rule. Only virtual devices (`arn:<partition>:iam::<account>:mfa/...`)
//! exist as IAM entities of their own and need DeleteVirtualMFADevice; passkeys
//! and security keys (`...:u2f/...`) and hardware TOTP tokens (plain serials
//! such as `GAKT12345678`) need DeactivateMFADevice alone. Calling
//! DeleteVirtualMFADevice on them is what makes other tools fail with
//! NoSuchEntity on the first run.

use std::time::Instant;

use aws_sdk_iam::Client;
use serde::{Deserialize, Serialize};

use crate::errors::OffboardError;
use crate::inventory::MfaDevice;
use crate::removal::idempotent;

/// The state machine's Choice uses this very pattern (`StringMatches`).
pub const VIRTUAL_MFA_SERIAL_PATTERN: &str = "arn:aws*:iam::*:mfa/*";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MfaClass {
    /// Deactivate, then DeleteVirtualMFADevice.
    Virtual,
    /// Passkey, security key or hardware token: deactivate only.
    NonVirtual,
}

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

/// Removes one MFA device from the user, as the state machine's Map does for
/// each device. `handled_as` is the route the caller chose (the state
/// machine's Choice, or [`classify`] for the CLI).
pub async fn remove_mfa_device(
    iam: &Client,
    user_name: &str,
    mut device: MfaDevice,
    handled_as: MfaClass,
) -> Result<MfaDevice, OffboardError> {
    let started = Instant::now();
    let serial = device.serial_number.clone();
    let resource = format!("MFA device {serial} of user {user_name}");
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
        device.virtual_device_deletion = Some(idempotent(
            iam.delete_virtual_mfa_device().serial_number(&serial).send().await,
            "iam:DeleteVirtualMFADevice",
            &format!("virtual MFA device {serial}"),
        )?);
    }
    device.duration_ms = Some(started.elapsed().as_millis() as u64);
    tracing::info!(serial_number = %serial, handled_as = ?handled_as, ?deactivation, "MFA device removed");
    Ok(device)
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
        assert!(string_matches("abc", "abc"));
    }
}
