//! QuarantineUser and the restore during a grace period, against a mocked
//! `aws_sdk_iam::Client`: which calls are made, in which order, with which
//! arguments, and what the record says.

mod common;

use std::sync::{Arc, Mutex};

use aws_sdk_iam::operation::{
    attach_user_policy::AttachUserPolicyOutput, detach_user_policy::DetachUserPolicyOutput, tag_user::TagUserOutput,
    untag_user::UntagUserOutput, update_access_key::UpdateAccessKeyOutput,
    update_service_specific_credential::UpdateServiceSpecificCredentialOutput,
    update_signing_certificate::UpdateSigningCertificateOutput, update_ssh_public_key::UpdateSshPublicKeyOutput,
};
use aws_sdk_iam::types::StatusType;
use aws_sdk_iam::Client;
use aws_smithy_mocks::{mock, Rule};
use common::*;
use iam_offboard_core::quarantine::QuarantineRecord;
use iam_offboard_core::record::AuditRecord;
use iam_offboard_core::stages::{
    invoke, parse_request, GetUsername, QuarantineCheck, QuarantineOutcome, QuarantineUser, StageContext,
};
use iam_offboard_core::target::ProtectionPolicy;
use serde_json::{json, Value};

const UNTIL: &str = "2026-12-01T17:00:00Z";
const DENY_ALL: &str = "arn:aws:iam::aws:policy/AWSDenyAll";

fn context(iam: Client) -> StageContext {
    let (sts, _) = sts_as_role!();
    StageContext::from_clients(iam, sts, ProtectionPolicy::default())
}

/// Alice's inventory: one active and one inactive access key, an active SSH
/// key, certificate and Bedrock key, a password and a passkey.
fn quarantine_request(attached: &[&str]) -> Value {
    json!({
        "Action": "Quarantine", "UserName": "alice", "UserId": ALICE_ID, "DeleteAfter": UNTIL,
        "ExecutionArn": "arn:aws:states:us-east-1:123456789012:execution:offboard:alice-872213e7",
        "Credentials": {
            "LoginProfile": {"CreateDate": null, "PasswordResetRequired": false},
            "AccessKeys": [{"AccessKeyId": "AKIAACTIVE0000000001", "Status": "Active", "CreateDate": null},
                           {"AccessKeyId": "AKIAINACTIVE00000001", "Status": "Inactive", "CreateDate": null}],
            "SSHPublicKeys": [{"SSHPublicKeyId": "APKAACTIVE0000000001", "Status": "Active", "UploadDate": null}],
            "SigningCertificates": [{"CertificateId": "CERTACTIVE0000000001", "Status": "Active", "UploadDate": null}],
            "ServiceSpecificCredentials": [{"ServiceSpecificCredentialId": "ACCABEDROCK000000001", "ServiceName": "bedrock.amazonaws.com",
                                            "ServiceUserName": null, "Status": "Active", "CreateDate": null}],
            "MFADevices": [{"SerialNumber": PASSKEY_SERIAL, "EnableDate": null, "HandledAs": "NonVirtual"}]
        },
        "Permissions": {"Groups": [], "InlinePolicies": [],
                        "AttachedPolicies": attached.iter().map(|arn| json!({"PolicyName": null, "PolicyArn": arn})).collect::<Vec<_>>()}
    })
}

type Calls = Arc<Mutex<Vec<String>>>;

/// A request matcher that notes the call, in order, and always matches.
fn log(calls: &Calls) -> impl Fn(String) -> bool + Send + Sync + 'static {
    let calls = calls.clone();
    move |entry: String| {
        calls.lock().unwrap().push(entry);
        true
    }
}

