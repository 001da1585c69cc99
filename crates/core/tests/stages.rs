//! Every stage against a mocked `aws_sdk_iam::Client`: final results, error
//! names, and exactly which IAM calls were made.

mod common;

use std::time::Duration;

use aws_sdk_iam::operation::{
    deactivate_mfa_device::DeactivateMfaDeviceOutput, delete_access_key::DeleteAccessKeyOutput,
    delete_login_profile::DeleteLoginProfileOutput,
    delete_service_specific_credential::DeleteServiceSpecificCredentialOutput,
    delete_signing_certificate::DeleteSigningCertificateOutput, delete_ssh_public_key::DeleteSshPublicKeyOutput,
    delete_user::DeleteUserOutput, delete_user_policy::DeleteUserPolicyOutput,
    delete_virtual_mfa_device::DeleteVirtualMfaDeviceOutput, detach_user_policy::DetachUserPolicyOutput,
    remove_user_from_group::RemoveUserFromGroupOutput, tag_mfa_device::TagMfaDeviceOutput,
};
use aws_sdk_iam::Client;
use aws_smithy_mocks::mock;
use common::*;
use iam_offboard_core::items::{CredentialInventory, MfaClass, Outcome, PermissionInventory};
use iam_offboard_core::mfa::TAKEN_FROM_TAG;
use iam_offboard_core::removal::VerifyPolicy;
use iam_offboard_core::stages::{
    invoke, parse_request, CredentialRemoval, DeleteGroupsAndPolicies, DeleteIamUserAndVerify,
    DeleteKeysCertificatesMfaAndCredentials, GetGroupsAndPolicies, GetKeysCertificatesMfaAndCredentials, GetUsername,
    QuarantineUser, StageContext,
};
use iam_offboard_core::target::ProtectionPolicy;
use serde_json::{json, Value};

fn context(iam: Client) -> StageContext {
    let (sts, _) = sts_as_role!();
    StageContext::from_clients(iam, sts, ProtectionPolicy::default())
}

/// A client with the functions' retry behaviour: `retry`, the partition
/// without a retry quota, and a sleep that follows tokio's (paused) clock.
fn client_with_retry_policy<'a>(
    retry: aws_config::retry::RetryConfig,
    rules: impl IntoIterator<Item = &'a aws_smithy_mocks::Rule>,
) -> Client {
    use iam_offboard_core::clients::patient_retry_partition;
    aws_smithy_mocks::mock_client!(
        aws_sdk_iam,
        aws_smithy_mocks::RuleMode::MatchAny,
        rules,
        move |config: aws_sdk_iam::config::Builder| config
            .retry_config(retry.clone())
            .retry_partition(patient_retry_partition())
            .sleep_impl(aws_smithy_async::rt::sleep::SharedAsyncSleep::new(
                aws_smithy_async::rt::sleep::TokioSleep::new()
            ))
    )
}

fn credentials_rules() -> Vec<aws_smithy_mocks::Rule> {
    vec![
        mock!(Client::get_login_profile).then_http_response(|| {
            ok_xml(
                "GetLoginProfile",
                "<LoginProfile><UserName>alice</UserName><CreateDate>2025-01-01T00:00:00Z</CreateDate><PasswordResetRequired>false</PasswordResetRequired></LoginProfile>",
            )
        }),
        mock!(Client::list_access_keys).match_requests(|r| r.max_items() == Some(1000)).then_http_response(|| {
            ok_xml(
                "ListAccessKeys",
                "<AccessKeyMetadata><member><UserName>alice</UserName><AccessKeyId>AKIAAAAAAAAAAAAAAAA1</AccessKeyId><Status>Active</Status><CreateDate>2025-02-01T00:00:00Z</CreateDate></member><member><UserName>alice</UserName><AccessKeyId>AKIAAAAAAAAAAAAAAAA2</AccessKeyId><Status>Inactive</Status><CreateDate>2025-03-01T00:00:00Z</CreateDate></member></AccessKeyMetadata><IsTruncated>false</IsTruncated>",
            )
        }),
        mock!(Client::list_ssh_public_keys).then_http_response(|| {
            ok_xml(
                "ListSSHPublicKeys",
                "<SSHPublicKeys><member><UserName>alice</UserName><SSHPublicKeyId>APKAAAAAAAAAAAAAAAA1</SSHPublicKeyId><Status>Active</Status><UploadDate>2025-04-01T00:00:00Z</UploadDate></member></SSHPublicKeys><IsTruncated>false</IsTruncated>",
            )
        }),
        mock!(Client::list_signing_certificates).then_http_response(|| {
            ok_xml(
                "ListSigningCertificates",
                "<Certificates><member><UserName>alice</UserName><CertificateId>CERTAAAAAAAAAAAAAAAAAAAAAAAAAAA1</CertificateId><CertificateBody>-----BEGIN CERTIFICATE-----</CertificateBody><Status>Active</Status><UploadDate>2025-04-02T00:00:00Z</UploadDate></member></Certificates><IsTruncated>false</IsTruncated>",
            )
        }),
        // Two pages: a CodeCommit password, then a Bedrock API key on page two.
        mock!(Client::list_service_specific_credentials)
            .match_requests(|r| r.marker().is_none() && r.service_name().is_none())
            .then_http_response(|| {
                ok_xml(
                    "ListServiceSpecificCredentials",
                    "<ServiceSpecificCredentials><member><UserName>alice</UserName><Status>Active</Status><ServiceUserName>alice-at-123456789012</ServiceUserName><CreateDate>2025-06-01T00:00:00Z</CreateDate><ServiceSpecificCredentialId>ACCACODECOMMIT000001</ServiceSpecificCredentialId><ServiceName>codecommit.amazonaws.com</ServiceName></member></ServiceSpecificCredentials><Marker>page-2</Marker><IsTruncated>true</IsTruncated>",
                )
            }),
        mock!(Client::list_service_specific_credentials)
            .match_requests(|r| r.marker() == Some("page-2") && r.service_name().is_none())
            .then_http_response(|| {
                ok_xml(
                    "ListServiceSpecificCredentials",
                    "<ServiceSpecificCredentials><member><UserName>alice</UserName><Status>Active</Status><ServiceUserName>BedrockAPIKey-abcd</ServiceUserName><CreateDate>2025-07-01T00:00:00Z</CreateDate><ServiceSpecificCredentialId>ACCABEDROCK000000001</ServiceSpecificCredentialId><ServiceName>bedrock.amazonaws.com</ServiceName></member></ServiceSpecificCredentials><IsTruncated>false</IsTruncated>",
                )
            }),
        mock!(Client::list_mfa_devices)
            .then_http_response(|| mfa_devices_xml(&[VIRTUAL_SERIAL, PASSKEY_SERIAL, HARDWARE_SERIAL])),
    ]
}

#[tokio::test]
async fn inventory_lists_every_credential_type_including_bedrock_keys() {
    let rules = credentials_rules();
    let iam = aws_smithy_mocks::mock_client!(aws_sdk_iam, aws_smithy_mocks::RuleMode::MatchAny, &rules);
    let ctx = context(iam);
    let inventory = invoke::<GetKeysCertificatesMfaAndCredentials>(
        &ctx,
        parse_request::<GetKeysCertificatesMfaAndCredentials>(json!({"UserName": "alice", "UserId": ALICE_ID}))
            .unwrap(),
    )
    .await
    .unwrap();
    assert!(inventory.login_profile.is_some());
    assert_eq!(inventory.access_keys.len(), 2);
    assert_eq!(inventory.access_keys[1].status, "Inactive");
    assert_eq!(inventory.ssh_public_keys[0].ssh_public_key_id, "APKAAAAAAAAAAAAAAAA1");
    assert_eq!(inventory.signing_certificates[0].certificate_id, "CERTAAAAAAAAAAAAAAAAAAAAAAAAAAA1");
    let services: Vec<_> = inventory.service_specific_credentials.iter().map(|c| c.service_name.as_str()).collect();
    assert_eq!(services, ["codecommit.amazonaws.com", "bedrock.amazonaws.com"]);
    let classes: Vec<_> = inventory.mfa_devices.iter().map(|d| d.handled_as).collect();
    assert_eq!(classes, [MfaClass::Virtual, MfaClass::NonVirtual, MfaClass::NonVirtual]);
    assert!(inventory.duration_ms.is_some());
    // Nothing secret leaks into the inventory: no certificate body, no key material.
    let text = serde_json::to_string(&inventory).unwrap();
    assert!(!text.contains("BEGIN CERTIFICATE"), "{text}");
    for rule in &rules[..5] {
        assert_eq!(rule.num_calls(), 1);
    }
}

/// TagMFADevice marking the virtual device as taken from alice, and nothing else.
fn mark_rule() -> aws_smithy_mocks::Rule {
    mock!(Client::tag_mfa_device)
        .match_requests(|r| {
            r.serial_number() == Some(VIRTUAL_SERIAL)
                && r.tags().iter().map(|t| (t.key(), t.value())).eq([(TAKEN_FROM_TAG, ALICE_ID)])
        })
        .then_output(|| TagMfaDeviceOutput::builder().build())
}

