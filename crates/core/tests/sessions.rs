//! Working in a target account: the role ARN, the session name, the
//! AssumeRole call and the per-account, per-execution session kept by a warm
//! process.

mod common;

use aws_sdk_sts::operation::assume_role::AssumeRoleOutput;
use aws_sdk_sts::primitives::DateTime;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use iam_offboard_core::budget::{BudgetConfig, IamBudget};
use iam_offboard_core::sessions::{
    assume_target_role, partition_of, session_name, split_placement, target_role_arn, AccountSessions, Placement,
    SESSION_LENGTH,
};
use iam_offboard_core::stages::StageContext;
use iam_offboard_core::target::ProtectionPolicy;
use serde_json::json;
use std::sync::Arc;

fn issued(expires_in_secs: i64) -> AssumeRoleOutput {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    AssumeRoleOutput::builder()
        .assumed_role_user(
            aws_sdk_sts::types::AssumedRoleUser::builder()
                .arn("arn:aws:sts::444455556666:assumed-role/offboard-target/offboard-alice-1a2b3c4d")
                .assumed_role_id("AROATARGETROLEID:offboard-alice-1a2b3c4d")
                .build()
                .unwrap(),
        )
        .credentials(
            aws_sdk_sts::types::Credentials::builder()
                .access_key_id("ASIATARGETSESSION001")
                .secret_access_key("secret")
                .session_token("token")
                .expiration(DateTime::from_secs(now + expires_in_secs))
                .build()
                .unwrap(),
        )
        .build()
}

fn sessions() -> AccountSessions {
    let config = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .build();
    let budget = BudgetConfig { table: "t".into(), calls_per_second: 10.0, schedule: "iam-calls".into() };
    let budget = IamBudget::new(aws_sdk_dynamodb::Client::new(&config), budget);
    AccountSessions::new(config, "offboard-target".into(), Some(budget))
}

#[test]
fn the_role_arn_keeps_the_functions_partition_and_the_session_name_is_what_sts_accepts() {
    assert_eq!(partition_of("arn:aws-us-gov:sts::123456789012:assumed-role/r/s"), "aws-us-gov");
    assert_eq!(partition_of("not-an-arn"), "aws");
    assert_eq!(
        target_role_arn("aws-cn", "444455556666", "offboard-target"),
        "arn:aws-cn:iam::444455556666:role/offboard-target"
    );
    assert_eq!(session_name("alice-1a2b3c4d"), "offboard-alice-1a2b3c4d");
    let odd = session_name(&format!("a b/c:{}", "x".repeat(80)));
    assert!(odd.starts_with("offboard-a-b-c-") && odd.len() == 64, "{odd}");
    assert!(odd.chars().all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)));
}

#[tokio::test]
async fn assume_role_asks_for_the_shortest_session_named_after_the_execution() {
    let assume = mock!(aws_sdk_sts::Client::assume_role)
        .match_requests(|r| {
            r.role_arn() == Some("arn:aws:iam::444455556666:role/offboard-target")
                && r.role_session_name() == Some("offboard-alice-1a2b3c4d")
                && r.duration_seconds() == Some(SESSION_LENGTH.as_secs() as i32)
        })
        .then_output(|| issued(900));
    let sts = mock_client!(aws_sdk_sts, [&assume]);
    let (credentials, caller) =
        assume_target_role(&sts, "arn:aws:iam::444455556666:role/offboard-target", "offboard-alice-1a2b3c4d")
            .await
            .unwrap();
    assert_eq!(caller.account, "444455556666", "the self check there compares with the assumed role");
    assert_eq!(caller.arn, "arn:aws:sts::444455556666:assumed-role/offboard-target/offboard-alice-1a2b3c4d");
    assert_eq!(credentials.access_key_id(), "ASIATARGETSESSION001");
    assert_eq!(credentials.session_token(), Some("token"));
    assert!(credentials.expiry().is_some());
    assert_eq!(assume.num_calls(), 1);
}

#[tokio::test]
async fn a_target_account_without_the_role_is_access_denied_naming_the_role() {
    let denied = mock!(aws_sdk_sts::Client::assume_role).then_http_response(|| {
        common::error_xml(
            403,
            "AccessDenied",
            "User: arn:aws:sts::123456789012:assumed-role/fn is not authorized to perform: sts:AssumeRole",
        )
    });
    let sts = mock_client!(aws_sdk_sts, RuleMode::MatchAny, [&denied], |c: aws_sdk_sts::config::Builder| c
        .retry_config(aws_sdk_sts::config::retry::RetryConfig::disabled()));
    let error =
        assume_target_role(&sts, "arn:aws:iam::777788889999:role/offboard-target", "offboard-x").await.unwrap_err();
    assert_eq!(error.name(), "AccessDenied");
    assert!(error.to_string().contains("arn:aws:iam::777788889999:role/offboard-target"), "{error}");
}