/// Every mutating call the quarantine may make, each logging itself in order.
fn mutation_rules(calls: &Calls) -> Vec<Rule> {
    let (a, k, s, c, b, t) = (log(calls), log(calls), log(calls), log(calls), log(calls), log(calls));
    vec![
        mock!(Client::attach_user_policy)
            .match_requests(move |r| a(format!("AttachUserPolicy {}", r.policy_arn().unwrap_or_default())))
            .then_output(|| AttachUserPolicyOutput::builder().build()),
        mock!(Client::update_access_key)
            .match_requests(move |r| {
                k(format!("UpdateAccessKey {} {:?}", r.access_key_id().unwrap_or_default(), r.status()))
            })
            .then_output(|| UpdateAccessKeyOutput::builder().build()),
        mock!(Client::update_ssh_public_key)
            .match_requests(move |r| {
                s(format!("UpdateSSHPublicKey {} {:?}", r.ssh_public_key_id().unwrap_or_default(), r.status()))
            })
            .then_output(|| UpdateSshPublicKeyOutput::builder().build()),
        mock!(Client::update_signing_certificate)
            .match_requests(move |r| {
                c(format!("UpdateSigningCertificate {} {:?}", r.certificate_id().unwrap_or_default(), r.status()))
            })
            .then_output(|| UpdateSigningCertificateOutput::builder().build()),
        mock!(Client::update_service_specific_credential)
            .match_requests(move |r| {
                b(format!(
                    "UpdateServiceSpecificCredential {} {:?}",
                    r.service_specific_credential_id().unwrap_or_default(),
                    r.status()
                ))
            })
            .then_output(|| UpdateServiceSpecificCredentialOutput::builder().build()),
        mock!(Client::tag_user)
            .match_requests(move |r| {
                let tags: Vec<String> = r.tags().iter().map(|tag| format!("{}={}", tag.key(), tag.value())).collect();
                t(format!("TagUser {}", tags.join(",")))
            })
            .then_output(|| TagUserOutput::builder().build()),
    ]
}

fn client_with(rules: &[Rule], get_user: &Rule) -> Client {
    aws_smithy_mocks::mock_client!(
        aws_sdk_iam,
        aws_smithy_mocks::RuleMode::MatchAny,
        rules.iter().chain([get_user]),
        |config: aws_sdk_iam::config::Builder| config.retry_config(aws_sdk_iam::config::retry::RetryConfig::disabled())
    )
}

async fn quarantine(iam: Client, request: Value) -> Result<QuarantineOutcome, iam_offboard_core::OffboardError> {
    invoke::<QuarantineUser>(&context(iam), parse_request::<QuarantineUser>(request)?).await
}

#[tokio::test]
async fn quarantine_tags_first_then_denies_then_deactivates_only_active_credentials() {
    let calls = Calls::default();
    let rules = mutation_rules(&calls);
    let get_user = alice_exists!();
    let outcome = quarantine(client_with(&rules, &get_user), quarantine_request(&[])).await.unwrap();
    let QuarantineOutcome::Quarantined(record) = outcome else { panic!("a quarantine record") };
    let calls = calls.lock().unwrap().clone();
    // The tag first: a quarantine that fails part-way still holds the user.
    assert_eq!(calls[0], format!("TagUser offboard:quarantined-until={UNTIL}"), "{calls:?}");
    assert_eq!(calls[1], format!("AttachUserPolicy {DENY_ALL}"), "{calls:?}");
    let mut middle = calls[2..].to_vec();
    middle.sort();
    assert_eq!(
        middle,
        [
            "UpdateAccessKey AKIAACTIVE0000000001 Some(Inactive)",
            "UpdateSSHPublicKey APKAACTIVE0000000001 Some(Inactive)",
            "UpdateServiceSpecificCredential ACCABEDROCK000000001 Some(Inactive)",
            "UpdateSigningCertificate CERTACTIVE0000000001 Some(Inactive)",
        ],
        "the inactive key is left alone; login profile and MFA are never touched"
    );
    assert_eq!(get_user.num_calls(), 1, "the re-check");
    assert_eq!(record.quarantined_until, UNTIL);
    assert_eq!(record.deactivated.access_keys, ["AKIAACTIVE0000000001"]);
    assert_eq!(record.deactivated.count(), 4);
    assert_eq!(record.already_inactive.access_keys, ["AKIAINACTIVE00000001"]);
    assert_eq!(record.already_inactive.count(), 1);
    assert!(record.deny_all_attached_by_quarantine);
    assert_eq!(record.deny_all_policy_arn, DENY_ALL);
    assert!(record.kept.login_profile);
    assert_eq!(record.kept.mfa_devices, [PASSKEY_SERIAL]);
    assert_eq!(
        record.execution_arn.as_deref(),
        Some("arn:aws:states:us-east-1:123456789012:execution:offboard:alice-872213e7")
    );
    assert!(record.duration_ms.is_some());
}

