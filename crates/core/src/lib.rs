//! iam-offboard's core: every rule the eight Lambda functions and the
//! `offboard` CLI share. See docs/DESIGN.md for the contract.

pub mod account_summary;
pub mod accounts;
pub mod batch;
pub mod budget;
pub mod clients;
pub mod context;
pub mod deadline;
pub mod errors;
pub mod fanout;
pub mod iam_calls;
pub mod input;
pub mod inventory;
pub mod items;
pub mod lambda;
pub mod mfa;
pub mod pipeline;
pub mod provenance;
pub mod quarantine;
pub mod record;
pub mod removal;
pub mod restore;
pub mod sessions;
pub mod stage;
pub mod stages;
pub mod target;
pub mod workflow;

pub use errors::OffboardError;

/// Every `errorType` a stage can raise, as the state machine names them.
pub const ERROR_NAMES: &[&str] = OffboardError::NAMES;

/// The IAM actions each stage's code calls: the least-privilege policy of
/// its function role. `infra/stage-actions.json` holds the same sets; the
/// template and the calls observed end to end are checked against it.
/// (Every stage that checks the caller also calls sts:GetCallerIdentity,
/// which needs no permission.) Mutating stages re-check the user (GetUser)
/// before their first change; the MFA task also checks the serial is held,
/// marks a virtual device before deactivating it and, on a retry, reads that
/// mark (see [`mfa::TAKEN_FROM_TAG`]).
pub const STAGE_ACTIONS: [(&str, &[&str]); 7] = [
    ("GetUsername", &["iam:GetUser", "iam:ListUsers"]),
    (
        "GetKeysCertificatesMfaAndCredentials",
        &[
            "iam:GetLoginProfile",
            "iam:ListAccessKeys",
            "iam:ListMFADevices",
            "iam:ListSSHPublicKeys",
            "iam:ListServiceSpecificCredentials",
            "iam:ListSigningCertificates",
        ],
    ),
    (
        "GetGroupsAndPolicies",
        &["iam:GetUserPolicy", "iam:ListAttachedUserPolicies", "iam:ListGroupsForUser", "iam:ListUserPolicies"],
    ),
    (
        "DeleteKeysCertificatesMfaAndCredentials",
        &[
            "iam:DeactivateMFADevice",
            "iam:DeleteAccessKey",
            "iam:DeleteLoginProfile",
            "iam:DeleteSSHPublicKey",
            "iam:DeleteServiceSpecificCredential",
            "iam:DeleteSigningCertificate",
            "iam:DeleteVirtualMFADevice",
            "iam:GetUser",
            "iam:ListMFADeviceTags",
            "iam:ListMFADevices",
            "iam:TagMFADevice",
        ],
    ),
    (
        "DeleteGroupsAndPolicies",
        &[
            "iam:DeleteUserPolicy",
            "iam:DetachUserPolicy",
            "iam:GetLoginProfile",
            "iam:GetUser",
            "iam:ListAccessKeys",
            "iam:ListAttachedUserPolicies",
            "iam:ListGroupsForUser",
            "iam:ListMFADevices",
            "iam:ListSSHPublicKeys",
            "iam:ListServiceSpecificCredentials",
            "iam:ListSigningCertificates",
            "iam:ListUserPolicies",
            "iam:RemoveUserFromGroup",
        ],
    ),
    ("DeleteIAMUserAndVerify", &["iam:DeleteUser", "iam:GetUser", "iam:ListUsers"]),
    (
        "QuarantineUser",
        &[
            "iam:AttachUserPolicy",
            "iam:GetLoginProfile",
            "iam:GetUser",
            "iam:ListAccessKeys",
            "iam:ListAttachedUserPolicies",
            "iam:ListMFADevices",
            "iam:ListSSHPublicKeys",
            "iam:ListServiceSpecificCredentials",
            "iam:ListSigningCertificates",
            "iam:TagUser",
            "iam:UpdateAccessKey",
            "iam:UpdateSSHPublicKey",
            "iam:UpdateServiceSpecificCredential",
            "iam:UpdateSigningCertificate",
        ],
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_actions_match_the_infra_manifest() {
        let manifest: std::collections::BTreeMap<String, Vec<String>> =
            serde_json::from_str(include_str!("../../../infra/stage-actions.json")).unwrap();
        let declared: std::collections::BTreeMap<String, Vec<String>> = STAGE_ACTIONS
            .iter()
            .map(|(stage, actions)| (stage.to_string(), actions.iter().map(|a| a.to_string()).collect()))
            .collect();
        assert_eq!(declared, manifest);
    }

    #[test]
    fn every_iam_action_the_code_names_is_declared_for_some_stage() {
        let declared: Vec<&str> = STAGE_ACTIONS.iter().flat_map(|(_, actions)| actions.iter().copied()).collect();
        let sources = [
            include_str!("inventory.rs"),
            include_str!("iam_calls.rs"),
            include_str!("removal.rs"),
            include_str!("mfa.rs"),
            include_str!("target.rs"),
            include_str!("quarantine.rs"),
        ];
        for source in sources {
            for (at, _) in source.match_indices("\"iam:") {
                let action: String =
                    source[at + 1..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == ':').collect();
                assert!(declared.contains(&action.as_str()), "{action} is called but not declared");
            }
        }
    }
}
