//! DeleteKeysCertificatesMfaAndCredentials: the credentials of an inventory,
//! or one MFA device as the state machine's Map sends it.

use serde::{Deserialize, Serialize};

use crate::context::StageContext;
use crate::errors::OffboardError;
use crate::inventory::list_mfa_devices;
use crate::items::{CredentialInventory, MfaClass, MfaDevice, Outcome};
use crate::mfa::{delete_left_unassigned, remove_mfa_device};
use crate::removal::delete_credentials;
use crate::stage::{Stage, Timed};
use crate::workflow::Subject;

/// Either the whole credential inventory, or one MFA device as the state
/// machine's Map sends it (with the route its Choice picked).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CredentialRemovalRequest {
    pub user_name: String,
    /// The id GetUsername resolved: re-checked before the first change.
    pub user_id: String,
    #[serde(default)]
    pub credentials: Option<CredentialInventory>,
    #[serde(default, rename = "MFADevice")]
    pub mfa_device: Option<MfaDevice>,
    #[serde(default)]
    pub handled_as: Option<MfaClass>,
    /// The state machine's `$$.State.RetryCount` for this MFA task: on a
    /// retry a serial the user no longer holds was most likely deactivated
    /// by the earlier attempt, so it is recorded rather than refused.
    #[serde(default)]
    pub retry_count: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum CredentialRemoval {
    Credentials(CredentialInventory),
    MfaDevice(MfaDevice),
}

impl Timed for CredentialRemoval {
    fn set_duration_ms(&mut self, duration_ms: u64) {
        match self {
            Self::Credentials(inventory) => inventory.duration_ms = Some(duration_ms),
            Self::MfaDevice(device) => device.duration_ms = Some(duration_ms),
        }
    }
}

pub struct DeleteKeysCertificatesMfaAndCredentials;

impl Stage for DeleteKeysCertificatesMfaAndCredentials {
    const NAME: &'static str = "DeleteKeysCertificatesMfaAndCredentials";
    type Request = CredentialRemovalRequest;
    type Response = CredentialRemoval;

    fn subject(request: &CredentialRemovalRequest) -> Subject<'_> {
        Subject { user_name: Some(&request.user_name), user_id: Some(&request.user_id) }
    }

    async fn run(ctx: &StageContext, request: CredentialRemovalRequest) -> Result<CredentialRemoval, OffboardError> {
        let user_name = request.user_name.as_str();
        match (request.credentials, request.mfa_device, request.handled_as) {
            (Some(credentials), None, None) => {
                ctx.recheck_existing(user_name, &request.user_id).await?;
                let removed = delete_credentials(&ctx.iam, user_name, &request.user_id, credentials).await?;
                tracing::info!(items = removed.item_count(), "credentials removed");
                Ok(CredentialRemoval::Credentials(removed))
            }
            (None, Some(device), handled_as) => {
                ctx.recheck_existing(user_name, &request.user_id).await?;
                let handled_as = handled_as.unwrap_or(device.handled_as);
                let held = list_mfa_devices(&ctx.iam, user_name).await?;
                if held.iter().any(|d| d.serial_number == device.serial_number) {
                    return Ok(CredentialRemoval::MfaDevice(
                        remove_mfa_device(&ctx.iam, user_name, &request.user_id, device, handled_as).await?,
                    ));
                }
                if request.retry_count == 0 {
                    return Err(OffboardError::InvalidInput(format!(
                        "user {user_name} holds no MFA device {}; nothing was changed. Send a serial from the user's own inventory.",
                        device.serial_number
                    )));
                }
                // The earlier attempt most likely deactivated it. Its device is
                // deleted only when marked as taken from this very user: an
                // unmarked one may be another identity's.
                let virtual_device_deletion = match handled_as {
                    MfaClass::Virtual => {
                        delete_left_unassigned(&ctx.iam, &device.serial_number, &request.user_id).await?
                    }
                    MfaClass::NonVirtual => None,
                };
                tracing::info!(serial_number = %device.serial_number, retry_count = request.retry_count,
                    ?virtual_device_deletion, "the user no longer holds this MFA device: an earlier attempt deactivated it");
                Ok(CredentialRemoval::MfaDevice(MfaDevice {
                    handled_as,
                    deactivation: Some(Outcome::AlreadyAbsent),
                    virtual_device_deletion,
                    ..device
                }))
            }
            (Some(_), Some(_), _) => Err(OffboardError::InvalidInput(format!(
                "{} input has both Credentials and MFADevice; send one",
                Self::NAME
            ))),
            (None, None, _) => Err(OffboardError::InvalidInput(format!(
                "{} input has neither Credentials nor MFADevice; send one",
                Self::NAME
            ))),
            (Some(_), None, Some(_)) => Err(OffboardError::InvalidInput(format!(
                "{} input: HandledAs goes with MFADevice, not with Credentials",
                Self::NAME
            ))),
        }
    }
}
