//! DeleteGroupsAndPolicies never leaves a user with fewer guardrails and the
//! same credentials: nothing is removed while a credential remains, and
//! `AWSDenyAll` (a quarantine's deny) goes last, once everything else is gone.

mod common;

use std::sync::{Arc, Mutex};

use aws_sdk_iam::operation::{
    detach_user_policy::DetachUserPolicyOutput, remove_user_from_group::RemoveUserFromGroupOutput,
};
use aws_sdk_iam::Client;
use aws_smithy_mocks::{mock, Rule};
use common::*;
use iam_offboard_core::items::Outcome;
use iam_offboard_core::stages::{invoke, parse_request, DeleteGroupsAndPolicies, StageContext};
use iam_offboard_core::target::ProtectionPolicy;
use serde_json::{json, Value};

const DENY_ALL: &str = "arn:aws:iam::aws:policy/AWSDenyAll";
const READ_ONLY: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";

type Calls = Arc<Mutex<Vec<String>>>;

fn context(iam: Client) -> StageContext {
    let (sts, _) = sts_as_role!();
    StageContext::from_clients(iam, sts, ProtectionPolicy::default())
}

/// A quarantined alice's permissions: a group, ReadOnlyAccess and the deny.
fn request() -> Value {
    json!({"UserName": "alice", "UserId": ALICE_ID, "Permissions": {
        "Groups": [{"GroupName": "developers", "GroupArn": null}], "InlinePolicies": [],
        "AttachedPolicies": [{"PolicyName": "ReadOnlyAccess", "PolicyArn": READ_ONLY},
                             {"PolicyName": "AWSDenyAll", "PolicyArn": DENY_ALL}]}})
}

/// Removals that note themselves in `calls`, in order.
fn removal_rules(
    calls: &Calls,
    detach_read_only: fn() -> aws_smithy_runtime_api::client::orchestrator::HttpResponse,
) -> Vec<Rule> {
    let (group, deny) = (calls.clone(), calls.clone());
    let read_only = calls.clone();
    vec![
        mock!(Client::remove_user_from_group)
            .match_requests(move |r| {
                group.lock().unwrap().push(format!("RemoveUserFromGroup {}", r.group_name().unwrap()));
                true
            })
            .then_output(|| RemoveUserFromGroupOutput::builder().build()),
        mock!(Client::detach_user_policy)
            .match_requests(move |r| {
                let arn = r.policy_arn().unwrap();
                (arn == READ_ONLY).then(|| read_only.lock().unwrap().push(format!("DetachUserPolicy {arn}"))).is_some()
            })
            .then_http_response(detach_read_only),
        mock!(Client::detach_user_policy)
            .match_requests(move |r| {
                let arn = r.policy_arn().unwrap();
                (arn == DENY_ALL).then(|| deny.lock().unwrap().push(format!("DetachUserPolicy {arn}"))).is_some()
            })
            .then_output(|| DetachUserPolicyOutput::builder().build()),
    ]
}

