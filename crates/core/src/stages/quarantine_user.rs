//! QuarantineUser: disable the user at once for a grace period, and check
//! after the wait that the quarantine still holds.

use serde::{Deserialize, Serialize};

use crate::context::StageContext;
use crate::errors::OffboardError;
use crate::input::parse_timestamp;
use crate::items::{CredentialInventory, PermissionInventory};
use crate::quarantine::{quarantine_user, quarantined_until, refuse_if_quarantined_otherwise, QuarantineRecord};
use crate::stage::{Stage, Timed};
use crate::workflow::Subject;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QuarantineAction {
    /// Disable the user now (from its inventory) and tag it.
    Quarantine,
    /// After the wait: is the user still held by this quarantine?
    Check,
}

/// QuarantineUser's input: `Quarantine` carries the inventory, `Check` none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct QuarantineRequest {
    pub action: QuarantineAction,
    pub user_name: String,
    /// The id GetUsername resolved: re-checked before the first change.
    pub user_id: String,
    /// The deletion time: the tag's value.
    pub delete_after: String,
    #[serde(default)]
    pub execution_arn: Option<String>,
    #[serde(default)]
    pub credentials: Option<CredentialInventory>,
    #[serde(default)]
    pub permissions: Option<PermissionInventory>,
}

/// The check after the wait.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct QuarantineCheck {
    pub still_quarantined: bool,
    pub reason: String,
    #[serde(default)]
    pub duration_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum QuarantineOutcome {
    Quarantined(Box<QuarantineRecord>),
    Checked(QuarantineCheck),
}

impl Timed for QuarantineOutcome {
    fn set_duration_ms(&mut self, duration_ms: u64) {
        match self {
            Self::Quarantined(record) => record.duration_ms = Some(duration_ms),
            Self::Checked(check) => check.duration_ms = Some(duration_ms),
        }
    }
}

pub struct QuarantineUser;

impl Stage for QuarantineUser {
    const NAME: &'static str = "QuarantineUser";
    type Request = QuarantineRequest;
    type Response = QuarantineOutcome;

    fn subject(request: &QuarantineRequest) -> Subject<'_> {
        Subject { user_name: Some(&request.user_name), user_id: Some(&request.user_id) }
    }

    async fn run(ctx: &StageContext, request: QuarantineRequest) -> Result<QuarantineOutcome, OffboardError> {
        let until = crate::input::format_timestamp(parse_timestamp(&request.delete_after, "DeleteAfter")?);
        match (request.action, request.credentials, request.permissions) {
            (QuarantineAction::Quarantine, Some(credentials), Some(permissions)) => {
                let user = ctx.recheck_existing(&request.user_name, &request.user_id).await?;
                refuse_if_quarantined_otherwise(&user, &until)?;
                let record =
                    quarantine_user(&ctx.iam, &user, &credentials, &permissions, &until, request.execution_arn).await?;
                tracing::info!(deactivated = record.deactivated.count(), until = %until, "user quarantined");
                Ok(QuarantineOutcome::Quarantined(Box::new(record)))
            }
            (QuarantineAction::Check, None, None) => {
                let user = ctx.recheck_existing(&request.user_name, &request.user_id).await?;
                let check = match quarantined_until(&user) {
                    Some(tagged) if tagged == until => QuarantineCheck {
                        still_quarantined: true,
                        reason: format!("still quarantined until {until}: the deletion goes ahead"),
                        duration_ms: None,
                    },
                    Some(tagged) => QuarantineCheck {
                        still_quarantined: false,
                        reason: format!("now held by another quarantine (until {tagged}): this one deletes nothing"),
                        duration_ms: None,
                    },
                    None => QuarantineCheck {
                        still_quarantined: false,
                        reason: "the quarantine tag was removed (the user was restored): nothing is deleted".into(),
                        duration_ms: None,
                    },
                };
                tracing::info!(still_quarantined = check.still_quarantined, reason = %check.reason, "quarantine checked");
                Ok(QuarantineOutcome::Checked(check))
            }
            (QuarantineAction::Quarantine, _, _) => Err(OffboardError::InvalidInput(format!(
                "{} input: Action Quarantine needs Credentials and Permissions (the user's inventory)",
                Self::NAME
            ))),
            (QuarantineAction::Check, _, _) => Err(OffboardError::InvalidInput(format!(
                "{} input: Action Check takes no Credentials or Permissions",
                Self::NAME
            ))),
        }
    }
}