#[tokio::test]
async fn a_warm_process_keeps_one_session_per_account_and_execution() {
    let assume = mock!(aws_sdk_sts::Client::assume_role).then_output(|| issued(900));
    let sts = mock_client!(aws_sdk_sts, RuleMode::MatchAny, [&assume]);
    let sessions = sessions();
    sessions.iam_for(&sts, "aws", "444455556666", "alice-1").await.unwrap();
    sessions.iam_for(&sts, "aws", "444455556666", "alice-1").await.unwrap();
    assert_eq!(assume.num_calls(), 1, "the second stage call of one execution reuses the session");
    sessions.iam_for(&sts, "aws", "111122223333", "alice-1").await.unwrap();
    sessions.iam_for(&sts, "aws", "444455556666", "bob-2").await.unwrap();
    assert_eq!(assume.num_calls(), 3, "another account or another execution gets a session of its own");
}

#[tokio::test]
async fn a_session_near_its_end_is_replaced_and_a_bad_account_id_asks_nothing() {
    let short = mock!(aws_sdk_sts::Client::assume_role).then_output(|| issued(120));
    let sts = mock_client!(aws_sdk_sts, RuleMode::MatchAny, [&short]);
    let sessions = sessions();
    sessions.iam_for(&sts, "aws", "444455556666", "alice-1").await.unwrap();
    sessions.iam_for(&sts, "aws", "444455556666", "alice-1").await.unwrap();
    assert_eq!(short.num_calls(), 2, "a session ending within five minutes is not reused");
    let error = sessions.iam_for(&sts, "aws", "4444-5555-6666", "alice-1").await.unwrap_err();
    assert_eq!(error.name(), "InvalidInput");
    assert_eq!(short.num_calls(), 2);
}

#[test]
fn a_payload_names_its_account_with_both_fields_or_neither() {
    let (placement, rest) =
        split_placement(json!({"UserName": "alice", "Account": "444455556666", "ExecutionName": "alice-1"})).unwrap();
    assert_eq!(placement, Some(Placement { account: "444455556666".into(), execution: "alice-1".into() }));
    assert_eq!(rest, json!({"UserName": "alice"}), "the stage's own fields are left as they were");
    assert_eq!(split_placement(json!({"UserName": "alice"})).unwrap(), (None, json!({"UserName": "alice"})));
    for bad in [
        json!({"Account": "444455556666"}),
        json!({"ExecutionName": "alice-1"}),
        json!({"Account": 444455556666u64, "ExecutionName": "alice-1"}),
        json!({"Account": "4444", "ExecutionName": "alice-1"}),
        json!({"Account": "444455556666", "ExecutionName": ""}),
    ] {
        assert_eq!(split_placement(bad.clone()).unwrap_err().name(), "InvalidInput", "{bad}");
    }
}

#[tokio::test]
async fn a_stage_placed_in_another_account_works_there_as_the_assumed_role_and_at_home_as_itself() {
    let assume = mock!(aws_sdk_sts::Client::assume_role)
        .match_requests(|r| r.role_arn() == Some("arn:aws:iam::444455556666:role/offboard-target"))
        .then_output(|| issued(900));
    let iam = aws_sdk_iam::Client::from_conf(aws_sdk_iam::Config::builder().behavior_version_latest().build());
    let mut ctx = StageContext::from_clients(iam, sts_as_role!(&assume).0, ProtectionPolicy::default());
    ctx.sessions = Some(Arc::new(sessions()));
    let home = Placement { account: "123456789012".into(), execution: "alice-1".into() };
    assert!(ctx.in_account(&home).await.unwrap().is_none(), "its own account needs no session");
    assert_eq!(assume.num_calls(), 0);
    let there = Placement { account: "444455556666".into(), execution: "alice-1".into() };
    let target = ctx.in_account(&there).await.unwrap().expect("another account's context");
    assert_eq!(target.caller().await.unwrap().account, "444455556666");
    assert_eq!(target.protection, ctx.protection, "the same protection applies there");
    assert_eq!(assume.num_calls(), 1);
}

#[tokio::test]
async fn without_a_target_role_another_account_is_invalid_input_and_nothing_is_assumed() {
    let assume = mock!(aws_sdk_sts::Client::assume_role).then_output(|| issued(900));
    let iam = aws_sdk_iam::Client::from_conf(aws_sdk_iam::Config::builder().behavior_version_latest().build());
    let ctx = StageContext::from_clients(iam, sts_as_role!(&assume).0, ProtectionPolicy::default());
    let there = Placement { account: "444455556666".into(), execution: "alice-1".into() };
    let Err(error) = ctx.in_account(&there).await else { panic!("another account without a target role") };
    assert_eq!(error.name(), "InvalidInput");
    assert!(error.to_string().contains("OFFBOARD_TARGET_ROLE_NAME"), "{error}");
    assert_eq!(assume.num_calls(), 0);
}