#[tokio::test]
async fn a_user_who_already_has_deny_all_keeps_it_on_restore() {
    let calls = Calls::default();
    let rules = mutation_rules(&calls);
    let get_user = alice_exists!();
    let QuarantineOutcome::Quarantined(record) =
        quarantine(client_with(&rules, &get_user), quarantine_request(&[DENY_ALL])).await.unwrap()
    else {
        panic!("a quarantine record")
    };
    assert!(!record.deny_all_attached_by_quarantine);
    assert_eq!(rules[0].num_calls(), 0, "no AttachUserPolicy");
    assert!(record.error.is_none() && record.cause.is_none());
}

#[tokio::test]
async fn the_deny_is_attached_in_the_users_partition() {
    assert_eq!(
        iam_offboard_core::quarantine::deny_all_policy_arn("arn:aws-us-gov:iam::123456789012:user/alice"),
        "arn:aws-us-gov:iam::aws:policy/AWSDenyAll"
    );
    assert_eq!(
        iam_offboard_core::quarantine::deny_all_policy_arn("arn:aws-cn:iam::123456789012:user/a"),
        "arn:aws-cn:iam::aws:policy/AWSDenyAll"
    );
}

#[tokio::test]
async fn a_user_held_by_another_quarantine_is_refused_with_no_change_and_a_retry_goes_on() {
    let calls = Calls::default();
    let rules = mutation_rules(&calls);
    let other = mock!(Client::get_user).then_http_response(|| {
        get_user_tagged_xml("alice", ALICE_ID, &[("Offboard:Quarantined-Until", "2026-12-24T00:00:00Z")])
    });
    let error = quarantine(client_with(&rules, &other), quarantine_request(&[])).await.unwrap_err();
    assert_eq!(error.name(), "AlreadyQuarantined", "{error}");
    assert!(error.to_string().contains("2026-12-24T00:00:00Z"), "{error}");
    assert!(calls.lock().unwrap().is_empty(), "nothing changed");

    let same = mock!(Client::get_user)
        .then_http_response(|| get_user_tagged_xml("alice", ALICE_ID, &[("offboard:quarantined-until", UNTIL)]));
    quarantine(client_with(&rules, &same), quarantine_request(&[])).await.unwrap();
    assert_eq!(calls.lock().unwrap().len(), 6, "the same quarantine, retried, finishes");
}

#[tokio::test]
async fn a_full_managed_policy_quota_fails_the_quarantine_after_the_tag_only() {
    let quota = mock!(Client::attach_user_policy)
        .then_http_response(|| error_xml(409, "LimitExceeded", "Cannot exceed quota for PoliciesPerUser: 10"));
    let tag = mock!(Client::tag_user).then_output(|| TagUserOutput::builder().build());
    let get_user = alice_exists!();
    let iam = iam_client!(&get_user, &tag, &quota);
    let error = quarantine(iam, quarantine_request(&[])).await.unwrap_err();
    assert_eq!(error.name(), "LimitExceeded", "{error}");
    assert!(error.to_string().contains("Done before the failure: tag offboard:quarantined-until"), "{error}");
    assert_eq!(tag.num_calls(), 1);
}

#[tokio::test]
async fn a_user_at_the_tag_quota_is_refused_before_any_change() {
    let calls = Calls::default();
    let rules = mutation_rules(&calls);
    let fifty: Vec<(String, String)> = (0..50).map(|i| (format!("tag{i}"), "v".to_string())).collect();
    let full = mock!(Client::get_user).then_http_response(move || {
        let tags: Vec<(&str, &str)> = fifty.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        get_user_tagged_xml("alice", ALICE_ID, &tags)
    });
    let error = quarantine(client_with(&rules, &full), quarantine_request(&[])).await.unwrap_err();
    assert_eq!(error.name(), "LimitExceeded", "{error}");
    assert!(error.to_string().contains("Nothing was changed"), "{error}");
    assert!(calls.lock().unwrap().is_empty(), "{:?}", calls.lock().unwrap());
}

#[tokio::test]
async fn a_failure_part_way_names_what_the_quarantine_had_done() {
    let get_user = alice_exists!();
    let tag = mock!(Client::tag_user).then_output(|| TagUserOutput::builder().build());
    let attach = mock!(Client::attach_user_policy).then_output(|| AttachUserPolicyOutput::builder().build());
    let keys = mock!(Client::update_access_key).then_output(|| UpdateAccessKeyOutput::builder().build());
    let ssh = mock!(Client::update_ssh_public_key).then_http_response(|| error_xml(400, "Throttling", "Rate exceeded"));
    let certs =
        mock!(Client::update_signing_certificate).then_output(|| UpdateSigningCertificateOutput::builder().build());
    let bedrock = mock!(Client::update_service_specific_credential)
        .then_output(|| UpdateServiceSpecificCredentialOutput::builder().build());
    let iam = iam_client!(&get_user, &tag, &attach, &keys, &ssh, &certs, &bedrock);
    let error = quarantine(iam, quarantine_request(&[])).await.unwrap_err();
    assert_eq!(error.name(), "Throttled", "{error}");
    let message = error.to_string();
    assert!(
        message.contains("AWSDenyAll attached") && message.contains("access key AKIAACTIVE0000000001 deactivated"),
        "{message}"
    );
    assert_eq!(bedrock.num_calls(), 1, "every item is attempted");
}

