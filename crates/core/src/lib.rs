//! iam-offboard's core: every rule the six Lambda functions and the
//! `offboard` CLI share. See DESIGN.md for the contract.

pub mod errors;
pub mod input;
pub mod inventory;
pub mod lambda;
pub mod pipeline;
pub mod mfa;
pub mod record;
pub mod removal;
pub mod stages;
pub mod target;

pub use errors::OffboardError;

/// Every `errorType` a stage can raise, as the state machine names them.
pub const ERROR_NAMES: [&str; 9] = [
    "InvalidInput",
    "UserNotFound",
    "ProtectedUser",
    "AccessDenied",
    "MfaAuthenticationRequired",
    "DeleteConflict",
    "Throttled",
    "ServiceUnavailable",
    "VerificationFailed",
];

/// The IAM (and STS) actions each stage's code calls: the least-privilege
/// policy of its function role, checked against infra/template.yaml and
/// against the calls observed end to end.
pub const STAGE_ACTIONS: [(&str, &[&str]); 6] = [
    ("GetUsername", &["iam:ListUsers", "iam:GetUser", "iam:ListUserTags", "sts:GetCallerIdentity"]),
    (
        "GetKeysCertificatesMfaAndCredentials",
        &[
            "iam:GetLoginProfile",
            "iam:ListAccessKeys",
            "iam:ListSSHPublicKeys",
            "iam:ListSigningCertificates",
            "iam:ListServiceSpecificCredentials",
            "iam:ListMFADevices",
        ],
    ),
    ("GetGroupsAndPolicies", &["iam:ListGroupsForUser", "iam:ListUserPolicies", "iam:GetUserPolicy", "iam:ListAttachedUserPolicies"]),
    (
        "DeleteKeysCertificatesMfaAndCredentials",
        &[
            "iam:DeleteLoginProfile",
            "iam:DeleteAccessKey",
            "iam:DeleteSSHPublicKey",
            "iam:DeleteSigningCertificate",
            "iam:DeleteServiceSpecificCredential",
            "iam:DeactivateMFADevice",
            "iam:DeleteVirtualMFADevice",
        ],
    ),
    ("DeleteGroupsAndPolicies", &["iam:RemoveUserFromGroup", "iam:DeleteUserPolicy", "iam:DetachUserPolicy"]),
    ("DeleteIAMUserAndVerify", &["iam:DeleteUser", "iam:GetUser"]),
];