fn deletion_rules() -> (Vec<aws_smithy_mocks::Rule>, aws_smithy_mocks::Rule, aws_smithy_mocks::Rule) {
    let deactivate = mock!(Client::deactivate_mfa_device)
        .match_requests(|r| r.user_name() == Some("alice"))
        .then_output(|| DeactivateMfaDeviceOutput::builder().build());
    let delete_virtual = mock!(Client::delete_virtual_mfa_device)
        .match_requests(|r| r.serial_number() == Some(VIRTUAL_SERIAL))
        .then_output(|| DeleteVirtualMfaDeviceOutput::builder().build());
    let others = vec![
        mock!(Client::delete_login_profile).then_output(|| DeleteLoginProfileOutput::builder().build()),
        mock!(Client::delete_access_key).then_output(|| DeleteAccessKeyOutput::builder().build()),
        mock!(Client::delete_ssh_public_key).then_output(|| DeleteSshPublicKeyOutput::builder().build()),
        mock!(Client::delete_signing_certificate).then_output(|| DeleteSigningCertificateOutput::builder().build()),
        mock!(Client::delete_service_specific_credential)
            .then_output(|| DeleteServiceSpecificCredentialOutput::builder().build()),
    ];
    (others, deactivate, delete_virtual)
}

async fn alice_inventory() -> CredentialInventory {
    let rules = credentials_rules();
    let iam = aws_smithy_mocks::mock_client!(aws_sdk_iam, aws_smithy_mocks::RuleMode::MatchAny, &rules);
    iam_offboard_core::inventory::gather_credentials(&iam, "alice").await.unwrap()
}

#[tokio::test]
async fn virtual_passkey_and_hardware_devices_go_in_one_pass() {
    let inventory = alice_inventory().await;
    let (others, deactivate, delete_virtual) = deletion_rules();
    let recheck = alice_exists!();
    let mark = mark_rule();
    let iam = aws_smithy_mocks::mock_client!(
        aws_sdk_iam,
        aws_smithy_mocks::RuleMode::MatchAny,
        others.iter().chain([&deactivate, &delete_virtual, &recheck, &mark])
    );
    let ctx = context(iam);
    let request =
        json!({"UserName": "alice", "UserId": ALICE_ID, "Credentials": serde_json::to_value(&inventory).unwrap()});
    let removed = invoke::<DeleteKeysCertificatesMfaAndCredentials>(
        &ctx,
        parse_request::<DeleteKeysCertificatesMfaAndCredentials>(request).unwrap(),
    )
    .await
    .unwrap();
    let CredentialRemoval::Credentials(removed) = removed else { panic!("expected the whole-credentials answer") };
    assert_eq!(deactivate.num_calls(), 3, "every device is deactivated");
    assert_eq!(delete_virtual.num_calls(), 1, "DeleteVirtualMFADevice only for the virtual device");
    assert_eq!(mark.num_calls(), 1, "only the virtual device is marked, with alice's id");
    for device in &removed.mfa_devices {
        assert_eq!(device.deactivation, Some(Outcome::Removed));
        let expected = (device.serial_number == VIRTUAL_SERIAL).then_some(Outcome::Removed);
        assert_eq!(device.virtual_device_deletion, expected, "{}", device.serial_number);
    }
    assert_eq!(removed.login_profile.unwrap().outcome, Some(Outcome::Removed));
    assert!(removed.access_keys.iter().all(|k| k.outcome == Some(Outcome::Removed)));
    assert!(removed.service_specific_credentials.iter().all(|c| c.outcome == Some(Outcome::Removed)));
    assert_eq!(others.iter().map(|r| r.num_calls()).collect::<Vec<_>>(), [1, 2, 1, 1, 2]);
    assert_eq!(recheck.num_calls(), 1, "the user is re-checked once, before the first change");
}

#[tokio::test]
async fn the_state_machine_route_decides_per_device() {
    let (_, deactivate, delete_virtual) = deletion_rules();
    let recheck = alice_exists!();
    let held = mock!(Client::list_mfa_devices)
        .then_http_response(|| mfa_devices_xml(&[VIRTUAL_SERIAL, PASSKEY_SERIAL, HARDWARE_SERIAL]));
    let mark = mark_rule();
    let iam = aws_smithy_mocks::mock_client!(
        aws_sdk_iam,
        aws_smithy_mocks::RuleMode::MatchAny,
        [&deactivate, &delete_virtual, &recheck, &held, &mark]
    );
    let ctx = context(iam);
    for (serial, route) in
        [(VIRTUAL_SERIAL, "Virtual"), (PASSKEY_SERIAL, "NonVirtual"), (HARDWARE_SERIAL, "NonVirtual")]
    {
        let request = json!({
            "UserName": "alice",
            "UserId": ALICE_ID,
            "MFADevice": {"SerialNumber": serial, "EnableDate": null, "HandledAs": "NonVirtual"},
            "HandledAs": route,
        });
        let answer = invoke::<DeleteKeysCertificatesMfaAndCredentials>(
            &ctx,
            parse_request::<DeleteKeysCertificatesMfaAndCredentials>(request).unwrap(),
        )
        .await
        .unwrap();
        let CredentialRemoval::MfaDevice(device) = answer else { panic!("expected one device") };
        assert_eq!(serde_json::to_value(device.handled_as).unwrap(), route);
        assert!(device.duration_ms.is_some());
    }
    assert_eq!(deactivate.num_calls(), 3);
    assert_eq!(delete_virtual.num_calls(), 1);
    assert_eq!(mark.num_calls(), 1, "the virtual route marks its device before deactivating it");
    assert_eq!((recheck.num_calls(), held.num_calls()), (3, 3), "each device task re-checks the user and the serial");
}