#[tokio::test]
async fn the_check_after_the_wait_tells_this_quarantine_from_a_restore_or_another_one() {
    let check = |answer: fn() -> aws_smithy_runtime_api::client::orchestrator::HttpResponse| async move {
        let get_user = mock!(Client::get_user).then_http_response(answer);
        let request = json!({"Action": "Check", "UserName": "alice", "UserId": ALICE_ID, "DeleteAfter": UNTIL});
        let result = quarantine(iam_client!(&get_user), request).await;
        assert_eq!(get_user.num_calls(), 1, "GetUser only");
        result.map(|outcome| match outcome {
            QuarantineOutcome::Checked(check) => check,
            other => panic!("{other:?}"),
        })
    };
    let ours = || get_user_tagged_xml("alice", ALICE_ID, &[("offboard:quarantined-until", UNTIL)]);
    let untagged = || get_user_tagged_xml("alice", ALICE_ID, &[("team", "payments")]);
    let another = || get_user_tagged_xml("alice", ALICE_ID, &[("offboard:quarantined-until", "2027-01-01T00:00:00Z")]);
    let QuarantineCheck { still_quarantined, .. } = check(ours).await.unwrap();
    assert!(still_quarantined);
    let restored = check(untagged).await.unwrap();
    assert!(!restored.still_quarantined && restored.reason.contains("restored"), "{}", restored.reason);
    assert_eq!((restored.tag_expected.as_str(), restored.tag_found.as_deref()), (UNTIL, None));
    let tampered = check(another).await.unwrap_err();
    assert_eq!(tampered.name(), "QuarantineTampered", "a changed tag is a failure, never a quiet end");
    assert!(tampered.to_string().contains("2027-01-01T00:00:00Z"), "{tampered}");
    assert_eq!(check(|| no_such_entity("user")).await.unwrap_err().name(), "UserNotFound");
    let recreated = || get_user_xml("alice", "AIDARECREATED0000001", "/", None);
    assert_eq!(check(recreated).await.unwrap_err().name(), "UserReplaced");
}

#[tokio::test]
async fn malformed_quarantine_requests_make_no_call() {
    let mut without_inventory = quarantine_request(&[]);
    without_inventory.as_object_mut().unwrap().remove("Credentials");
    let mut check_with_inventory = quarantine_request(&[]);
    check_with_inventory["Action"] = json!("Check");
    let mut bad_time = quarantine_request(&[]);
    bad_time["DeleteAfter"] = json!("tomorrow");
    let mut offset_time = quarantine_request(&[]);
    offset_time["DeleteAfter"] = json!("2026-12-01T17:00:00+01:00");
    let mut unknown_action = quarantine_request(&[]);
    unknown_action["Action"] = json!("Delete");
    let mut unknown_field = quarantine_request(&[]);
    unknown_field["GraceDays"] = json!(3);
    for request in [without_inventory, check_with_inventory, bad_time, offset_time, unknown_action, unknown_field] {
        // No rules: any IAM call would panic.
        let error = quarantine(iam_client!(), request.clone()).await.unwrap_err();
        assert_eq!(error.name(), "InvalidInput", "{request}: {error}");
    }
}

