//! aws-smithy-mocks helpers: IAM answers as the real Query-protocol XML, so
//! the SDK's own deserializers and error parsing are part of every test.
#![allow(dead_code)]

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;

pub const ACCOUNT: &str = "123456789012";
pub const VIRTUAL_SERIAL: &str = "arn:aws:iam::123456789012:mfa/alice";
pub const PASSKEY_SERIAL: &str = "arn:aws:iam::123456789012:u2f/user/alice/key-ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
pub const HARDWARE_SERIAL: &str = "GAKT12345678";
pub const ALICE_ID: &str = "AIDAALICE000000000001";

/// A mocked IAM client. Rules match in any order; a call no rule matches
/// panics, so every test also proves which calls were (not) made. Retries
/// are off: the state machine owns retrying.
#[macro_export]
macro_rules! iam_client {
    ($($rule:expr),* $(,)?) => {
        aws_smithy_mocks::mock_client!(
            aws_sdk_iam,
            aws_smithy_mocks::RuleMode::MatchAny,
            [$($rule),*],
            |config: aws_sdk_iam::config::Builder| config.retry_config(aws_sdk_iam::config::retry::RetryConfig::disabled())
        )
    };
}

/// A mocked STS client whose caller is an assumed role (a Lambda's identity),
/// answering also by the extra rules given, if any.
#[macro_export]
macro_rules! sts_as_role {
    ($($extra:expr),*) => {{
        let rule = aws_smithy_mocks::mock!(aws_sdk_sts::Client::get_caller_identity).then_output(|| {
            aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityOutput::builder()
                .arn("arn:aws:sts::123456789012:assumed-role/offboard-GetUsername/fn")
                .user_id("AROAEXAMPLEROLE:fn")
                .account("123456789012")
                .build()
        });
        (aws_smithy_mocks::mock_client!(aws_sdk_sts, aws_smithy_mocks::RuleMode::MatchAny, [&rule $(, $extra)*]), rule)
    }};
}

pub fn ok_xml(operation: &str, result: &str) -> HttpResponse {
    let body = format!(
        "<{operation}Response xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><{operation}Result>{result}</{operation}Result><ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></{operation}Response>"
    );
    HttpResponse::new(StatusCode::try_from(200).unwrap(), SdkBody::from(body))
}

pub fn error_xml(status: u16, code: &str, message: &str) -> HttpResponse {
    let kind = if status >= 500 { "Receiver" } else { "Sender" };
    let body = format!(
        "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>r-1</RequestId></ErrorResponse>"
    );
    HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body))
}

pub fn no_such_entity(what: &str) -> HttpResponse {
    error_xml(404, "NoSuchEntity", &format!("The {what} cannot be found."))
}

pub fn user_xml(name: &str, id: &str, path: &str) -> String {
    format!(
        "<Path>{path}</Path><UserName>{name}</UserName><UserId>{id}</UserId><Arn>arn:aws:iam::{ACCOUNT}:user{path}{name}</Arn><CreateDate>2024-01-02T03:04:05Z</CreateDate>"
    )
}

pub fn get_user_xml(name: &str, id: &str, path: &str, boundary: Option<&str>) -> HttpResponse {
    let boundary = boundary
        .map(|arn| {
            format!(
                "<PermissionsBoundary><PermissionsBoundaryType>Policy</PermissionsBoundaryType><PermissionsBoundaryArn>{arn}</PermissionsBoundaryArn></PermissionsBoundary>"
            )
        })
        .unwrap_or_default();
    ok_xml("GetUser", &format!("<User>{}{boundary}</User>", user_xml(name, id, path)))
}

/// GetUser with tags: IAM's GetUser answer carries the user's tags.
pub fn get_user_tagged_xml(name: &str, id: &str, tags: &[(&str, &str)]) -> HttpResponse {
    let members: String =
        tags.iter().map(|(k, v)| format!("<member><Key>{k}</Key><Value>{v}</Value></member>")).collect();
    ok_xml("GetUser", &format!("<User>{}<Tags>{members}</Tags></User>", user_xml(name, id, "/")))
}

/// The re-check's GetUser: alice exists with [`ALICE_ID`] and no tags.
#[macro_export]
macro_rules! alice_exists {
    () => {
        aws_smithy_mocks::mock!(aws_sdk_iam::Client::get_user)
            .match_requests(|r| r.user_name() == Some("alice"))
            .then_http_response(|| $crate::common::get_user_xml("alice", $crate::common::ALICE_ID, "/", None))
    };
}

pub fn tags_xml(tags: &[(&str, &str)]) -> HttpResponse {
    tags_answer("ListUserTags", tags)
}

pub fn mfa_device_tags_xml(tags: &[(&str, &str)]) -> HttpResponse {
    tags_answer("ListMFADeviceTags", tags)
}

fn tags_answer(operation: &str, tags: &[(&str, &str)]) -> HttpResponse {
    let members: String =
        tags.iter().map(|(k, v)| format!("<member><Key>{k}</Key><Value>{v}</Value></member>")).collect();
    ok_xml(operation, &format!("<Tags>{members}</Tags><IsTruncated>false</IsTruncated>"))
}

pub fn mfa_devices_xml(serials: &[&str]) -> HttpResponse {
    let members: String = serials
        .iter()
        .map(|s| {
            format!(
                "<member><UserName>alice</UserName><SerialNumber>{s}</SerialNumber><EnableDate>2025-05-05T00:00:00Z</EnableDate></member>"
            )
        })
        .collect();
    ok_xml("ListMFADevices", &format!("<MFADevices>{members}</MFADevices><IsTruncated>false</IsTruncated>"))
}

fn empty_list(operation: &str, member: &str) -> HttpResponse {
    ok_xml(operation, &format!("<{member}></{member}><IsTruncated>false</IsTruncated>"))
}

/// IAM's answers for a user who holds no credential and no MFA device: what
/// DeleteGroupsAndPolicies must see before it removes anything.
#[macro_export]
macro_rules! no_credentials_rules {
    () => {
        vec![
            aws_smithy_mocks::mock!(aws_sdk_iam::Client::get_login_profile)
                .then_http_response(|| $crate::common::no_such_entity("login profile")),
            aws_smithy_mocks::mock!(aws_sdk_iam::Client::list_access_keys)
                .then_http_response(|| $crate::common::empty_answer("ListAccessKeys", "AccessKeyMetadata")),
            aws_smithy_mocks::mock!(aws_sdk_iam::Client::list_ssh_public_keys)
                .then_http_response(|| $crate::common::empty_answer("ListSSHPublicKeys", "SSHPublicKeys")),
            aws_smithy_mocks::mock!(aws_sdk_iam::Client::list_signing_certificates)
                .then_http_response(|| $crate::common::empty_answer("ListSigningCertificates", "Certificates")),
            aws_smithy_mocks::mock!(aws_sdk_iam::Client::list_service_specific_credentials).then_http_response(|| {
                $crate::common::empty_answer("ListServiceSpecificCredentials", "ServiceSpecificCredentials")
            }),
            aws_smithy_mocks::mock!(aws_sdk_iam::Client::list_mfa_devices)
                .then_http_response(|| $crate::common::mfa_devices_xml(&[])),
        ]
    };
}

pub fn empty_answer(operation: &str, member: &str) -> HttpResponse {
    empty_list(operation, member)
}
