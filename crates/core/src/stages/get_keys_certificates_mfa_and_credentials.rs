//! GetKeysCertificatesMfaAndCredentials: the user's credentials and MFA
//! devices, listed.

use crate::context::StageContext;
use crate::errors::OffboardError;
use crate::input::checked_user_name;
use crate::inventory::gather_credentials;
use crate::items::CredentialInventory;
use crate::stage::{Stage, Timed};
use crate::stages::UserRequest;
use crate::workflow::Subject;

pub struct GetKeysCertificatesMfaAndCredentials;

impl Stage for GetKeysCertificatesMfaAndCredentials {
    const NAME: &'static str = "GetKeysCertificatesMfaAndCredentials";
    type Request = UserRequest;
    type Response = CredentialInventory;

    fn subject(request: &UserRequest) -> Subject<'_> {
        Subject { user_name: Some(&request.user_name), user_id: Some(&request.user_id) }
    }

    async fn run(ctx: &StageContext, request: UserRequest) -> Result<CredentialInventory, OffboardError> {
        let inventory = gather_credentials(&ctx.iam, checked_user_name(&request.user_name)?).await?;
        tracing::info!(items = inventory.item_count(), mfa_devices = inventory.mfa_devices.len(), "credentials listed");
        Ok(inventory)
    }
}
impl Timed for CredentialInventory {
    fn set_duration_ms(&mut self, duration_ms: u64) {
        self.duration_ms = Some(duration_ms);
    }
}