#[tokio::test]
async fn get_username_carries_the_deletion_time_and_refuses_a_second_quarantine() {
    let get_user = mock!(Client::get_user).then_http_response(|| get_user_xml("alice", ALICE_ID, "/", None));
    let ctx = context(iam_client!(&get_user));
    let resolution =
        invoke::<GetUsername>(&ctx, json!({"UserName": "alice", "DeleteAfter": "2099-01-01T00:00:00Z"})).await;
    assert_eq!(resolution.unwrap_err().name(), "InvalidInput", "more than a year ahead");
    let soon = iam_offboard_core::input::format_timestamp(aws_sdk_iam::primitives::DateTime::from_secs(
        aws_sdk_iam::primitives::DateTime::from(std::time::SystemTime::now()).secs() + 3600,
    ));
    let resolution = invoke::<GetUsername>(&ctx, json!({"UserName": "alice", "DeleteAfter": soon})).await.unwrap();
    assert_eq!(resolution.delete_after.as_deref(), Some(soon.as_str()));
    let output = serde_json::to_value(&resolution).unwrap();
    assert_eq!(output["DeleteAfter"], json!(soon), "the state machine's Wait reads $.Target.DeleteAfter");
    let plain = invoke::<GetUsername>(&ctx, json!({"UserName": "alice"})).await.unwrap();
    assert_eq!(serde_json::to_value(&plain).unwrap()["DeleteAfter"], Value::Null, "always present for the Choice");

    let held = mock!(Client::get_user).then_http_response(|| {
        get_user_tagged_xml("alice", ALICE_ID, &[("offboard:quarantined-until", "2026-12-24T00:00:00Z")])
    });
    let ctx = context(iam_client!(&held));
    let error = invoke::<GetUsername>(&ctx, json!({"UserName": "alice", "GraceDays": 7})).await.unwrap_err();
    assert_eq!(error.name(), "AlreadyQuarantined", "{error}");
    let tag = soon.clone();
    let twin = mock!(Client::get_user)
        .then_http_response(move || get_user_tagged_xml("alice", ALICE_ID, &[("offboard:quarantined-until", &tag)]));
    let error = invoke::<GetUsername>(&context(iam_client!(&twin)), json!({"UserName": "alice", "DeleteAfter": soon}))
        .await
        .unwrap_err();
    assert_eq!(
        error.name(),
        "AlreadyQuarantined",
        "a second execution with the same time is another quarantine too: {error}"
    );
    assert!(
        invoke::<GetUsername>(&ctx, json!({"UserName": "alice"})).await.is_ok(),
        "a plain deletion of a quarantined user goes ahead"
    );
}

fn quarantine_record(deny_all_attached_by_quarantine: bool) -> AuditRecord {
    let quarantine: QuarantineRecord = serde_json::from_value(json!({
        "QuarantinedUntil": UNTIL, "ExecutionArn": null, "TagKey": "offboard:quarantined-until",
        "DenyAllPolicyArn": DENY_ALL, "DenyAllAttachedByQuarantine": deny_all_attached_by_quarantine,
        "Deactivated": {"AccessKeys": ["AKIAACTIVE0000000001", "AKIADELETEDSINCE0001"], "SSHPublicKeys": ["APKAACTIVE0000000001"],
                        "SigningCertificates": [], "ServiceSpecificCredentials": ["ACCABEDROCK000000001"]},
        "AlreadyInactive": {"AccessKeys": ["AKIAINACTIVE00000001"], "SSHPublicKeys": [], "SigningCertificates": [], "ServiceSpecificCredentials": []},
        "Kept": {"LoginProfile": true, "MFADevices": [PASSKEY_SERIAL]}
    }))
    .unwrap();
    let mut record: AuditRecord = serde_json::from_value(json!({
        "User": {"UserName": "alice", "UserId": ALICE_ID, "Arn": "arn:aws:iam::123456789012:user/alice", "Path": "/",
                 "CreateDate": null, "PasswordLastUsed": null, "Tags": [], "PermissionsBoundary": null},
        "DryRun": false, "Context": null,
        "Items": {"LoginProfile": null, "AccessKeys": [], "SSHPublicKeys": [], "SigningCertificates": [],
                  "ServiceSpecificCredentials": [], "MFADevices": [], "Groups": [], "InlinePolicies": [], "AttachedPolicies": []},
        "UserDeletion": null, "Rounds": 0, "Timings": {}
    }))
    .unwrap();
    record.quarantine = Some(quarantine);
    record
}

/// The quarantine's rules (each logging itself) behind the one for a key
/// deleted since, plus the two calls only a restore makes.
fn restore_rules(calls: &Calls) -> Vec<Rule> {
    let (d, u) = (log(calls), log(calls));
    let mut rules = vec![mock!(Client::update_access_key)
        .match_requests(|r| r.access_key_id() == Some("AKIADELETEDSINCE0001"))
        .then_http_response(|| no_such_entity("access key"))];
    rules.extend(mutation_rules(calls));
    rules.extend([
        mock!(Client::detach_user_policy)
            .match_requests(move |r| d(format!("DetachUserPolicy {}", r.policy_arn().unwrap_or_default())))
            .then_output(|| DetachUserPolicyOutput::builder().build()),
        mock!(Client::untag_user)
            .match_requests(move |r| u(format!("UntagUser {}", r.tag_keys().join(","))))
            .then_output(|| UntagUserOutput::builder().build()),
    ]);
    rules
}

