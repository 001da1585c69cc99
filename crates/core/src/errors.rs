//! The one error type every stage raises. Variant names are the state
//! machine's `ErrorEquals` names and the Lambda `errorType`.

use aws_sdk_iam::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use lambda_runtime::Diagnostic;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OffboardError {
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    UserNotFound(String),
    #[error("{0}")]
    ProtectedUser(String),
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    MfaAuthenticationRequired(String),
    #[error("{0}")]
    DeleteConflict(String),
    #[error("{0}")]
    Throttled(String),
    #[error("{0}")]
    ServiceUnavailable(String),
    #[error("{0}")]
    VerificationFailed(String),
}

impl OffboardError {
    /// The `errorType` seen by Step Functions and printed by the CLI.
    pub fn name(&self) -> &'static str {
        match self {
            Self::InvalidInput(_) => "InvalidInput",
            Self::UserNotFound(_) => "UserNotFound",
            Self::ProtectedUser(_) => "ProtectedUser",
            Self::AccessDenied(_) => "AccessDenied",
            Self::MfaAuthenticationRequired(_) => "MfaAuthenticationRequired",
            Self::DeleteConflict(_) => "DeleteConflict",
            Self::Throttled(_) => "Throttled",
            Self::ServiceUnavailable(_) => "ServiceUnavailable",
            Self::VerificationFailed(_) => "VerificationFailed",
        }
    }

    /// Whether the state machine retries this error (with backoff and jitter).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Throttled(_) | Self::ServiceUnavailable(_))
    }

    /// The same error with more context appended to its message.
    pub fn with_note(self, note: &str) -> Self {
        let append = |message: String| format!("{message} {note}");
        match self {
            Self::InvalidInput(m) => Self::InvalidInput(append(m)),
            Self::UserNotFound(m) => Self::UserNotFound(append(m)),
            Self::ProtectedUser(m) => Self::ProtectedUser(append(m)),
            Self::AccessDenied(m) => Self::AccessDenied(append(m)),
            Self::MfaAuthenticationRequired(m) => Self::MfaAuthenticationRequired(append(m)),
            Self::DeleteConflict(m) => Self::DeleteConflict(append(m)),
            Self::Throttled(m) => Self::Throttled(append(m)),
            Self::ServiceUnavailable(m) => Self::ServiceUnavailable(append(m)),
            Self::VerificationFailed(m) => Self::VerificationFailed(append(m)),
        }
    }
}

impl From<OffboardError> for Diagnostic {
    fn from(error: OffboardError) -> Self {
        Diagnostic {
            error_type: error.name().to_string(),
            error_message: error.to_string(),
        }
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

const SERVER_SIDE_CODES: &[&str] = &[
    "ServiceFailure",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalError",
    // IAM's answer while a just-deleted entity of the same name settles.
    "EntityTemporarilyUnmodifiable",
    "ConcurrentModification",
];

/// Whether an SDK error is IAM's `NoSuchEntity`.
pub fn is_no_such_entity<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> bool {
    error.code() == Some("NoSuchEntity")
}

/// Whether an AccessDenied message says that the caller lacks MFA. Action
/// names such as `iam:DeactivateMFADevice` are not evidence of that.
pub fn mentions_missing_mfa(message: &str) -> bool {
    let text = message.to_ascii_lowercase().replace("mfadevice", "");
    ["multifactorauth", "multi-factor", "multi factor", "mfa"]
        .iter()
        .any(|needle| text.contains(needle))
}

/// Maps a failed IAM/STS call to the error the state machine routes on.
/// `action` is the IAM action (`iam:DeleteAccessKey`), `resource` what it
/// was called on, so each message says what failed and where.
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
    let detail = if message.is_empty() { format!("{}", DisplayErrorContext(&error)) } else { format!("{code}: {message}") };
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
    if THROTTLING_CODES.contains(&code_str) || status == Some(429) {
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
        if mentions_missing_mfa(&message) {
            OffboardError::MfaAuthenticationRequired(format!(
                "{action} on {resource} needs an MFA-authenticated session ({detail}). Run `offboard --mfa-serial ARN --mfa-token-code CODE ...` (STS GetSessionToken) or use a role whose policy does not require aws:MultiFactorAuthPresent."
            ))
        } else {
            OffboardError::AccessDenied(format!(
                "{action} on {resource} was denied ({detail}). Grant {action} on that resource to the caller (see infra/template.yaml for the per-stage policy)."
            ))
        }
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
    fn names_are_the_state_machine_error_names() {
        let all = [
            OffboardError::InvalidInput(String::new()),
            OffboardError::UserNotFound(String::new()),
            OffboardError::ProtectedUser(String::new()),
            OffboardError::AccessDenied(String::new()),
            OffboardError::MfaAuthenticationRequired(String::new()),
            OffboardError::DeleteConflict(String::new()),
            OffboardError::Throttled(String::new()),
            OffboardError::ServiceUnavailable(String::new()),
            OffboardError::VerificationFailed(String::new()),
        ];
        let names: Vec<_> = all.iter().map(|e| e.name()).collect();
        assert_eq!(names, crate::ERROR_NAMES);
    }

    #[test]
    fn diagnostic_carries_the_name_not_the_rust_type() {
        let diagnostic: Diagnostic = OffboardError::Throttled("slow down".into()).into();
        assert_eq!(diagnostic.error_type, "Throttled");
        assert_eq!(diagnostic.error_message, "slow down");
    }

    #[test]
    fn mfa_detection_ignores_action_names() {
        assert!(!mentions_missing_mfa(
            "User: arn:aws:iam::123456789012:user/ops is not authorized to perform: iam:DeactivateMFADevice on resource: user alice"
        ));
        assert!(mentions_missing_mfa(
            "not authorized to perform: iam:DeactivateMFADevice with an explicit deny: aws:MultiFactorAuthPresent is false"
        ));
        assert!(mentions_missing_mfa("MultiFactorAuthentication failed, must provide a valid MFA code"));
        assert!(!mentions_missing_mfa("not authorized to perform: iam:ListMFADevices"));
    }
}
