//! The one error type every stage raises. Variant names are the state
//! machine's `ErrorEquals` names and the Lambda `errorType`.

use aws_sdk_iam::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use lambda_runtime::Diagnostic;

/// Declares [`OffboardError`] from its variants, each written once: the
/// enum, [`OffboardError::NAMES`], [`OffboardError::name`] and the message
/// helpers are generated from the one list.
macro_rules! offboard_errors {
    ($($(#[$doc:meta])* $name:ident,)+) => {
        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
        pub enum OffboardError {
            $($(#[$doc])* #[error("{0}")] $name(String),)+
        }

        impl OffboardError {
            /// Every variant's name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($name)),+];

            /// The `errorType` seen by Step Functions and printed by the CLI.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Self::$name(_) => stringify!($name),)+
                }
            }

            /// The same error with its message rewritten by `rewrite`.
            fn map_message(self, rewrite: impl FnOnce(String) -> String) -> Self {
                match self {
                    $(Self::$name(message) => Self::$name(rewrite(message)),)+
                }
            }
        }
    };
}

offboard_errors! {
    InvalidInput,
    UserNotFound,
    ProtectedUser,
    AccessDenied,
    MfaAuthenticationRequired,
    DeleteConflict,
    Throttled,
    ServiceUnavailable,
    VerificationFailed,
    /// IAM's `LimitExceeded`: an account quota was reached. Neither
    /// transient nor the input's fault, so it has a name of its own.
    LimitExceeded,
    /// The plan or record could not be stored; the state machine's Fail state
    /// of the same name. Before the first change this stops the offboarding.
    RecordNotWritten,
    /// A quarantine was asked for a user another quarantine already holds
    /// (its `offboard:quarantined-until` tag names another time).
    AlreadyQuarantined,
    /// A Lambda invocation that is not the pending step of a running
    /// execution of this deployment's state machines (a direct invoke):
    /// refused before any IAM call (see [`crate::workflow`]).
    NotFromWorkflow,
    /// The user's name is now held by another user (another id): the user
    /// this offboarding resolved was deleted or renamed since. Unlike
    /// `UserNotFound`, someone is there, and is not the target.
    UserReplaced,
    /// After the grace period the quarantine tag holds another time than
    /// this quarantine set: someone changed it.
    QuarantineTampered,
    /// An org-wide offboarding's report is not the one its Map Run wrote
    /// (another bucket, another Map Run, files outside the execution's own
    /// report directory): no account is counted from it
    /// ([`crate::account_summary`]).
    UntrustedReport,
}

impl OffboardError {
    /// Whether the state machine retries this error (with backoff and jitter).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Throttled(_) | Self::ServiceUnavailable(_))
    }

    /// The same error with more context appended to its message.
    pub fn with_note(self, note: &str) -> Self {
        self.map_message(|message| format!("{message} {note}"))
    }
}

impl From<OffboardError> for Diagnostic {
    fn from(error: OffboardError) -> Self {
        Diagnostic { error_type: error.name().to_string(), error_message: error.to_string() }
    }
}

/// Error codes IAM and the SDK use for rate limiting. IAM itself says
/// `Throttling`, not `ThrottlingException`.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "SlowDown",
];

const ACCESS_DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
];

/// Transient on IAM's side. The state machine's retrier for
/// `ServiceUnavailable` waits minutes in all, which
/// `EntityTemporarilyUnmodifiable` (an entity still settling after a recent
/// change) needs.
const SERVER_SIDE_CODES: &[&str] = &[
    "ServiceFailure",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalError",
    "EntityTemporarilyUnmodifiable",
    "ConcurrentModification",
];

/// Whether an AWS error code means rate limiting.
pub fn is_throttling_code(code: &str) -> bool {
    THROTTLING_CODES.contains(&code)
}

/// Whether an SDK error is IAM's `NoSuchEntity`.
pub fn is_no_such_entity<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> bool {
    error.code() == Some("NoSuchEntity")
}

/// IAM's own answer (AccessDenied) when an MFA action needs the caller to be
/// MFA-authenticated, verbatim from a real response (docs/DESIGN.md, "Real AWS is
/// the reference"). A policy deny that tests `aws:MultiFactorAuthPresent`
/// comes back in IAM's generic format instead, which never says why.
pub const IAM_MFA_REQUIRED_MESSAGE: &str =
    "To complete this action, please ensure that you are authenticated with an MFA device that is enabled for this user.";