#[tokio::test]
async fn restore_reactivates_exactly_what_the_quarantine_deactivated_and_untags_last() {
    use iam_offboard_core::restore::lift_quarantine;
    let calls = Calls::default();
    let rules = restore_rules(&calls);
    let held = mock!(Client::get_user)
        .then_http_response(|| get_user_tagged_xml("alice", ALICE_ID, &[("offboard:quarantined-until", UNTIL)]));
    let report = lift_quarantine(&client_with(&rules, &held), &quarantine_record(true), false).await.unwrap();
    let calls = calls.lock().unwrap().clone();
    let active = Some(StatusType::Active);
    let mut reactivated = calls[..3].to_vec();
    reactivated.sort();
    assert_eq!(
        reactivated,
        [
            format!("UpdateAccessKey AKIAACTIVE0000000001 {active:?}"),
            format!("UpdateSSHPublicKey APKAACTIVE0000000001 {active:?}"),
            format!("UpdateServiceSpecificCredential ACCABEDROCK000000001 {active:?}"),
        ],
        "never the key that was inactive before"
    );
    assert_eq!(
        calls[3..],
        [format!("DetachUserPolicy {DENY_ALL}"), "UntagUser offboard:quarantined-until".to_string()]
    );
    assert_eq!(report.could_not_restore, ["access key AKIADELETEDSINCE0001: it was deleted since the quarantine"]);
    assert_eq!(report.restored.len(), 5, "{:?}", report.restored);

    // A deny the user had before the quarantine stays.
    let calls = Calls::default();
    let rules = restore_rules(&calls);
    lift_quarantine(&client_with(&rules, &held), &quarantine_record(false), false).await.unwrap();
    assert!(!calls.lock().unwrap().iter().any(|call| call.starts_with("DetachUserPolicy")));
}

#[tokio::test]
async fn restore_refuses_another_user_or_another_quarantine_and_a_dry_run_changes_nothing() {
    use iam_offboard_core::restore::lift_quarantine;
    let record = quarantine_record(true);
    type Answer = fn() -> aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    let cases: [(Answer, &str); 3] = [
        (|| get_user_xml("alice", "AIDARECREATED0000001", "/", None), "UserNotFound"),
        (|| no_such_entity("user"), "UserNotFound"),
        (
            || get_user_tagged_xml("alice", ALICE_ID, &[("offboard:quarantined-until", "2027-02-02T00:00:00Z")]),
            "AlreadyQuarantined",
        ),
    ];
    for (answer, expected) in cases {
        // GetUser only: any change would panic.
        let get_user = mock!(Client::get_user).then_http_response(answer);
        let error = lift_quarantine(&iam_client!(&get_user), &record, false).await.unwrap_err();
        assert_eq!(error.name(), expected, "{error}");
    }
    let held = mock!(Client::get_user)
        .then_http_response(|| get_user_tagged_xml("alice", ALICE_ID, &[("offboard:quarantined-until", UNTIL)]));
    let report = lift_quarantine(&iam_client!(&held), &record, true).await.unwrap();
    assert!(report.dry_run);
    assert_eq!(report.restored.len(), 6, "4 reactivations, the detach, the tag: {:?}", report.restored);
    let mut deleted = record.clone();
    deleted.user_deletion = serde_json::from_value(json!({"Outcome": "Removed", "VerificationAttempts": 1})).unwrap();
    assert_eq!(lift_quarantine(&iam_client!(), &deleted, false).await.unwrap_err().name(), "InvalidInput");
}

