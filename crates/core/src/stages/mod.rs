//! The eight stages, one file each, named as its binary crate and its
//! template function are. Each is a request type, a response type and a
//! [`Stage::run`]; the machinery they share is in [`crate::stage`] and
//! [`crate::context`].

use serde::{Deserialize, Serialize};

pub mod delete_groups_and_policies;
pub mod delete_iam_user_and_verify;
pub mod delete_keys_certificates_mfa_and_credentials;
pub mod get_groups_and_policies;
pub mod get_keys_certificates_mfa_and_credentials;
pub mod get_username;
pub mod offboard_batch;
pub mod quarantine_user;

pub use crate::context::StageContext;
pub use crate::stage::{invoke, parse_request, Stage, Timed};
pub use delete_groups_and_policies::{DeleteGroupsAndPolicies, PermissionRemovalRequest};
pub use delete_iam_user_and_verify::{
    build_record, flatten_rounds, DeleteIamUserAndVerify, RoundRemoval, UserDeletionRequest,
};
pub use delete_keys_certificates_mfa_and_credentials::{
    CredentialRemoval, CredentialRemovalRequest, DeleteKeysCertificatesMfaAndCredentials,
};
pub use get_groups_and_policies::GetGroupsAndPolicies;
pub use get_keys_certificates_mfa_and_credentials::GetKeysCertificatesMfaAndCredentials;
pub use get_username::{Entry, GetUsername, GetUsernameOrAccounts, Resolution};
pub use offboard_batch::{BatchAnswer, BatchCall, OffboardBatch};
pub use quarantine_user::{
    QuarantineAction, QuarantineCheck, QuarantineOutcome, QuarantineRequest, QuarantineUser, TaskFailure,
};

/// The inventory stages' request: the user to list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct UserRequest {
    pub user_name: String,
    /// The id GetUsername resolved: the workflow check compares it with the
    /// execution's input (an input may name the user by id).
    pub user_id: String,
}
