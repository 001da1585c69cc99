//! GetGroupsAndPolicies: the user's group memberships and policies, inline
//! documents captured.

use crate::context::StageContext;
use crate::errors::OffboardError;
use crate::input::checked_user_name;
use crate::inventory::gather_permissions;
use crate::items::PermissionInventory;
use crate::stage::{Stage, Timed};
use crate::stages::UserRequest;
use crate::workflow::Subject;

pub struct GetGroupsAndPolicies;

impl Stage for GetGroupsAndPolicies {
    const NAME: &'static str = "GetGroupsAndPolicies";
    type Request = UserRequest;
    type Response = PermissionInventory;

    fn subject(request: &UserRequest) -> Subject<'_> {
        Subject { user_name: Some(&request.user_name), user_id: Some(&request.user_id) }
    }

    async fn run(ctx: &StageContext, request: UserRequest) -> Result<PermissionInventory, OffboardError> {
        let inventory = gather_permissions(&ctx.iam, checked_user_name(&request.user_name)?).await?;
        tracing::info!(items = inventory.item_count(), "groups and policies listed");
        Ok(inventory)
    }
}
impl Timed for PermissionInventory {
    fn set_duration_ms(&mut self, duration_ms: u64) {
        self.duration_ms = Some(duration_ms);
    }
}
