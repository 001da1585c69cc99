//! QuarantineUser: disable the user at once for a grace period, and check
//! after the wait that the quarantine still holds.

use serde::{Deserialize, Serialize};

use crate::context::StageContext;
use crate::errors::OffboardError;
use crate::input::parse_timestamp;
use crate::items::{CredentialInventory, PermissionInventory};
use crate::quarantine::{
    partial_quarantine, quarantine_user, quarantined_until, refuse_if_quarantined_otherwise, QuarantineRecord,
    QUARANTINE_TAG_KEY,
};
use crate::stage::{Stage, Timed};
use crate::workflow::Subject;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QuarantineAction {
    /// Disable the user now (from its inventory) and tag it.
    Quarantine,
    /// After the wait: is the user still held by this quarantine?
    Check,
    /// After a quarantine failed part-way (`Failure`): the record of what it
    /// did change, read from IAM against the inventory taken before it.
    Record,
}

/// Step Functions' error of a failed task, as its Catch hands it on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct TaskFailure {
    pub error: String,
    pub cause: String,
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
    /// `Record` only: how the quarantine failed.
    #[serde(default)]
    pub failure: Option<TaskFailure>,
}

/// The check after the wait. A quarantine found lifted (its tag gone) says
/// when it was found and what the tag held; one whose tag now names another
/// time is refused as `QuarantineTampered` instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct QuarantineCheck {
    pub still_quarantined: bool,
    pub reason: String,
    /// The tag's value this quarantine set.
    #[serde(default)]
    pub tag_expected: String,
    /// The tag's value found (`None`: no tag).
    #[serde(default)]
    pub tag_found: Option<String>,
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
        match (request.action, request.credentials, request.permissions, request.failure) {
            (QuarantineAction::Quarantine, Some(credentials), Some(permissions), None) => {
                let user = ctx.recheck_existing(&request.user_name, &request.user_id).await?;
                refuse_if_quarantined_otherwise(&user, &until)?;
                let record =
                    quarantine_user(&ctx.iam, &user, &credentials, &permissions, &until, request.execution_arn).await?;
                tracing::info!(deactivated = record.deactivated.count(), until = %until, "user quarantined");
                Ok(QuarantineOutcome::Quarantined(Box::new(record)))
            }
            (QuarantineAction::Record, Some(credentials), Some(permissions), Some(failure)) => {
                let user = ctx.recheck_existing(&request.user_name, &request.user_id).await?;
                let failure = (failure.error, failure.cause);
                let record = partial_quarantine(
                    &ctx.iam,
                    &user,
                    &credentials,
                    &permissions,
                    &until,
                    request.execution_arn,
                    failure,
                )
                .await?;
                tracing::warn!(deactivated = record.deactivated.count(), error = ?record.error, "partial quarantine recorded");
                Ok(QuarantineOutcome::Quarantined(Box::new(record)))
            }
            (QuarantineAction::Check, None, None, None) => {
                let user = ctx.recheck_existing(&request.user_name, &request.user_id).await?;
                let check = check_quarantine(&user.user_name, quarantined_until(&user), &until)?;
                tracing::info!(still_quarantined = check.still_quarantined, reason = %check.reason, "quarantine checked");
                Ok(QuarantineOutcome::Checked(check))
            }
            (action, ..) => Err(OffboardError::InvalidInput(format!(
                "{} input: Action {action:?} takes {}",
                Self::NAME,
                match action {
                    QuarantineAction::Quarantine => "Credentials and Permissions (the user's inventory), no Failure",
                    QuarantineAction::Record => "Credentials, Permissions and Failure",
                    QuarantineAction::Check => "no Credentials, Permissions or Failure",
                }
            ))),
        }
    }
}

/// After the wait: the user still carries this quarantine's tag (the
/// deletion goes ahead), carries none (it was restored: nothing is deleted,
/// and that is recorded), or carries another time: someone changed the tag,
/// which would leave the user quarantined with nothing waiting to delete
/// it, so it fails loudly as `QuarantineTampered`.
pub fn check_quarantine(user_name: &str, tagged: Option<&str>, until: &str) -> Result<QuarantineCheck, OffboardError> {
    let check = |still_quarantined, reason: String| QuarantineCheck {
        still_quarantined,
        reason,
        tag_expected: until.to_string(),
        tag_found: tagged.map(String::from),
        duration_ms: None,
    };
    match tagged {
        Some(tagged) if tagged == until => {
            Ok(check(true, format!("still quarantined until {until}: the deletion goes ahead")))
        }
        Some(tagged) => Err(OffboardError::QuarantineTampered(format!(
            "user {user_name}'s tag {QUARANTINE_TAG_KEY} holds {tagged}, not {until} as this quarantine set it: someone changed it. Nothing was deleted; the user stays quarantined with nothing waiting to delete it. Check who changed the tag (CloudTrail TagUser), then restore or offboard the user."
        ))),
        None => Ok(check(
            false,
            "the quarantine tag was removed (the user was restored): nothing is deleted".into(),
        )),
    }
}