/// Whether an AccessDenied is IAM's "authenticate with MFA" answer.
pub fn is_mfa_required_denial(message: &str) -> bool {
    message.trim() == IAM_MFA_REQUIRED_MESSAGE
}

/// IAM answers `LimitExceeded` for account quotas on calls that create
/// something, but also, transiently, on deletes ("Your account has a large
/// number of updates awaiting replication, please try again later",
/// aws/aws-sdk-go#807). A call that creates nothing cannot meet a quota.
fn creates_nothing(action: &str) -> bool {
    let name = action.rsplit(':').next().unwrap_or(action);
    ["Delete", "Deactivate", "Detach", "Remove", "Get", "List", "Update", "Untag"]
        .iter()
        .any(|verb| name.starts_with(verb))
}

/// MFA actions: a denial of these may come from a policy that requires MFA,
/// which IAM's generic deny message does not reveal.
fn is_mfa_action(action: &str) -> bool {
    action.ends_with("MFADevice")
}

/// Maps a failed IAM/STS call to the error the state machine routes on.
/// `action` is the IAM action (`iam:DeleteAccessKey`), `resource` what it
/// was called on, so each message says what failed and where.
/// `InvalidInput` with `message`: the input (or configuration) is refused
/// before any change.
pub fn invalid_input(message: impl Into<String>) -> OffboardError {
    OffboardError::InvalidInput(message.into())
}

