//! DeleteGroupsAndPolicies: the user's group memberships, inline policies
//! and managed policy attachments.

use serde::{Deserialize, Serialize};

use crate::context::StageContext;
use crate::errors::OffboardError;
use crate::items::PermissionInventory;
use crate::removal::delete_permissions;
use crate::stage::Stage;

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

    fn user_name(request: &PermissionRemovalRequest) -> Option<&str> {
        Some(&request.user_name)
    }

    async fn run(ctx: &StageContext, request: PermissionRemovalRequest) -> Result<PermissionInventory, OffboardError> {
        ctx.recheck_existing(&request.user_name, &request.user_id).await?;
        let removed = delete_permissions(&ctx.iam, &request.user_name, request.permissions).await?;
        tracing::info!(items = removed.item_count(), "groups and policies removed");
        Ok(removed)
    }
}