#[tokio::test]
async fn no_such_entity_on_every_delete_means_already_done() {
    let rules = [
        mock!(Client::delete_login_profile).then_http_response(|| no_such_entity("login profile")),
        mock!(Client::delete_access_key).then_http_response(|| no_such_entity("access key")),
        mock!(Client::delete_ssh_public_key).then_http_response(|| no_such_entity("SSH key")),
        mock!(Client::delete_signing_certificate).then_http_response(|| no_such_entity("certificate")),
        mock!(Client::delete_service_specific_credential).then_http_response(|| no_such_entity("credential")),
        mock!(Client::tag_mfa_device).then_http_response(|| no_such_entity("virtual MFA device")),
        mock!(Client::deactivate_mfa_device).then_http_response(|| no_such_entity("MFA device")),
        mock!(Client::delete_virtual_mfa_device).then_http_response(|| no_such_entity("virtual MFA device")),
        mock!(Client::remove_user_from_group).then_http_response(|| no_such_entity("group")),
        mock!(Client::delete_user_policy).then_http_response(|| no_such_entity("policy")),
        mock!(Client::detach_user_policy).then_http_response(|| no_such_entity("attachment")),
        mock!(Client::delete_user).then_http_response(|| no_such_entity("user")),
        mock!(Client::get_user).then_http_response(|| no_such_entity("user")),
    ];
    let iam = aws_smithy_mocks::mock_client!(aws_sdk_iam, aws_smithy_mocks::RuleMode::MatchAny, &rules);
    let ctx = context(iam);
    let credentials = alice_inventory().await;
    let removed =
        iam_offboard_core::removal::delete_credentials(&ctx.iam, "alice", ALICE_ID, credentials).await.unwrap();
    assert_eq!(removed.login_profile.unwrap().outcome, Some(Outcome::AlreadyAbsent));
    assert!(removed.access_keys.iter().all(|k| k.outcome == Some(Outcome::AlreadyAbsent)));
    assert!(removed.ssh_public_keys.iter().all(|k| k.outcome == Some(Outcome::AlreadyAbsent)));
    assert!(removed.signing_certificates.iter().all(|c| c.outcome == Some(Outcome::AlreadyAbsent)));
    assert!(removed.service_specific_credentials.iter().all(|c| c.outcome == Some(Outcome::AlreadyAbsent)));
    assert!(removed.mfa_devices.iter().all(|d| d.deactivation == Some(Outcome::AlreadyAbsent)));

    let permissions: PermissionInventory = serde_json::from_value(json!({
        "Groups": [{"GroupName": "developers", "GroupArn": null}],
        "InlinePolicies": [{"PolicyName": "s3", "PolicyDocument": {}}],
        "AttachedPolicies": [{"PolicyName": "ReadOnlyAccess", "PolicyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}],
    }))
    .unwrap();
    let removed = iam_offboard_core::removal::delete_permissions(&ctx.iam, &alice_user(), permissions).await.unwrap();
    assert_eq!(removed.groups[0].outcome, Some(Outcome::AlreadyAbsent));
    assert_eq!(removed.inline_policies[0].outcome, Some(Outcome::AlreadyAbsent));
    assert_eq!(removed.attached_policies[0].outcome, Some(Outcome::AlreadyAbsent));

    let deletion =
        iam_offboard_core::removal::delete_user_and_verify(&ctx.iam, "alice", VerifyPolicy::default()).await.unwrap();
    assert_eq!(deletion.outcome, Outcome::AlreadyAbsent);
    assert_eq!(deletion.verification_attempts, 1);
}

async fn error_name_for(
    response: fn() -> aws_smithy_runtime_api::client::orchestrator::HttpResponse,
) -> (String, String) {
    let rule = mock!(Client::delete_access_key).then_http_response(response);
    let iam = iam_client!(&rule);
    let error = iam_offboard_core::removal::delete_credentials(
        &iam,
        "alice",
        ALICE_ID,
        serde_json::from_value(json!({
            "LoginProfile": null, "AccessKeys": [{"AccessKeyId": "AKIAAAAAAAAAAAAAAAA1", "Status": "Active", "CreateDate": null}],
            "SSHPublicKeys": [], "SigningCertificates": [], "ServiceSpecificCredentials": [], "MFADevices": []
        }))
        .unwrap(),
    )
    .await
    .unwrap_err();
    assert_eq!(rule.num_calls(), 1, "errors are not retried inside the stage when retries are off");
    (error.name().to_string(), error.to_string())
}

#[tokio::test]
async fn iam_error_codes_map_to_the_state_machine_names() {
    let (name, message) = error_name_for(|| error_xml(400, "Throttling", "Rate exceeded")).await;
    assert_eq!(name, "Throttled", "{message}");
    assert!(message.contains("iam:DeleteAccessKey") && message.contains("AKIAAAAAAAAAAAAAAAA1"), "{message}");

    let (name, _) = error_xml_case(|| error_xml(500, "ServiceFailure", "Internal")).await;
    assert_eq!(name, "ServiceUnavailable");
    let (name, _) = error_xml_case(|| error_xml(503, "ServiceUnavailable", "Try later")).await;
    assert_eq!(name, "ServiceUnavailable");
    let (name, message) = error_xml_case(|| {
        error_xml(403, "AccessDenied", "User: arn:aws:iam::123456789012:user/ops is not authorized to perform: iam:DeleteAccessKey on resource: user alice")
    })
    .await;
    assert_eq!(name, "AccessDenied");
    assert!(message.contains("Grant iam:DeleteAccessKey"), "{message}");
    let (name, _) = error_xml_case(|| error_xml(409, "DeleteConflict", "Cannot delete entity")).await;
    assert_eq!(name, "DeleteConflict");
    let (name, _) = error_xml_case(|| error_xml(400, "ValidationError", "bad")).await;
    assert_eq!(name, "InvalidInput");
    // On a delete, LimitExceeded is IAM's temporary limit (aws/aws-sdk-go#807), never the input's fault.
    let (name, message) = error_xml_case(|| {
        error_xml(
            409,
            "LimitExceeded",
            "Your account has a large number of updates awaiting replication, please try again later",
        )
    })
    .await;
    assert_eq!(name, "ServiceUnavailable", "{message}");
    assert!(!message.contains("Check the input"), "{message}");
    let (name, _) = error_xml_case(|| error_xml(409, "EntityTemporarilyUnmodifiable", "settling")).await;
    assert_eq!(name, "ServiceUnavailable", "retried with the patient ServiceUnavailable retrier");
}

async fn error_xml_case(
    response: fn() -> aws_smithy_runtime_api::client::orchestrator::HttpResponse,
) -> (String, String) {
    error_name_for(response).await
}

#[tokio::test]
async fn mfa_required_access_denied_is_its_own_error_and_names_the_sts_path() {
    // IAM's real answer, verbatim (docs/DESIGN.md, "Real AWS is the reference").
    let deactivate = mock!(Client::deactivate_mfa_device).then_http_response(|| {
        error_xml(
            403,
            "AccessDenied",
            "To complete this action, please ensure that you are authenticated with an MFA device that is enabled for this user.",
        )
    });
    let error = deactivate_passkey_against(&deactivate).await;
    assert_eq!(error.name(), "MfaAuthenticationRequired");
    assert!(!error.is_transient(), "never retried");
    assert!(error.to_string().contains("--mfa-serial"), "{error}");
    assert_eq!(deactivate.num_calls(), 1);
}

async fn deactivate_passkey_against(deactivate: &aws_smithy_mocks::Rule) -> iam_offboard_core::OffboardError {
    let recheck = alice_exists!();
    let held = mock!(Client::list_mfa_devices).then_http_response(|| mfa_devices_xml(&[PASSKEY_SERIAL]));
    let iam = iam_client!(deactivate, &recheck, &held);
    let ctx = context(iam);
    let request = json!({"UserName": "alice", "UserId": ALICE_ID, "MFADevice": {"SerialNumber": PASSKEY_SERIAL, "EnableDate": null, "HandledAs": "NonVirtual"}});
    invoke::<DeleteKeysCertificatesMfaAndCredentials>(
        &ctx,
        parse_request::<DeleteKeysCertificatesMfaAndCredentials>(request).unwrap(),
    )
    .await
    .unwrap_err()
}

#[tokio::test]
async fn a_policy_deny_of_an_mfa_action_is_access_denied_pointing_to_the_mfa_session() {
    // IAM's generic deny format never says why (docs/DESIGN.md quotes a real one).
    let deactivate = mock!(Client::deactivate_mfa_device).then_http_response(|| {
        error_xml(
            403,
            "AccessDenied",
            "User: arn:aws:iam::123456789012:user/ops is not authorized to perform: iam:DeactivateMFADevice on resource: arn:aws:iam::123456789012:user/alice with an explicit deny in an identity-based policy",
        )
    });
    let error = deactivate_passkey_against(&deactivate).await;
    assert_eq!(error.name(), "AccessDenied");
    assert!(!error.is_transient());
    let message = error.to_string();
    assert!(message.contains("Grant iam:DeactivateMFADevice") && message.contains("--mfa-serial"), "{message}");
}

#[tokio::test]
async fn a_user_named_like_mfa_denied_a_non_mfa_action_is_plain_access_denied() {
    let (name, message) = error_xml_case(|| {
        error_xml(403, "AccessDenied", "User: arn:aws:iam::123456789012:user/ops is not authorized to perform: iam:DeleteAccessKey on resource: arn:aws:iam::123456789012:user/mfa-test")
    })
    .await;
    assert_eq!(name, "AccessDenied");
    assert!(!message.contains("--mfa-serial"), "{message}");
}

#[tokio::test]
async fn a_failure_part_way_names_what_was_already_removed() {
    let delete_key = mock!(Client::delete_access_key)
        .match_requests(|r| r.access_key_id() == Some("AKIAAAAAAAAAAAAAAAA1"))
        .then_output(|| DeleteAccessKeyOutput::builder().build());
    let denied = mock!(Client::delete_access_key)
        .match_requests(|r| r.access_key_id() == Some("AKIAAAAAAAAAAAAAAAA2"))
        .then_http_response(|| error_xml(403, "AccessDenied", "not authorized to perform: iam:DeleteAccessKey"));
    let login = mock!(Client::delete_login_profile).then_output(|| DeleteLoginProfileOutput::builder().build());
    let iam = iam_client!(&delete_key, &denied, &login);
    let mut inventory = alice_inventory().await;
    inventory.ssh_public_keys.clear();
    inventory.signing_certificates.clear();
    inventory.service_specific_credentials.clear();
    inventory.mfa_devices.clear();
    let error = iam_offboard_core::removal::delete_credentials(&iam, "alice", ALICE_ID, inventory).await.unwrap_err();
    assert_eq!(error.name(), "AccessDenied");
    let message = error.to_string();
    assert!(
        message.contains("Removed before the failure: login profile, access key AKIAAAAAAAAAAAAAAAA1"),
        "{message}"
    );
    assert!(!message.contains("access key AKIAAAAAAAAAAAAAAAA2."), "{message}");
}

#[tokio::test]
async fn get_username_by_name_records_tags_and_boundary() {
    let get_user = mock!(Client::get_user).match_requests(|r| r.user_name() == Some("alice")).then_http_response(|| {
        ok_xml(
            "GetUser",
            &format!(
                "<User>{}<PermissionsBoundary><PermissionsBoundaryType>Policy</PermissionsBoundaryType><PermissionsBoundaryArn>arn:aws:iam::123456789012:policy/Boundary</PermissionsBoundaryArn></PermissionsBoundary><Tags><member><Key>team</Key><Value>payments</Value></member></Tags></User>",
                user_xml("alice", ALICE_ID, "/engineering/")
            ),
        )
    });
    // No ListUserTags rule: GetUser's answer carries the tags, so any other call panics.
    let iam = iam_client!(&get_user);
    let ctx = context(iam);
    let resolution =
        invoke::<GetUsername>(&ctx, json!({"UserName": "alice", "Context": {"Ticket": "OPS-7"}})).await.unwrap();
    assert_eq!(resolution.user.user_id, "AIDAALICE000000000001");
    assert_eq!(resolution.user.path, "/engineering/");
    assert_eq!(resolution.user.permissions_boundary.as_deref(), Some("arn:aws:iam::123456789012:policy/Boundary"));
    assert_eq!(resolution.user.tags[0].key, "team");
    assert_eq!(resolution.user.tags[0].value, "payments");
    assert_eq!(get_user.num_calls(), 1);
    assert_eq!(resolution.context, json!({"Ticket": "OPS-7"}));
    assert!(!resolution.dry_run);
}

fn list_users_page(page: usize, pages: usize) -> aws_smithy_runtime_api::client::orchestrator::HttpResponse {
    let members: String = (0..1000)
        .map(|i| {
            format!(
                "<member>{}</member>",
                user_xml(&format!("user{page:02}{i:04}"), &format!("AIDA{page:02}{i:015}"), "/")
            )
        })
        .collect();
    let more = if page + 1 < pages {
        format!("<Marker>page-{}</Marker><IsTruncated>true</IsTruncated>", page + 1)
    } else {
        "<IsTruncated>false</IsTruncated>".into()
    };
    ok_xml("ListUsers", &format!("<Users>{members}</Users>{more}"))
}

#[tokio::test]
async fn id_lookup_among_5000_users_takes_at_most_5_list_calls_and_stops_at_the_match() {
    let pages: Vec<_> = (0..5)
        .map(|page| {
            let marker = (page > 0).then(|| format!("page-{page}"));
            mock!(Client::list_users)
                .match_requests(move |r| r.max_items() == Some(1000) && r.marker().map(String::from) == marker)
                .then_http_response(move || list_users_page(page, 5))
        })
        .collect();
    let get_user =
        mock!(Client::get_user).then_http_response(|| get_user_xml("user040999", "AIDA04000000000000999", "/", None));
    let tags = mock!(Client::list_user_tags).then_http_response(|| tags_xml(&[]));
    let iam = aws_smithy_mocks::mock_client!(
        aws_sdk_iam,
        aws_smithy_mocks::RuleMode::MatchAny,
        pages.iter().chain([&get_user, &tags])
    );
    let ctx = context(iam);
    let found = invoke::<GetUsername>(&ctx, json!({"IAMUserId": "AIDA04000000000000999"})).await.unwrap();
    assert_eq!(found.user.user_name, "user040999");
    assert_eq!(pages.iter().map(|p| p.num_calls()).sum::<usize>(), 5);

    // A match on page 2 stops paging there. (GetUser answers with another
    // user's id: the name passed to someone else between the two calls.)
    let found = invoke::<GetUsername>(&ctx, json!({"IAMUserId": "AIDA01000000000000005"})).await;
    assert_eq!(found.unwrap_err().name(), "UserReplaced", "the id GetUser returns is the one asked for, or nothing");
    assert_eq!(pages.iter().map(|p| p.num_calls()).sum::<usize>(), 7);

    // An id nobody has reads every page, then says UserNotFound.
    let missing = invoke::<GetUsername>(&ctx, json!({"IAMUserId": "AIDAZZZZZZZZZZZZZZZZZ"})).await.unwrap_err();
    assert_eq!(missing.name(), "UserNotFound");
    assert_eq!(pages.iter().map(|p| p.num_calls()).sum::<usize>(), 12);
}

#[tokio::test]
async fn protected_users_are_refused_before_any_change() {
    // No mutating rule exists: any delete would panic the test.
    for (key, value) in [("offboard:protected", "true"), ("Offboard:Protected", "True"), ("OFFBOARD:PROTECTED", "TRUE")]
    {
        let get_user =
            mock!(Client::get_user).then_http_response(move || get_user_tagged_xml("alice", ALICE_ID, &[(key, value)]));
        let iam = iam_client!(&get_user);
        let ctx = context(iam);
        let error = invoke::<GetUsername>(&ctx, json!({"UserName": "alice"})).await.unwrap_err();
        assert_eq!(error.name(), "ProtectedUser", "{key}={value}");
        assert!(error.to_string().contains(&format!("{key}={value}")), "{error}");
    }

    let get_user = mock!(Client::get_user).then_http_response(|| get_user_xml("alice", ALICE_ID, "/", None));
    let iam = iam_client!(&get_user);
    let (sts, _) = sts_as_role!();
    let by_list = StageContext::from_clients(
        iam,
        sts,
        ProtectionPolicy { user_names: vec!["ALICE".into()], ..ProtectionPolicy::default() },
    );
    let error = invoke::<GetUsername>(&by_list, json!({"UserName": "alice"})).await.unwrap_err();
    assert_eq!(error.name(), "ProtectedUser");
}

#[tokio::test]
async fn the_identity_running_the_function_is_refused() {
    let get_user =
        mock!(Client::get_user).then_http_response(|| get_user_xml("ops-bot", "AIDAOPSBOT0000000001", "/", None));
    let iam = iam_client!(&get_user);
    let me = mock!(aws_sdk_sts::Client::get_caller_identity).then_output(|| {
        aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityOutput::builder()
            .arn("arn:aws:iam::123456789012:user/ops-bot")
            .user_id("AIDAOPSBOT0000000001")
            .account("123456789012")
            .build()
    });
    let sts = aws_smithy_mocks::mock_client!(aws_sdk_sts, [&me]);
    let ctx = StageContext::from_clients(iam, sts, ProtectionPolicy::default());
    let error = invoke::<GetUsername>(&ctx, json!({"UserName": "ops-bot"})).await.unwrap_err();
    assert_eq!(error.name(), "ProtectedUser");
    // The caller identity is asked once and cached for the process.
    let _ = invoke::<GetUsername>(&ctx, json!({"UserName": "ops-bot"})).await;
    assert_eq!(me.num_calls(), 1);
}

#[tokio::test]
async fn malformed_execution_input_makes_no_iam_call() {
    // No rules: any IAM or STS call panics.
    let iam = iam_client!();
    let sts = aws_smithy_mocks::mock_client!(aws_sdk_sts, Vec::<&aws_smithy_mocks::Rule>::new());
    let ctx = StageContext::from_clients(iam, sts, ProtectionPolicy::default());
    let cases: Vec<Value> =
        serde_json::from_str(include_str!("../../../tests/fixtures/malformed-inputs.json")).unwrap();
    assert!(cases.len() >= 30, "{}", cases.len());
    for input in cases.into_iter().map(|case| case["Input"].clone()) {
        let error = invoke::<GetUsername>(&ctx, input.clone()).await.unwrap_err();
        assert_eq!(error.name(), "InvalidInput", "{input}");
    }
}

#[tokio::test]
async fn malformed_stage_requests_are_invalid_input() {
    for (payload, _why) in [
        (json!({"UserName": "alice", "Extra": 1}), "unknown field"),
        (json!({}), "no user"),
        (json!({"UserName": 5}), "wrong type"),
    ] {
        assert_eq!(parse_request::<GetKeysCertificatesMfaAndCredentials>(payload).unwrap_err().name(), "InvalidInput");
    }
    let iam = iam_client!();
    let ctx = context(iam);
    let device = json!({"SerialNumber": "GAKT12345678", "EnableDate": null, "HandledAs": "NonVirtual"});
    for payload in [
        json!({"UserName": "alice", "MFADevice": device}),
        json!({"UserName": "alice", "UserId": 7, "MFADevice": device}),
    ] {
        let error = parse_request::<DeleteKeysCertificatesMfaAndCredentials>(payload.clone()).unwrap_err();
        assert_eq!(error.name(), "InvalidInput", "{payload}: the resolved UserId is required");
    }
    for payload in [
        json!({"UserName": "alice", "UserId": ALICE_ID}),
        json!({"UserName": "alice", "UserId": ALICE_ID, "Credentials": serde_json::to_value(CredentialInventory::default()).unwrap(), "HandledAs": "Virtual"}),
        json!({"UserName": "bad name", "UserId": ALICE_ID, "MFADevice": device}),
        json!({"UserName": "alice", "UserId": "not-an-id", "MFADevice": device}),
    ] {
        let request = parse_request::<DeleteKeysCertificatesMfaAndCredentials>(payload.clone()).unwrap();
        let error = invoke::<DeleteKeysCertificatesMfaAndCredentials>(&ctx, request).await.unwrap_err();
        assert_eq!(error.name(), "InvalidInput", "{payload}");
    }
}

#[tokio::test(start_paused = true)]
async fn deletion_is_verified_by_polling_until_iam_agrees() {
    let delete = mock!(Client::delete_user).then_output(|| DeleteUserOutput::builder().build());
    let still_there = mock!(Client::get_user)
        .sequence()
        .http_response(|| get_user_xml("alice", "AIDAALICE000000000001", "/", None))
        .times(2)
        .http_response(|| no_such_entity("user"))
        .build();
    let iam = iam_client!(&delete, &still_there);
    let clock = tokio::time::Instant::now();
    let deletion =
        iam_offboard_core::removal::delete_user_and_verify(&iam, "alice", VerifyPolicy::default()).await.unwrap();
    // Paused (virtual) clock: backs off 200 ms then 400 ms between polls.
    assert_eq!(clock.elapsed(), Duration::from_millis(600));
    assert_eq!(deletion.outcome, Outcome::Removed);
    assert_eq!(deletion.verification_attempts, 3);
    assert_eq!(still_there.num_calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn verification_is_bounded() {
    let delete = mock!(Client::delete_user).then_output(|| DeleteUserOutput::builder().build());
    let forever =
        mock!(Client::get_user).then_http_response(|| get_user_xml("alice", "AIDAALICE000000000001", "/", None));
    let iam = iam_client!(&delete, &forever);
    let policy =
        VerifyPolicy { max_attempts: 4, first_delay: Duration::from_millis(100), max_delay: Duration::from_secs(1) };
    let error = iam_offboard_core::removal::delete_user_and_verify(&iam, "alice", policy).await.unwrap_err();
    assert_eq!(error.name(), "VerificationFailed");
    assert_eq!(forever.num_calls(), 4);
}

#[tokio::test]
async fn delete_conflict_names_what_remains() {
    let delete = mock!(Client::delete_user).then_http_response(|| {
        error_xml(409, "DeleteConflict", "Cannot delete entity, must delete access keys first.")
    });
    let iam = iam_client!(&delete);
    let error =
        iam_offboard_core::removal::delete_user_and_verify(&iam, "alice", VerifyPolicy::default()).await.unwrap_err();
    assert_eq!(error.name(), "DeleteConflict");
    assert!(error.to_string().contains("must delete access keys first"), "{error}");
}

#[tokio::test]
async fn the_final_stage_returns_the_audit_record() {
    let delete = mock!(Client::delete_user).then_output(|| DeleteUserOutput::builder().build());
    let there_then_gone = mock!(Client::get_user)
        .sequence()
        .http_response(|| get_user_xml("alice", ALICE_ID, "/", None))
        .http_response(|| no_such_entity("user"))
        .build();
    let iam = iam_client!(&delete, &there_then_gone);
    let ctx = context(iam);
    let earlier_round = json!({
        "Credentials": {"LoginProfile": null, "AccessKeys": [{"AccessKeyId": "AKIAAAAAAAAAAAAAAAA1", "Status": "Active", "CreateDate": null, "Outcome": "Removed"}],
                        "SSHPublicKeys": [], "SigningCertificates": [], "ServiceSpecificCredentials": [], "MFADevices": [], "DurationMs": 5},
        "MFADevices": [{"SerialNumber": VIRTUAL_SERIAL, "EnableDate": null, "HandledAs": "Virtual", "Deactivation": "Removed", "VirtualDeviceDeletion": "Removed", "DurationMs": 3}],
        "Permissions": {"Groups": [], "InlinePolicies": [], "AttachedPolicies": [], "DurationMs": 1}
    });
    let request = json!({
        "Target": {"User": {"UserName": "alice", "UserId": "AIDAALICE000000000001", "Arn": "arn:aws:iam::123456789012:user/alice", "Path": "/",
                            "CreateDate": null, "PasswordLastUsed": null, "Tags": [], "PermissionsBoundary": null},
                   "DryRun": false, "Context": {"Ticket": "OPS-9"}, "DurationMs": 7},
        "Removed": {
            "Credentials": {"LoginProfile": null, "AccessKeys": [{"AccessKeyId": "AKIAAAAAAAAAAAAAAAA2", "Status": "Active", "CreateDate": null, "Outcome": "Removed"}],
                            "SSHPublicKeys": [], "SigningCertificates": [], "ServiceSpecificCredentials": [], "MFADevices": [], "DurationMs": 4},
            "MFADevices": [],
            "Permissions": {"Groups": [], "InlinePolicies": [], "AttachedPolicies": [], "DurationMs": 2}
        },
        "Timings": {"GetKeysCertificatesMfaAndCredentials": 11, "GetGroupsAndPolicies": 12},
        "Round": 1,
        "EarlierRounds": [null, earlier_round]
    });
    let record = invoke::<DeleteIamUserAndVerify>(&ctx, parse_request::<DeleteIamUserAndVerify>(request).unwrap())
        .await
        .unwrap();
    let keys: Vec<_> = record.items.access_keys.iter().map(|k| k.access_key_id.as_str()).collect();
    assert_eq!(keys, ["AKIAAAAAAAAAAAAAAAA1", "AKIAAAAAAAAAAAAAAAA2"], "earlier rounds come first");
    assert_eq!(record.items.mfa_devices[0].handled_as, MfaClass::Virtual);
    assert_eq!(record.items.mfa_devices[0].duration_ms, None);
    assert_eq!(record.context, json!({"Ticket": "OPS-9"}));
    assert_eq!(record.rounds, 1);
    assert!(!record.dry_run);
    assert_eq!(record.timings["GetUsername"], 7);
    assert_eq!(record.timings["DeleteKeysCertificatesMfaAndCredentials"], 5 + 3 + 4);
    assert_eq!(record.timings["DeleteGroupsAndPolicies"], 3);
    assert!(record.timings.contains_key("DeleteIAMUserAndVerify"));
    assert_eq!(record.user_deletion.unwrap().outcome, Outcome::Removed);
    assert_eq!(delete.num_calls(), 1);
    assert_eq!(there_then_gone.num_calls(), 2, "the re-check, then one verification poll");
}

#[tokio::test]
async fn groups_and_policies_round_trip_with_decoded_documents() {
    let rules = [
        mock!(Client::list_groups_for_user).then_http_response(|| {
            ok_xml("ListGroupsForUser", "<Groups><member><Path>/</Path><GroupName>developers</GroupName><GroupId>AGPAAAAAAAAAAAAAAAAA1</GroupId><Arn>arn:aws:iam::123456789012:group/developers</Arn><CreateDate>2024-01-01T00:00:00Z</CreateDate></member></Groups><IsTruncated>false</IsTruncated>")
        }),
        mock!(Client::list_user_policies).then_http_response(|| {
            ok_xml("ListUserPolicies", "<PolicyNames><member>s3-read</member></PolicyNames><IsTruncated>false</IsTruncated>")
        }),
        mock!(Client::get_user_policy).match_requests(|r| r.policy_name() == Some("s3-read")).then_http_response(|| {
            ok_xml("GetUserPolicy", "<UserName>alice</UserName><PolicyName>s3-read</PolicyName><PolicyDocument>%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22s3%3AGetObject%22%2C%22Resource%22%3A%22%2A%22%7D%5D%7D</PolicyDocument>")
        }),
        mock!(Client::list_attached_user_policies).then_http_response(|| {
            ok_xml("ListAttachedUserPolicies", "<AttachedPolicies><member><PolicyName>ReadOnlyAccess</PolicyName><PolicyArn>arn:aws:iam::aws:policy/ReadOnlyAccess</PolicyArn></member></AttachedPolicies><IsTruncated>false</IsTruncated>")
        }),
    ];
    let removals = [
        mock!(Client::remove_user_from_group)
            .match_requests(|r| r.group_name() == Some("developers"))
            .then_output(|| RemoveUserFromGroupOutput::builder().build()),
        mock!(Client::delete_user_policy)
            .match_requests(|r| r.policy_name() == Some("s3-read"))
            .then_output(|| DeleteUserPolicyOutput::builder().build()),
        mock!(Client::detach_user_policy)
            .match_requests(|r| r.policy_arn() == Some("arn:aws:iam::aws:policy/ReadOnlyAccess"))
            .then_output(|| DetachUserPolicyOutput::builder().build()),
    ];
    let recheck = alice_exists!();
    let no_credentials = no_credentials_rules!();
    let iam = aws_smithy_mocks::mock_client!(
        aws_sdk_iam,
        aws_smithy_mocks::RuleMode::MatchAny,
        rules.iter().chain(&removals).chain([&recheck]).chain(&no_credentials)
    );
    let ctx = context(iam);
    let inventory = invoke::<GetGroupsAndPolicies>(
        &ctx,
        parse_request::<GetGroupsAndPolicies>(json!({"UserName": "alice", "UserId": ALICE_ID})).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(inventory.groups[0].group_name, "developers");
    assert_eq!(inventory.inline_policies[0].policy_document["Statement"][0]["Action"], "s3:GetObject");
    assert_eq!(inventory.attached_policies[0].policy_name.as_deref(), Some("ReadOnlyAccess"));
    let removed = invoke::<DeleteGroupsAndPolicies>(
        &ctx,
        parse_request::<DeleteGroupsAndPolicies>(
            json!({"UserName": "alice", "UserId": ALICE_ID, "Permissions": inventory}),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(removed.item_count(), 3);
    assert!(removed.groups.iter().all(|g| g.outcome == Some(Outcome::Removed)));
    assert_eq!(removals.iter().map(|r| r.num_calls()).collect::<Vec<_>>(), [1, 1, 1]);
}

#[test]
fn lambda_https_client_trusts_the_five_amazon_roots() {
    use iam_offboard_core::clients::{amazon_trust_http_client, AMAZON_TRUST_SERVICES_ROOTS};
    assert_eq!(AMAZON_TRUST_SERVICES_ROOTS.matches("-----BEGIN CERTIFICATE-----").count(), 5);
    assert_eq!(AMAZON_TRUST_SERVICES_ROOTS.matches("-----END CERTIFICATE-----").count(), 5);
    // Building the client parses nothing from disk; both variants construct.
    let _amazon_only = amazon_trust_http_client(false);
    let _with_system = amazon_trust_http_client(true);
}

#[tokio::test(start_paused = true)]
async fn a_throttled_call_waits_its_turn_instead_of_failing_the_stage() {
    use iam_offboard_core::clients::retry_policy;
    let throttled_then_ok = mock!(Client::list_mfa_devices)
        .sequence()
        .http_response(|| error_xml(400, "Throttling", "Rate exceeded"))
        .times(7)
        .http_response(|| mfa_devices_xml(&[HARDWARE_SERIAL]))
        .build();
    let iam = client_with_retry_policy(retry_policy(), [&throttled_then_ok]);
    let devices = iam.list_mfa_devices().user_name("alice").send().await.unwrap();
    assert_eq!(devices.mfa_devices().len(), 1);
    assert_eq!(throttled_then_ok.num_calls(), 8, "seven throttles, then the eighth attempt succeeds");
}

#[tokio::test(start_paused = true)]
async fn a_lambda_stage_stops_before_its_deadline_and_names_what_it_removed() {
    use iam_offboard_core::clients::retry_policy;
    use iam_offboard_core::deadline;
    let delete_key = mock!(Client::delete_access_key)
        .match_requests(|r| r.access_key_id() == Some("AKIAAAAAAAAAAAAAAAA1"))
        .then_output(|| DeleteAccessKeyOutput::builder().build());
    let throttled = mock!(Client::delete_access_key)
        .match_requests(|r| r.access_key_id() == Some("AKIAAAAAAAAAAAAAAAA2"))
        .then_http_response(|| error_xml(400, "Throttling", "Rate exceeded"));
    let login = mock!(Client::delete_login_profile).then_output(|| DeleteLoginProfileOutput::builder().build());
    let ssh = mock!(Client::delete_ssh_public_key).then_output(|| DeleteSshPublicKeyOutput::builder().build());
    let recheck = alice_exists!();
    let iam = client_with_retry_policy(
        retry_policy().with_max_attempts(1000),
        [&delete_key, &throttled, &login, &ssh, &recheck],
    );
    let ctx = context(iam);
    let mut inventory = alice_inventory().await;
    inventory.mfa_devices.clear();
    let request = json!({"UserName": "alice", "UserId": ALICE_ID, "Credentials": inventory});
    let request = parse_request::<DeleteKeysCertificatesMfaAndCredentials>(request).unwrap();
    let started = tokio::time::Instant::now();
    let stop_at = started + Duration::from_secs(30);
    let error =
        deadline::scope(stop_at, invoke::<DeleteKeysCertificatesMfaAndCredentials>(&ctx, request)).await.unwrap_err();
    assert_eq!(error.name(), "Throttled", "{error}");
    assert!(error.is_transient());
    let message = error.to_string();
    assert!(message.contains("access key AKIAAAAAAAAAAAAAAAA2 was still waiting for IAM"), "{message}");
    assert!(
        message.contains("Removed before the failure: login profile, access key AKIAAAAAAAAAAAAAAAA1"),
        "{message}"
    );
    assert!(tokio::time::Instant::now() < stop_at + Duration::from_secs(1), "returned at the stop time, not later");
    assert!(throttled.num_calls() > 1, "the throttled call was retried until the stop time");
    assert_eq!(ssh.num_calls(), 0, "nothing is started after the stop time");
    assert_eq!((delete_key.num_calls(), login.num_calls()), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_throttled_call_gives_up_after_twenty_attempts() {
    use iam_offboard_core::clients::retry_policy;
    let always_throttled =
        mock!(Client::list_mfa_devices).then_http_response(|| error_xml(400, "Throttling", "Rate exceeded"));
    let iam = client_with_retry_policy(retry_policy(), [&always_throttled]);
    let started = tokio::time::Instant::now();
    let error = iam.list_mfa_devices().user_name("alice").send().await.unwrap_err();
    assert_eq!(aws_sdk_iam::error::ProvideErrorMetadata::code(&error), Some("Throttling"));
    assert_eq!(always_throttled.num_calls(), 20);
    assert!(started.elapsed() <= Duration::from_secs(19 * 10), "backoff is capped at 10 s per attempt");
}

#[tokio::test(start_paused = true)]
async fn a_lambda_read_stage_also_stops_by_its_deadline() {
    use iam_offboard_core::clients::retry_policy;
    use iam_offboard_core::deadline;
    let throttled =
        mock!(Client::list_mfa_devices).then_http_response(|| error_xml(400, "Throttling", "Rate exceeded"));
    let others = credentials_rules();
    let iam =
        client_with_retry_policy(retry_policy().with_max_attempts(1000), std::iter::once(&throttled).chain(&others));
    let ctx = context(iam);
    let request =
        parse_request::<GetKeysCertificatesMfaAndCredentials>(json!({"UserName": "alice", "UserId": ALICE_ID}))
            .unwrap();
    let stop_at = tokio::time::Instant::now() + Duration::from_secs(30);
    let error =
        deadline::scope(stop_at, invoke::<GetKeysCertificatesMfaAndCredentials>(&ctx, request)).await.unwrap_err();
    assert_eq!(error.name(), "Throttled", "{error}");
    assert!(error.to_string().contains("GetKeysCertificatesMfaAndCredentials was still waiting for IAM"), "{error}");
    assert!(
        tokio::time::Instant::now() <= stop_at + Duration::from_secs(1),
        "returned by the backstop, a second after the stop time"
    );
    assert!(throttled.num_calls() > 1);
}

fn protected_alice() -> aws_smithy_runtime_api::client::orchestrator::HttpResponse {
    get_user_tagged_xml("alice", ALICE_ID, &[("Offboard:Protected", "true")])
}

fn recreated_alice() -> aws_smithy_runtime_api::client::orchestrator::HttpResponse {
    get_user_xml("alice", "AIDARECREATED0000001", "/", None)
}

fn plain_alice() -> aws_smithy_runtime_api::client::orchestrator::HttpResponse {
    get_user_xml("alice", ALICE_ID, "/", None)
}

/// Every mutating stage's request, as a direct `lambda:Invoke` would send it.
fn mutating_requests() -> Vec<(&'static str, Value)> {
    let user = json!({"UserName": "alice", "UserId": ALICE_ID, "Arn": "arn:aws:iam::123456789012:user/alice", "Path": "/",
                      "CreateDate": null, "PasswordLastUsed": null, "Tags": [], "PermissionsBoundary": null});
    let empty_round = json!({
        "Credentials": serde_json::to_value(CredentialInventory::default()).unwrap(),
        "MFADevices": [],
        "Permissions": {"Groups": [], "InlinePolicies": [], "AttachedPolicies": []}
    });
    vec![
        (
            "credentials",
            json!({"UserName": "alice", "UserId": ALICE_ID, "Credentials": {
            "LoginProfile": {"CreateDate": null, "PasswordResetRequired": false},
            "AccessKeys": [{"AccessKeyId": "AKIAAAAAAAAAAAAAAAA1", "Status": "Active", "CreateDate": null}],
            "SSHPublicKeys": [], "SigningCertificates": [], "ServiceSpecificCredentials": [], "MFADevices": []}}),
        ),
        (
            "mfa device",
            json!({"UserName": "alice", "UserId": ALICE_ID, "HandledAs": "Virtual",
            "MFADevice": {"SerialNumber": VIRTUAL_SERIAL, "EnableDate": null, "HandledAs": "Virtual"}}),
        ),
        (
            "permissions",
            json!({"UserName": "alice", "UserId": ALICE_ID, "Permissions": {
            "Groups": [{"GroupName": "admins", "GroupArn": null}], "InlinePolicies": [], "AttachedPolicies": []}}),
        ),
        (
            "quarantine",
            json!({"Action": "Quarantine", "UserName": "alice", "UserId": ALICE_ID, "DeleteAfter": "2026-12-01T00:00:00Z",
            "Credentials": serde_json::to_value(CredentialInventory::default()).unwrap(),
            "Permissions": {"Groups": [], "InlinePolicies": [], "AttachedPolicies": []}}),
        ),
        ("user deletion", json!({"Target": {"User": user, "DryRun": false, "Context": null}, "Removed": empty_round})),
    ]
}

async fn run_mutating_stage(
    ctx: &StageContext,
    which: &str,
    payload: Value,
) -> Result<Value, iam_offboard_core::OffboardError> {
    Ok(match which {
        "credentials" | "mfa device" => {
            let request = parse_request::<DeleteKeysCertificatesMfaAndCredentials>(payload)?;
            match invoke::<DeleteKeysCertificatesMfaAndCredentials>(ctx, request).await? {
                CredentialRemoval::Credentials(removed) => serde_json::to_value(removed).unwrap(),
                CredentialRemoval::MfaDevice(device) => serde_json::to_value(device).unwrap(),
            }
        }
        "quarantine" => {
            serde_json::to_value(invoke::<QuarantineUser>(ctx, parse_request::<QuarantineUser>(payload)?).await?)
                .unwrap()
        }
        "permissions" => serde_json::to_value(
            invoke::<DeleteGroupsAndPolicies>(ctx, parse_request::<DeleteGroupsAndPolicies>(payload)?).await?,
        )
        .unwrap(),
        _ => serde_json::to_value(
            invoke::<DeleteIamUserAndVerify>(ctx, parse_request::<DeleteIamUserAndVerify>(payload)?).await?,
        )
        .unwrap(),
    })
}

#[tokio::test]
async fn a_direct_invoke_of_any_mutating_stage_with_a_protected_or_recreated_user_changes_nothing() {
    type Answer = fn() -> aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    let cases: [(Answer, ProtectionPolicy, &str); 3] = [
        (protected_alice, ProtectionPolicy::default(), "ProtectedUser"),
        (
            plain_alice,
            ProtectionPolicy { user_names: vec!["ALICE".into()], ..ProtectionPolicy::default() },
            "ProtectedUser",
        ),
        (recreated_alice, ProtectionPolicy::default(), "UserReplaced"),
    ];
    for (answer, policy, expected) in cases {
        for (which, payload) in mutating_requests() {
            // Read rules only: any mutation would panic the test.
            let get_user = mock!(Client::get_user).then_http_response(answer);
            let held = mock!(Client::list_mfa_devices).then_http_response(|| mfa_devices_xml(&[VIRTUAL_SERIAL]));
            let (sts, _) = sts_as_role!();
            let ctx = StageContext::from_clients(iam_client!(&get_user, &held), sts, policy.clone());
            let error = run_mutating_stage(&ctx, which, payload).await.unwrap_err();
            assert_eq!(error.name(), expected, "{which}: {error}");
            assert!(error.to_string().contains("alice"), "{error}");
            assert_eq!(get_user.num_calls(), 1, "{which}: checked before anything else");
        }
    }
}

#[tokio::test]
async fn a_mutating_stage_refuses_the_identity_it_runs_as() {
    for (which, payload) in mutating_requests() {
        let me = mock!(aws_sdk_sts::Client::get_caller_identity).then_output(|| {
            aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityOutput::builder()
                .arn("arn:aws:iam::123456789012:user/alice")
                .user_id(ALICE_ID)
                .account("123456789012")
                .build()
        });
        let get_user = alice_exists!();
        let sts = aws_smithy_mocks::mock_client!(aws_sdk_sts, [&me]);
        let ctx = StageContext::from_clients(iam_client!(&get_user), sts, ProtectionPolicy::default());
        let error = run_mutating_stage(&ctx, which, payload).await.unwrap_err();
        assert_eq!(error.name(), "ProtectedUser", "{which}");
        assert!(error.to_string().contains("will not delete itself"), "{error}");
    }
}

#[tokio::test]
async fn an_mfa_serial_the_user_does_not_hold_is_never_touched() {
    let foreign = "arn:aws:iam::123456789012:mfa/someone-elses-device";
    let request = |retry_count: u32| {
        json!({"UserName": "alice", "UserId": ALICE_ID, "HandledAs": "Virtual", "RetryCount": retry_count,
               "MFADevice": {"SerialNumber": foreign, "EnableDate": null, "HandledAs": "Virtual"}})
    };
    // Read rules only: DeactivateMFADevice or DeleteVirtualMFADevice would panic.
    let get_user = alice_exists!();
    let held = mock!(Client::list_mfa_devices).then_http_response(|| mfa_devices_xml(&[PASSKEY_SERIAL]));
    // Unassigned, and marked as taken from another user (or not marked at all).
    let marks = mock!(Client::list_mfa_device_tags)
        .match_requests(move |r| r.serial_number() == Some(foreign))
        .sequence()
        .http_response(|| mfa_device_tags_xml(&[(TAKEN_FROM_TAG, "AIDABOB00000000000001"), ("team", "x")]))
        .http_response(|| mfa_device_tags_xml(&[]))
        .build();
    let ctx = context(iam_client!(&get_user, &held, &marks));
    let error = run_mutating_stage(&ctx, "mfa device", request(0)).await.unwrap_err();
    assert_eq!(error.name(), "InvalidInput");
    assert!(error.to_string().contains(foreign) && error.to_string().contains("nothing was changed"), "{error}");
    assert_eq!(marks.num_calls(), 0, "a first attempt never looks further than the user's own devices");

    // On the state machine's retry, the earlier attempt most likely deactivated
    // it: recorded as already deactivated, and not deleted without alice's mark.
    for _ in 0..2 {
        let device = run_mutating_stage(&ctx, "mfa device", request(1)).await.unwrap();
        assert_eq!(device["Deactivation"], "AlreadyAbsent");
        assert!(device.get("VirtualDeviceDeletion").is_none(), "{device}");
    }
    assert_eq!((held.num_calls(), marks.num_calls()), (3, 2));
}

/// The retry of a device task whose first attempt deactivated alice's
/// virtual device and stopped before deleting it.
fn retry_of_virtual_device() -> Value {
    json!({"UserName": "alice", "UserId": ALICE_ID, "HandledAs": "Virtual", "RetryCount": 2,
           "MFADevice": {"SerialNumber": VIRTUAL_SERIAL, "EnableDate": null, "HandledAs": "Virtual"}})
}

#[tokio::test]
async fn a_retry_deletes_the_virtual_device_its_earlier_attempt_left_unassigned() {
    let get_user = alice_exists!();
    let held = mock!(Client::list_mfa_devices).then_http_response(|| mfa_devices_xml(&[PASSKEY_SERIAL]));
    let marked = mock!(Client::list_mfa_device_tags)
        .match_requests(|r| r.serial_number() == Some(VIRTUAL_SERIAL))
        .then_http_response(|| mfa_device_tags_xml(&[("team", "x"), (TAKEN_FROM_TAG, ALICE_ID)]));
    let delete_virtual = mock!(Client::delete_virtual_mfa_device)
        .match_requests(|r| r.serial_number() == Some(VIRTUAL_SERIAL))
        .then_output(|| DeleteVirtualMfaDeviceOutput::builder().build());
    let ctx = context(iam_client!(&get_user, &held, &marked, &delete_virtual));
    let device = run_mutating_stage(&ctx, "mfa device", retry_of_virtual_device()).await.unwrap();
    assert_eq!(device["Deactivation"], "AlreadyAbsent");
    assert_eq!(device["VirtualDeviceDeletion"], "Removed");
    assert_eq!((marked.num_calls(), delete_virtual.num_calls()), (1, 1));

    // Already deleted by then (ListMFADeviceTags says NoSuchEntity): recorded, no delete.
    let gone = mock!(Client::list_mfa_device_tags).then_http_response(|| no_such_entity("MFA device"));
    let ctx = context(iam_client!(&alice_exists!(), &held, &gone));
    let device = run_mutating_stage(&ctx, "mfa device", retry_of_virtual_device()).await.unwrap();
    assert_eq!(device["VirtualDeviceDeletion"], "AlreadyAbsent");

    // Assigned again since (DeleteConflict): left alone, not a failure.
    let in_use = mock!(Client::delete_virtual_mfa_device).then_http_response(|| {
        error_xml(409, "DeleteConflict", "You must deactivate a user's virtual MFA device before you can delete it.")
    });
    let ctx = context(iam_client!(&alice_exists!(), &held, &marked, &in_use));
    let device = run_mutating_stage(&ctx, "mfa device", retry_of_virtual_device()).await.unwrap();
    assert!(device.get("VirtualDeviceDeletion").is_none(), "{device}");
    assert_eq!(in_use.num_calls(), 1);

    // The tags cannot be read: the error, never "already gone".
    let denied = mock!(Client::list_mfa_device_tags)
        .then_http_response(|| error_xml(403, "AccessDenied", "not authorized to perform: iam:ListMFADeviceTags"));
    let ctx = context(iam_client!(&alice_exists!(), &held, &denied));
    let error = run_mutating_stage(&ctx, "mfa device", retry_of_virtual_device()).await.unwrap_err();
    assert_eq!(error.name(), "AccessDenied");

    // A non-virtual serial on retry: nothing to read or delete.
    let mut request = retry_of_virtual_device();
    request["HandledAs"] = json!("NonVirtual");
    request["MFADevice"]["SerialNumber"] = json!(HARDWARE_SERIAL);
    let held = mock!(Client::list_mfa_devices).then_http_response(|| mfa_devices_xml(&[]));
    let ctx = context(iam_client!(&alice_exists!(), &held));
    let device = run_mutating_stage(&ctx, "mfa device", request).await.unwrap();
    assert_eq!(device["Deactivation"], "AlreadyAbsent");
    assert!(device.get("VirtualDeviceDeletion").is_none(), "{device}");
}

#[tokio::test]
async fn a_device_that_cannot_be_marked_is_still_removed_unless_iam_is_throttling() {
    for (code, status, goes_on) in
        [("AccessDenied", 403, true), ("LimitExceeded", 409, true), ("Throttling", 400, false)]
    {
        let (_, deactivate, delete_virtual) = deletion_rules();
        let refused = mock!(Client::tag_mfa_device).then_http_response(move || error_xml(status, code, "refused"));
        let held = mock!(Client::list_mfa_devices).then_http_response(|| mfa_devices_xml(&[VIRTUAL_SERIAL]));
        let ctx = context(iam_client!(&alice_exists!(), &held, &refused, &deactivate, &delete_virtual));
        let request = json!({"UserName": "alice", "UserId": ALICE_ID, "HandledAs": "Virtual",
                             "MFADevice": {"SerialNumber": VIRTUAL_SERIAL, "EnableDate": null, "HandledAs": "Virtual"}});
        let result = run_mutating_stage(&ctx, "mfa device", request).await;
        if goes_on {
            let device = result.unwrap();
            assert_eq!(
                (device["Deactivation"].as_str(), device["VirtualDeviceDeletion"].as_str()),
                (Some("Removed"), Some("Removed")),
                "{code}"
            );
        } else {
            assert_eq!(result.unwrap_err().name(), "Throttled");
            assert_eq!(
                deactivate.num_calls(),
                0,
                "nothing is deactivated before the mark when the mark may still be made"
            );
        }
    }
}

#[tokio::test]
async fn a_user_already_deleted_is_verified_not_deleted_again() {
    // No DeleteUser rule: calling it would panic. Gone by name is verified by
    // id: no user in the account holds it any more.
    let gone = mock!(Client::get_user).then_http_response(|| no_such_entity("user"));
    let nobody = mock!(Client::list_users).then_http_response(|| list_users_page(0, 1));
    let ctx = context(iam_client!(&gone, &nobody));
    let (_, payload) = mutating_requests().pop().unwrap();
    let record = run_mutating_stage(&ctx, "user deletion", payload).await.unwrap();
    assert_eq!(record["UserDeletion"], json!({"Outcome": "AlreadyAbsent", "VerificationAttempts": 1}));
    assert_eq!((gone.num_calls(), nobody.num_calls()), (1, 1));

    // Renamed since the inventory: the id is still there, under another name.
    let gone = mock!(Client::get_user).then_http_response(|| no_such_entity("user"));
    let renamed = mock!(Client::list_users).then_http_response(|| {
        ok_xml(
            "ListUsers",
            &format!(
                "<Users><member>{}</member></Users><IsTruncated>false</IsTruncated>",
                user_xml("alice-2", ALICE_ID, "/")
            ),
        )
    });
    let ctx = context(iam_client!(&gone, &renamed));
    let (_, payload) = mutating_requests().pop().unwrap();
    let error = run_mutating_stage(&ctx, "user deletion", payload).await.unwrap_err();
    assert_eq!(error.name(), "VerificationFailed", "{error}");
    assert!(error.to_string().contains("renamed to alice-2"), "{error}");

    for (which, payload) in mutating_requests().into_iter().take(4) {
        let gone = mock!(Client::get_user).then_http_response(|| no_such_entity("user"));
        let ctx = context(iam_client!(&gone));
        let error = run_mutating_stage(&ctx, which, payload).await.unwrap_err();
        assert_eq!(error.name(), "UserNotFound", "{which}: a vanished user is not someone to remove things from");
    }
}

#[tokio::test]
async fn a_denied_recheck_is_access_denied_never_a_user_already_gone() {
    // No DeleteUser rule: treating the denial as "already deleted" and going on would panic.
    for (which, payload) in mutating_requests() {
        let denied = mock!(Client::get_user).then_http_response(|| {
            error_xml(403, "AccessDenied", "User: arn:aws:iam::123456789012:user/ops is not authorized to perform: iam:GetUser on resource: arn:aws:iam::123456789012:user/alice")
        });
        let ctx = context(iam_client!(&denied));
        let error = run_mutating_stage(&ctx, which, payload).await.unwrap_err();
        assert_eq!(error.name(), "AccessDenied", "{which}");
    }
}

fn deleted_alice_record() -> iam_offboard_core::record::AuditRecord {
    serde_json::from_value(json!({
        "User": {"UserName": "alice", "UserId": ALICE_ID, "Arn": "arn:aws:iam::123456789012:user/eng/alice", "Path": "/eng/",
                 "CreateDate": null, "PasswordLastUsed": null, "Tags": [{"Key": "team", "Value": "payments"}],
                 "PermissionsBoundary": "arn:aws:iam::123456789012:policy/Boundary"},
        "DryRun": false, "Context": null,
        "Items": {"LoginProfile": {"CreateDate": null, "PasswordResetRequired": false, "Outcome": "Removed"},
                  "AccessKeys": [{"AccessKeyId": "AKIAAAAAAAAAAAAAAAA1", "Status": "Active", "CreateDate": null, "Outcome": "Removed"}],
                  "SSHPublicKeys": [], "SigningCertificates": [], "ServiceSpecificCredentials": [],
                  "MFADevices": [{"SerialNumber": PASSKEY_SERIAL, "EnableDate": null, "HandledAs": "NonVirtual"}],
                  "Groups": [{"GroupName": "developers", "GroupArn": null}, {"GroupName": "gone", "GroupArn": null}],
                  "InlinePolicies": [{"PolicyName": "s3-read", "PolicyDocument": {"Version": "2012-10-17", "Statement": []}}],
                  "AttachedPolicies": [{"PolicyName": "ReadOnlyAccess", "PolicyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}]},
        "UserDeletion": {"Outcome": "Removed", "VerificationAttempts": 1}, "Rounds": 0, "Timings": {}
    }))
    .unwrap()
}

#[tokio::test]
async fn restore_recreates_identity_and_permissions_and_reports_what_it_could_not() {
    use aws_sdk_iam::operation::{
        add_user_to_group::AddUserToGroupOutput, attach_user_policy::AttachUserPolicyOutput,
        create_user::CreateUserOutput, put_user_policy::PutUserPolicyOutput,
    };
    let absent = mock!(Client::get_user).then_http_response(|| no_such_entity("user"));
    let create = mock!(Client::create_user)
        .match_requests(|r| {
            r.path() == Some("/eng/")
                && r.permissions_boundary() == Some("arn:aws:iam::123456789012:policy/Boundary")
                && r.tags().iter().any(|t| t.key() == "team" && t.value() == "payments")
        })
        .then_output(|| CreateUserOutput::builder().build());
    let join = mock!(Client::add_user_to_group)
        .match_requests(|r| r.group_name() == Some("developers"))
        .then_output(|| AddUserToGroupOutput::builder().build());
    let gone = mock!(Client::add_user_to_group)
        .match_requests(|r| r.group_name() == Some("gone"))
        .then_http_response(|| no_such_entity("group"));
    let inline = mock!(Client::put_user_policy)
        .match_requests(|r| r.policy_document() == Some(r#"{"Version":"2012-10-17","Statement":[]}"#))
        .then_output(|| PutUserPolicyOutput::builder().build());
    let attach = mock!(Client::attach_user_policy).then_output(|| AttachUserPolicyOutput::builder().build());
    let iam = iam_client!(&absent, &create, &join, &gone, &inline, &attach);
    let report = iam_offboard_core::restore::restore_from_record(&iam, &deleted_alice_record(), false).await.unwrap();
    assert_eq!(
        [create.num_calls(), join.num_calls(), gone.num_calls(), inline.num_calls(), attach.num_calls()],
        [1; 5]
    );
    assert_eq!(report.could_not_restore, ["membership of group gone: it no longer exists"]);
    assert_eq!(report.user_name, "alice");
    assert_eq!(report.restored.len(), 4, "{:?}", report.restored);
    assert_eq!(report.not_restored.len(), 3, "password, key and MFA device: {:?}", report.not_restored);
}

#[tokio::test]
async fn restore_changes_nothing_over_an_existing_user_for_a_plan_or_in_a_dry_run() {
    // Only GetUser rules: any creating call would panic.
    let exists = alice_exists!();
    let error = iam_offboard_core::restore::restore_from_record(&iam_client!(&exists), &deleted_alice_record(), false)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("already exists"), "{error}");
    let mut plan = deleted_alice_record();
    plan.dry_run = true;
    let error = iam_offboard_core::restore::restore_from_record(&iam_client!(), &plan, false).await.unwrap_err();
    assert_eq!(error.name(), "InvalidInput");
    let absent = mock!(Client::get_user).then_http_response(|| no_such_entity("user"));
    let report = iam_offboard_core::restore::restore_from_record(&iam_client!(&absent), &deleted_alice_record(), true)
        .await
        .unwrap();
    assert!(report.dry_run && report.restored.len() == 5, "{:?}", report.restored);
}

#[tokio::test]
async fn a_denied_restore_step_is_an_error_not_a_missing_group() {
    use aws_sdk_iam::operation::{
        add_user_to_group::AddUserToGroupOutput, create_user::CreateUserOutput, put_user_policy::PutUserPolicyOutput,
    };
    let absent = mock!(Client::get_user).then_http_response(|| no_such_entity("user"));
    let create = mock!(Client::create_user).then_output(|| CreateUserOutput::builder().build());
    let join = mock!(Client::add_user_to_group).then_output(|| AddUserToGroupOutput::builder().build());
    let inline = mock!(Client::put_user_policy).then_output(|| PutUserPolicyOutput::builder().build());
    let denied = mock!(Client::attach_user_policy).then_http_response(|| {
        error_xml(
            403,
            "AccessDenied",
            "User: arn:aws:iam::123456789012:user/ops is not authorized to perform: iam:AttachUserPolicy",
        )
    });
    let iam = iam_client!(&absent, &create, &join, &inline, &denied);
    let error =
        iam_offboard_core::restore::restore_from_record(&iam, &deleted_alice_record(), false).await.unwrap_err();
    assert_eq!(error.name(), "AccessDenied", "{error}");
}

#[test]
fn records_count_items_and_carry_step_functions_causes() {
    let record = deleted_alice_record();
    assert_eq!(record.items.count(), 7, "login profile, key, device, 2 groups, inline and attached policy");
    let error = iam_offboard_core::OffboardError::ProtectedUser("kept".into());
    let cause: Value = serde_json::from_str(&iam_offboard_core::record::step_functions_cause(&error)).unwrap();
    assert_eq!(cause, json!({"errorType": "ProtectedUser", "errorMessage": "kept"}));
}

/// alice as GetUser answers for her ([`ALICE_ID`], path /, no tags).
fn alice_user() -> iam_offboard_core::target::TargetUser {
    serde_json::from_value(json!({
        "UserName": "alice", "UserId": ALICE_ID, "Arn": "arn:aws:iam::123456789012:user/alice", "Path": "/",
        "CreateDate": null, "PasswordLastUsed": null, "Tags": [], "PermissionsBoundary": null
    }))
    .unwrap()
}