#[tokio::test]
async fn restore_names_the_user_accepts_a_deny_already_detached_and_fails_on_a_denied_detach() {
    use iam_offboard_core::restore::lift_quarantine;
    let held = mock!(Client::get_user)
        .then_http_response(|| get_user_tagged_xml("alice", ALICE_ID, &[("offboard:quarantined-until", UNTIL)]));
    let mut record = quarantine_record(true);
    record.quarantine.as_mut().unwrap().deactivated = Default::default();
    let gone = mock!(Client::detach_user_policy).then_http_response(|| no_such_entity("policy attachment"));
    let untag = mock!(Client::untag_user).then_output(|| UntagUserOutput::builder().build());
    let report = lift_quarantine(&iam_client!(&held, &gone, &untag), &record, false).await.unwrap();
    assert_eq!(report.user_name, "alice");
    assert_eq!(
        report.restored,
        [format!("{DENY_ALL} (already detached)"), "tag offboard:quarantined-until removed".to_string()]
    );
    assert_eq!(untag.num_calls(), 1);

    let denied = mock!(Client::detach_user_policy).then_http_response(|| {
        error_xml(
            403,
            "AccessDenied",
            "User: arn:aws:iam::123456789012:user/ops is not authorized to perform: iam:DetachUserPolicy",
        )
    });
    let untag = mock!(Client::untag_user).then_output(|| UntagUserOutput::builder().build());
    let error = lift_quarantine(&iam_client!(&held, &denied, &untag), &record, false).await.unwrap_err();
    assert_eq!(error.name(), "AccessDenied", "{error}");
    assert_eq!(untag.num_calls(), 0, "the tag stays while the deny is attached, so a re-run finds the quarantine");
}

#[tokio::test]
async fn a_user_no_longer_tagged_is_not_restored_again() {
    use iam_offboard_core::restore::lift_quarantine;
    // GetUser only: a restore that went on would re-enable keys disabled since.
    let untagged = mock!(Client::get_user).then_http_response(|| get_user_xml("alice", ALICE_ID, "/", None));
    let error = lift_quarantine(&iam_client!(&untagged), &quarantine_record(true), false).await.unwrap_err();
    assert_eq!(error.name(), "InvalidInput", "{error}");
    assert!(error.to_string().contains("not quarantined"), "{error}");
}

#[tokio::test]
async fn the_in_process_flow_stops_after_the_quarantine_and_returns_its_record() {
    let empty = |operation: &'static str, list: &'static str| {
        move || ok_xml(operation, &format!("<{list}></{list}><IsTruncated>false</IsTruncated>"))
    };
    let calls = Calls::default();
    let mut rules = mutation_rules(&calls);
    rules.extend([
        mock!(Client::get_login_profile).then_http_response(|| no_such_entity("login profile")),
        mock!(Client::list_access_keys).then_http_response(|| {
            ok_xml("ListAccessKeys", "<AccessKeyMetadata><member><UserName>alice</UserName><AccessKeyId>AKIAACTIVE0000000001</AccessKeyId><Status>Active</Status><CreateDate>2025-02-01T00:00:00Z</CreateDate></member></AccessKeyMetadata><IsTruncated>false</IsTruncated>")
        }),
        mock!(Client::list_ssh_public_keys).then_http_response(empty("ListSSHPublicKeys", "SSHPublicKeys")),
        mock!(Client::list_signing_certificates).then_http_response(empty("ListSigningCertificates", "Certificates")),
        mock!(Client::list_service_specific_credentials).then_http_response(empty("ListServiceSpecificCredentials", "ServiceSpecificCredentials")),
        mock!(Client::list_mfa_devices).then_http_response(empty("ListMFADevices", "MFADevices")),
        mock!(Client::list_groups_for_user).then_http_response(empty("ListGroupsForUser", "Groups")),
        mock!(Client::list_user_policies).then_http_response(empty("ListUserPolicies", "PolicyNames")),
        mock!(Client::list_attached_user_policies).then_http_response(empty("ListAttachedUserPolicies", "AttachedPolicies")),
    ]);
    let get_user = alice_exists!();
    let ctx = context(client_with(&rules, &get_user));
    let mut progress = |_: &str, _: &str| {};
    let record =
        iam_offboard_core::pipeline::offboard(&ctx, json!({"UserName": "alice", "GraceDays": 3}), &mut progress)
            .await
            .unwrap();
    let quarantine = record.quarantine.expect("the quarantine's record");
    assert!(record.user_deletion.is_none(), "nothing deleted in-process before the grace period ends");
    assert_eq!(quarantine.deactivated.access_keys, ["AKIAACTIVE0000000001"]);
    assert_eq!(record.items.access_keys.len(), 1, "the plan's items");
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 3, "tag, attach, one key: {calls:?}");
    assert!(calls[0].starts_with("TagUser offboard:quarantined-until="), "{calls:?}");
}