/// What IAM lists of alice's groups and policies after the removals.
fn listings(groups: &'static str, attached: &'static [&'static str]) -> Vec<Rule> {
    vec![
        mock!(Client::list_groups_for_user).then_http_response(move || {
            ok_xml("ListGroupsForUser", &format!("<Groups>{groups}</Groups><IsTruncated>false</IsTruncated>"))
        }),
        mock!(Client::list_user_policies).then_http_response(|| empty_answer("ListUserPolicies", "PolicyNames")),
        mock!(Client::list_attached_user_policies).then_http_response(move || {
            let members: String = attached
                .iter()
                .map(|arn| format!("<member><PolicyName>p</PolicyName><PolicyArn>{arn}</PolicyArn></member>"))
                .collect();
            ok_xml(
                "ListAttachedUserPolicies",
                &format!("<AttachedPolicies>{members}</AttachedPolicies><IsTruncated>false</IsTruncated>"),
            )
        }),
    ]
}

fn ok_detach() -> aws_smithy_runtime_api::client::orchestrator::HttpResponse {
    ok_xml("DetachUserPolicy", "")
}

async fn run(
    rules: &[&Rule],
) -> Result<iam_offboard_core::items::PermissionInventory, iam_offboard_core::OffboardError> {
    let iam = aws_smithy_mocks::mock_client!(aws_sdk_iam, aws_smithy_mocks::RuleMode::MatchAny, rules.iter().copied());
    invoke::<DeleteGroupsAndPolicies>(&context(iam), parse_request::<DeleteGroupsAndPolicies>(request()).unwrap()).await
}

#[tokio::test]
async fn nothing_is_removed_while_the_user_still_holds_a_credential() {
    let calls = Calls::default();
    let removals = removal_rules(&calls, ok_detach);
    let recheck = alice_exists!();
    // An access key alice created after the inventory, and her passkey.
    let key = mock!(Client::list_access_keys).then_http_response(|| {
        ok_xml("ListAccessKeys", "<AccessKeyMetadata><member><UserName>alice</UserName><AccessKeyId>AKIANEWKEY0000000001</AccessKeyId><Status>Active</Status><CreateDate>2026-12-07T00:00:00Z</CreateDate></member></AccessKeyMetadata><IsTruncated>false</IsTruncated>")
    });
    let passkey = mock!(Client::list_mfa_devices).then_http_response(|| mfa_devices_xml(&[PASSKEY_SERIAL]));
    let others = no_credentials_rules!();
    let mut rules: Vec<&Rule> = vec![&key, &passkey, &recheck];
    rules.extend(removals.iter());
    // The first matching rule answers: the two above take their calls.
    rules.extend(others.iter());
    let error = run(&rules).await.unwrap_err();
    assert_eq!(error.name(), "DeleteConflict", "{error}");
    let message = error.to_string();
    assert!(message.contains("access key AKIANEWKEY0000000001") && message.contains(PASSKEY_SERIAL), "{message}");
    assert!(message.contains("Nothing was removed"), "{message}");
    assert!(calls.lock().unwrap().is_empty(), "no group or policy was touched: {:?}", calls.lock().unwrap());
}

#[tokio::test]
async fn the_deny_goes_last_once_every_other_group_and_policy_is_gone() {
    let calls = Calls::default();
    let removals = removal_rules(&calls, ok_detach);
    let recheck = alice_exists!();
    let none_held = no_credentials_rules!();
    let after = listings("", &[DENY_ALL]);
    let mut rules: Vec<&Rule> = vec![&recheck];
    rules.extend(removals.iter().chain(&none_held).chain(&after));
    let removed = run(&rules).await.unwrap();
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.last().map(String::as_str), Some(format!("DetachUserPolicy {DENY_ALL}").as_str()), "{calls:?}");
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert_eq!(after.iter().map(Rule::num_calls).collect::<Vec<_>>(), [1, 1, 1], "confirmed by listing, once");
    assert!(removed.attached_policies.iter().all(|policy| policy.outcome == Some(Outcome::Removed)));
    assert_eq!(removed.attached_policies.last().unwrap().policy_arn, DENY_ALL, "the record lists the deny last too");
}

#[tokio::test]
async fn a_failed_detach_leaves_the_deny_attached() {
    let calls = Calls::default();
    // An SCP refuses detaching ReadOnlyAccess.
    let removals = removal_rules(&calls, || {
        error_xml(403, "AccessDenied", "User: arn:aws:sts::123456789012:assumed-role/x/y is not authorized to perform: iam:DetachUserPolicy with an explicit deny in a service control policy")
    });
    let recheck = alice_exists!();
    let none_held = no_credentials_rules!();
    let mut rules: Vec<&Rule> = vec![&recheck];
    rules.extend(removals.iter().chain(&none_held));
    let error = run(&rules).await.unwrap_err();
    assert_eq!(error.name(), "AccessDenied", "{error}");
    assert!(error.to_string().contains("Removed before the failure: membership of group developers"), "{error}");
    assert!(!calls.lock().unwrap().contains(&format!("DetachUserPolicy {DENY_ALL}")), "{:?}", calls.lock().unwrap());
}

#[tokio::test]
async fn a_policy_attached_since_the_inventory_keeps_the_deny_and_asks_for_another_round() {
    let calls = Calls::default();
    let removals = removal_rules(&calls, ok_detach);
    let recheck = alice_exists!();
    let none_held = no_credentials_rules!();
    let after = listings(
        "<member><Path>/</Path><GroupName>admins</GroupName><GroupId>AGPAAAAAAAAAAAAAAAAA2</GroupId><Arn>arn:aws:iam::123456789012:group/admins</Arn><CreateDate>2024-01-01T00:00:00Z</CreateDate></member>",
        &[DENY_ALL, "arn:aws:iam::aws:policy/AdministratorAccess"],
    );
    let mut rules: Vec<&Rule> = vec![&recheck];
    rules.extend(removals.iter().chain(&none_held).chain(&after));
    let error = run(&rules).await.unwrap_err();
    assert_eq!(error.name(), "DeleteConflict", "the state machine takes the inventory again: {error}");
    let message = error.to_string();
    assert!(message.contains("group admins") && message.contains("AdministratorAccess"), "{message}");
    assert!(message.contains(&format!("{DENY_ALL} stays attached")), "{message}");
    assert!(!calls.lock().unwrap().contains(&format!("DetachUserPolicy {DENY_ALL}")));
}