pub fn classify_sdk_error<E>(error: SdkError<E, HttpResponse>, action: &str, resource: &str) -> OffboardError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = error.code().unwrap_or_default().to_string();
    let message = error.message().unwrap_or_default().to_string();
    let status = match &error {
        SdkError::ServiceError(context) => Some(context.raw().status().as_u16()),
        _ => None,
    };
    let detail =
        if message.is_empty() { format!("{}", DisplayErrorContext(&error)) } else { format!("{code}: {message}") };
    match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            return OffboardError::ServiceUnavailable(format!(
                "{action} on {resource} did not reach IAM ({detail}). Transient: the state machine retries it; re-run if it persists."
            ));
        }
        SdkError::ConstructionFailure(_) => {
            return OffboardError::InvalidInput(format!(
                "{action} on {resource} could not be built ({detail}). Check the input and the AWS configuration."
            ));
        }
        _ => {}
    }
    let code_str = code.as_str();
    if is_throttling_code(code_str) || status == Some(429) {
        OffboardError::Throttled(format!(
            "{action} on {resource} was throttled by IAM ({detail}). Transient: retried with backoff; lower the offboarding rate if it persists."
        ))
    } else if code_str == "NoSuchEntity" {
        OffboardError::UserNotFound(format!(
            "{action} on {resource}: IAM has no such entity ({detail}). Check the user name or id; a deleted user needs no offboarding."
        ))
    } else if code_str == "DeleteConflict" {
        OffboardError::DeleteConflict(format!(
            "{action} on {resource} was refused because something still depends on it ({detail}). The state machine re-inventories and removes what remains."
        ))
    } else if ACCESS_DENIED_CODES.contains(&code_str) || status == Some(403) {
        if is_mfa_required_denial(&message) {
            OffboardError::MfaAuthenticationRequired(format!(
                "{action} on {resource} needs an MFA-authenticated session ({detail}). Run `offboard --mfa-serial ARN --mfa-token-code CODE ...` (STS GetSessionToken) or use a role whose policy does not require aws:MultiFactorAuthPresent."
            ))
        } else if is_mfa_action(action) {
            OffboardError::AccessDenied(format!(
                "{action} on {resource} was denied ({detail}). Grant {action} on that resource to the caller; if the caller's policy requires aws:MultiFactorAuthPresent, run `offboard --mfa-serial ARN --mfa-token-code CODE ...` (STS GetSessionToken) instead."
            ))
        } else {
            OffboardError::AccessDenied(format!(
                "{action} on {resource} was denied ({detail}). Grant {action} on that resource to the caller (see infra/template.yaml for the per-stage policy)."
            ))
        }
    } else if code_str == "LimitExceeded" && creates_nothing(action) {
        OffboardError::ServiceUnavailable(format!(
            "{action} on {resource} was refused for now ({detail}): a call that creates nothing meets no quota, so this is a temporary IAM limit (such as updates awaiting replication). Transient: retried with backoff; re-run if it persists."
        ))
    } else if code_str == "LimitExceeded" {
        OffboardError::LimitExceeded(format!(
            "{action} on {resource} was refused because an IAM account quota is reached ({detail}). Not caused by the input: free capacity or raise the quota (Service Quotas), then re-run."
        ))
    } else if SERVER_SIDE_CODES.contains(&code_str) || status.is_some_and(|s| s >= 500) {
        OffboardError::ServiceUnavailable(format!(
            "{action} on {resource} failed inside IAM ({detail}). Transient: retried with backoff; re-run if it persists."
        ))
    } else {
        OffboardError::InvalidInput(format!(
            "{action} on {resource} was rejected by IAM ({detail}). Check the input; nothing further was changed by this call."
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_variants_names_and_notes_keep_the_variant() {
        assert_eq!(crate::ERROR_NAMES.len(), 16);
        assert_eq!(OffboardError::Throttled(String::new()).name(), "Throttled");
        assert_eq!(OffboardError::AlreadyQuarantined(String::new()).name(), "AlreadyQuarantined");
        let noted = OffboardError::DeleteConflict("refused.".into()).with_note("Re-run.");
        assert_eq!(noted, OffboardError::DeleteConflict("refused. Re-run.".into()));
        let unique: std::collections::BTreeSet<_> = crate::ERROR_NAMES.iter().collect();
        assert_eq!(unique.len(), crate::ERROR_NAMES.len());
    }

    #[test]
    fn diagnostic_carries_the_name_not_the_rust_type() {
        let diagnostic: Diagnostic = OffboardError::Throttled("slow down".into()).into();
        assert_eq!(diagnostic.error_type, "Throttled");
        assert_eq!(diagnostic.error_message, "slow down");
    }

    #[test]
    fn only_iams_own_mfa_answer_means_mfa_required() {
        assert!(is_mfa_required_denial(IAM_MFA_REQUIRED_MESSAGE));
        assert!(is_mfa_required_denial(&format!(" {IAM_MFA_REQUIRED_MESSAGE}\n")));
        for generic in [
            "User: arn:aws:iam::123456789012:user/ops is not authorized to perform: iam:DeactivateMFADevice on resource: arn:aws:iam::123456789012:user/alice with an explicit deny in an identity-based policy",
            "User: arn:aws:iam::123456789012:user/ops is not authorized to perform: iam:DeleteAccessKey on resource: arn:aws:iam::123456789012:user/mfa-test",
            "User: arn:aws:iam::123456789012:user/ops is not authorized to perform: iam:DeleteVirtualMFADevice on resource: arn:aws:iam::123456789012:mfa/alice",
        ] {
            assert!(!is_mfa_required_denial(generic), "{generic}");
        }
    }

    #[test]
    fn limit_exceeded_is_a_quota_only_for_calls_that_create() {
        for action in [
            "iam:DeleteAccessKey",
            "iam:DeactivateMFADevice",
            "iam:DetachUserPolicy",
            "iam:RemoveUserFromGroup",
            "iam:ListUsers",
            "iam:UpdateAccessKey",
            "iam:UntagUser",
        ] {
            assert!(creates_nothing(action), "{action}");
        }
        for action in
            ["iam:CreateUser", "iam:PutUserPolicy", "iam:AttachUserPolicy", "iam:AddUserToGroup", "iam:TagUser"]
        {
            assert!(!creates_nothing(action), "{action}");
        }
    }

    #[test]
    fn mfa_actions_are_recognised_by_name() {
        assert!(is_mfa_action("iam:DeactivateMFADevice"));
        assert!(is_mfa_action("iam:DeleteVirtualMFADevice"));
        assert!(!is_mfa_action("iam:ListMFADevices"));
        assert!(!is_mfa_action("iam:DeleteAccessKey"));
    }
}
