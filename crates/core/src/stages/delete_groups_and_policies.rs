//! DeleteGroupsAndPolicies: the user's group memberships, inline policies
//! and managed policy attachments, `AWSDenyAll` last. Whatever the request
//! lists, nothing is removed while the user still holds a credential: a
//! user must never be left with fewer guardrails (a deny policy, a
//! restricting group) and the same password or keys.

use serde::{Deserialize, Serialize};

use crate::context::StageContext;
use crate::errors::OffboardError;
use crate::inventory::gather_credentials;
use crate::items::PermissionInventory;
use crate::removal::delete_permissions;
use crate::stage::Stage;
use crate::workflow::Subject;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PermissionRemovalRequest {
    pub user_name: String,
    /// The id GetUsername resolved: re-checked before the first change.
    pub user_id: String,
    pub permissions: PermissionInventory,
}

pub struct DeleteGroupsAndPolicies;

impl Stage for DeleteGroupsAndPolicies {
    const NAME: &'static str = "DeleteGroupsAndPolicies";
    type Request = PermissionRemovalRequest;
    type Response = PermissionInventory;

    fn subject(request: &PermissionRemovalRequest) -> Subject<'_> {
        Subject { user_name: Some(&request.user_name), user_id: Some(&request.user_id) }
    }

    async fn run(ctx: &StageContext, request: PermissionRemovalRequest) -> Result<PermissionInventory, OffboardError> {
        let user = ctx.recheck_existing(&request.user_name, &request.user_id).await?;
        refuse_while_credentials_remain(ctx, &user.user_name).await?;
        let removed = delete_permissions(&ctx.iam, &user, request.permissions).await?;
        tracing::info!(items = removed.item_count(), "groups and policies removed");
        Ok(removed)
    }
}

/// Refuses (DeleteConflict, so the state machine takes the inventory again
/// and removes them) while the user holds any credential or MFA device.
async fn refuse_while_credentials_remain(ctx: &StageContext, user_name: &str) -> Result<(), OffboardError> {
    let held = gather_credentials(&ctx.iam, user_name).await?;
    if held.item_count() == 0 {
        return Ok(());
    }
    Err(OffboardError::DeleteConflict(format!(
        "user {user_name} still holds {}: its groups and policies are removed only once every credential is gone. Nothing was removed by this stage; the state machine re-inventories and removes them first.",
        held.item_names().join(", ")
    )))
}