#[tokio::test]
async fn a_quarantine_that_failed_part_way_is_recorded_from_iam_for_restore_to_undo() {
    // The inventory before: one active and one inactive key, an active SSH key,
    // certificate and Bedrock key. Now: the active key and the certificate are
    // inactive (the quarantine switched them off before failing), the rest as
    // before; AWSDenyAll is attached; the tag is set.
    let get_user = mock!(Client::get_user)
        .then_http_response(|| get_user_tagged_xml("alice", ALICE_ID, &[("offboard:quarantined-until", UNTIL)]));
    let keys = mock!(Client::list_access_keys).then_http_response(|| {
        ok_xml("ListAccessKeys", "<AccessKeyMetadata><member><UserName>alice</UserName><AccessKeyId>AKIAACTIVE0000000001</AccessKeyId><Status>Inactive</Status><CreateDate>2025-02-01T00:00:00Z</CreateDate></member><member><UserName>alice</UserName><AccessKeyId>AKIAINACTIVE00000001</AccessKeyId><Status>Inactive</Status><CreateDate>2025-02-01T00:00:00Z</CreateDate></member></AccessKeyMetadata><IsTruncated>false</IsTruncated>")
    });
    let ssh = mock!(Client::list_ssh_public_keys).then_http_response(|| {
        ok_xml("ListSSHPublicKeys", "<SSHPublicKeys><member><UserName>alice</UserName><SSHPublicKeyId>APKAACTIVE0000000001</SSHPublicKeyId><Status>Active</Status><UploadDate>2025-04-01T00:00:00Z</UploadDate></member></SSHPublicKeys><IsTruncated>false</IsTruncated>")
    });
    let certs = mock!(Client::list_signing_certificates).then_http_response(|| {
        ok_xml("ListSigningCertificates", "<Certificates><member><UserName>alice</UserName><CertificateId>CERTACTIVE0000000001</CertificateId><CertificateBody>x</CertificateBody><Status>Inactive</Status><UploadDate>2025-04-02T00:00:00Z</UploadDate></member></Certificates><IsTruncated>false</IsTruncated>")
    });
    let services = mock!(Client::list_service_specific_credentials).then_http_response(|| {
        ok_xml("ListServiceSpecificCredentials", "<ServiceSpecificCredentials><member><UserName>alice</UserName><Status>Active</Status><ServiceUserName>k</ServiceUserName><CreateDate>2025-07-01T00:00:00Z</CreateDate><ServiceSpecificCredentialId>ACCABEDROCK000000001</ServiceSpecificCredentialId><ServiceName>bedrock.amazonaws.com</ServiceName></member></ServiceSpecificCredentials><IsTruncated>false</IsTruncated>")
    });
    let login = mock!(Client::get_login_profile).then_http_response(|| no_such_entity("login profile"));
    let mfa = mock!(Client::list_mfa_devices).then_http_response(|| mfa_devices_xml(&[PASSKEY_SERIAL]));
    let attached = mock!(Client::list_attached_user_policies).then_http_response(|| {
        ok_xml("ListAttachedUserPolicies", &format!("<AttachedPolicies><member><PolicyName>AWSDenyAll</PolicyName><PolicyArn>{DENY_ALL}</PolicyArn></member></AttachedPolicies><IsTruncated>false</IsTruncated>"))
    });
    let iam = iam_client!(&get_user, &keys, &ssh, &certs, &services, &login, &mfa, &attached);
    let mut request = quarantine_request(&[]);
    request["Action"] = json!("Record");
    request["Failure"] = json!({"Error": "AccessDenied", "Cause": "{\"errorType\":\"AccessDenied\"}"});
    let QuarantineOutcome::Quarantined(record) = quarantine(iam, request).await.unwrap() else { panic!("a record") };
    assert_eq!(record.deactivated.access_keys, ["AKIAACTIVE0000000001"]);
    assert_eq!(record.deactivated.signing_certificates, ["CERTACTIVE0000000001"]);
    assert_eq!(record.deactivated.count(), 2, "the SSH and Bedrock keys were not reached: {:?}", record.deactivated);
    assert_eq!(record.already_inactive.access_keys, ["AKIAINACTIVE00000001"], "never reactivated by a restore");
    assert!(record.deny_all_attached_by_quarantine);
    assert_eq!(record.error.as_deref(), Some("AccessDenied"));
    assert_eq!(record.quarantined_until, UNTIL);
}
