//! The accounts an org-wide offboarding covers: Organizations listings (ACTIVE
//! only, units recursively, every page), and the fan-out GetUsername's
//! function answers with, checked whole before any child starts.

mod common;

use aws_sdk_organizations::operation::list_accounts::ListAccountsOutput;
use aws_sdk_organizations::operation::list_accounts_for_parent::ListAccountsForParentOutput;
use aws_sdk_organizations::operation::list_organizational_units_for_parent::ListOrganizationalUnitsForParentOutput;
use aws_sdk_organizations::types::{Account, AccountState, AccountStatus, OrganizationalUnit};
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use iam_offboard_core::account_summary::AccountsSummaryRequest;
use iam_offboard_core::accounts::{accounts_in_scope, AccountScope, MAX_ACCOUNTS};
use iam_offboard_core::sessions::AccountSessions;
use iam_offboard_core::stages::{invoke, StageContext};
use iam_offboard_core::stages::{Entry, GetUsernameOrAccounts};
use iam_offboard_core::target::ProtectionPolicy;
use serde_json::json;
use std::sync::Arc;

fn account(id: &str, state: Option<AccountState>, status: Option<AccountStatus>) -> Account {
    let mut account = Account::builder().id(id);
    if let Some(state) = state {
        account = account.state(state);
    }
    if let Some(status) = status {
        account = account.status(status);
    }
    account.build()
}

/// One ListAccounts page of `count` ACTIVE accounts.
fn active_page(count: usize) -> ListAccountsOutput {
    (0..count)
        .fold(ListAccountsOutput::builder(), |page, i| {
            page.accounts(account(&format!("{i:012}"), Some(AccountState::Active), None))
        })
        .build()
}

fn no_retries(config: aws_sdk_organizations::config::Builder) -> aws_sdk_organizations::config::Builder {
    config.retry_config(aws_sdk_organizations::config::retry::RetryConfig::disabled())
}

#[tokio::test]
async fn the_organization_is_every_active_account_on_every_page_by_state_then_status() {
    let first = mock!(aws_sdk_organizations::Client::list_accounts)
        .match_requests(|request| request.next_token().is_none())
        .then_output(|| {
            ListAccountsOutput::builder()
                .accounts(account("111111111111", Some(AccountState::Active), Some(AccountStatus::Active)))
                // State wins over Status (Status is retired on 2026-09-09).
                .accounts(account("222222222222", Some(AccountState::Suspended), Some(AccountStatus::Active)))
                .accounts(account("333333333333", Some(AccountState::PendingClosure), None))
                .next_token("page-2")
                .build()
        });
    let second = mock!(aws_sdk_organizations::Client::list_accounts)
        .match_requests(|request| request.next_token() == Some("page-2"))
        .then_output(|| {
            ListAccountsOutput::builder()
                // An answer without State is read by Status.
                .accounts(account("444444444444", None, Some(AccountStatus::Active)))
                .accounts(account("555555555555", None, Some(AccountStatus::Suspended)))
                .accounts(account("666666666666", Some(AccountState::Closed), None))
                .build()
        });
    let organizations = mock_client!(aws_sdk_organizations, RuleMode::MatchAny, [&first, &second], no_retries);

    let accounts = accounts_in_scope(Some(&organizations), &AccountScope::Organization).await.unwrap();

    assert_eq!(accounts, ["111111111111", "444444444444"]);
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
}

#[tokio::test]
async fn units_cover_their_accounts_and_every_unit_below_them_once() {
    let accounts_in = mock!(aws_sdk_organizations::Client::list_accounts_for_parent)
        .then_output(|| ListAccountsForParentOutput::builder().build());
    let top = mock!(aws_sdk_organizations::Client::list_accounts_for_parent)
        .match_requests(|request| request.parent_id() == Some("ou-ab12-aaaaaaaa"))
        .then_output(|| {
            ListAccountsForParentOutput::builder()
                .accounts(account("111111111111", Some(AccountState::Active), None))
                .accounts(account("222222222222", Some(AccountState::Suspended), None))
                .build()
        });
    let nested = mock!(aws_sdk_organizations::Client::list_accounts_for_parent)
        .match_requests(|request| request.parent_id() == Some("ou-ab12-bbbbbbbb"))
        .then_output(|| {
            ListAccountsForParentOutput::builder()
                .accounts(account("333333333333", Some(AccountState::Active), None))
                .accounts(account("111111111111", Some(AccountState::Active), None))
                .build()
        });
    let children = mock!(aws_sdk_organizations::Client::list_organizational_units_for_parent)
        .match_requests(|request| request.parent_id() == Some("ou-ab12-aaaaaaaa"))
        .then_output(|| {
            ListOrganizationalUnitsForParentOutput::builder()
                .organizational_units(OrganizationalUnit::builder().id("ou-ab12-bbbbbbbb").build())
                .build()
        });
    let leaves = mock!(aws_sdk_organizations::Client::list_organizational_units_for_parent)
        .match_requests(|request| request.parent_id() == Some("ou-ab12-bbbbbbbb"))
        .then_output(|| ListOrganizationalUnitsForParentOutput::builder().build());
    let organizations = mock_client!(
        aws_sdk_organizations,
        RuleMode::MatchAny,
        [&top, &nested, &children, &leaves, &accounts_in],
        no_retries
    );

    let scope = AccountScope::OrganizationalUnits(vec!["ou-ab12-aaaaaaaa".into()]);
    let accounts = accounts_in_scope(Some(&organizations), &scope).await.unwrap();

    assert_eq!(accounts, ["111111111111", "333333333333"]);
    assert_eq!((top.num_calls(), nested.num_calls(), children.num_calls(), leaves.num_calls()), (1, 1, 1, 1));
    assert_eq!(accounts_in.num_calls(), 0);
}

#[tokio::test]
async fn a_denied_listing_is_access_denied_and_no_or_too_many_active_accounts_is_invalid_input() {
    let denied = mock!(aws_sdk_organizations::Client::list_accounts).then_http_response(|| {
        // Organizations' JSON protocol error (API reference, Common Errors: AccessDeniedException, 400).
        HttpResponse::new(
            StatusCode::try_from(400).unwrap(),
            SdkBody::from(
                r#"{"__type":"AccessDeniedException","Message":"You don't have permissions to access this resource."}"#,
            ),
        )
    });
    let organizations = mock_client!(aws_sdk_organizations, RuleMode::MatchAny, [&denied], no_retries);
    let error = accounts_in_scope(Some(&organizations), &AccountScope::Organization).await.unwrap_err();
    assert_eq!(error.name(), "AccessDenied");
    assert!(error.to_string().contains("organizations:ListAccounts"), "{error}");

    let none_active = mock!(aws_sdk_organizations::Client::list_accounts).then_output(|| {
        ListAccountsOutput::builder().accounts(account("111111111111", Some(AccountState::Suspended), None)).build()
    });
    let organizations = mock_client!(aws_sdk_organizations, RuleMode::MatchAny, [&none_active], no_retries);
    let error = accounts_in_scope(Some(&organizations), &AccountScope::Organization).await.unwrap_err();
    assert_eq!(error.name(), "InvalidInput");

    let too_many = mock!(aws_sdk_organizations::Client::list_accounts).then_output(|| active_page(MAX_ACCOUNTS + 1));
    let organizations = mock_client!(aws_sdk_organizations, RuleMode::MatchAny, [&too_many], no_retries);
    let error = accounts_in_scope(Some(&organizations), &AccountScope::Organization).await.unwrap_err();
    assert_eq!(error.name(), "InvalidInput");
    assert!(error.to_string().contains("OrganizationalUnits"), "{error}");

    let most = mock!(aws_sdk_organizations::Client::list_accounts).then_output(|| active_page(MAX_ACCOUNTS));
    let organizations = mock_client!(aws_sdk_organizations, RuleMode::MatchAny, [&most], no_retries);
    let accounts = accounts_in_scope(Some(&organizations), &AccountScope::Organization).await.unwrap();
    assert_eq!(accounts.len(), MAX_ACCOUNTS, "the limit itself is accepted");

    let listed = AccountScope::Listed(vec!["111111111111".into()]);
    assert_eq!(accounts_in_scope(None, &listed).await.unwrap(), ["111111111111"], "a list needs no Organizations call");
}

fn hub(with_target_roles: bool) -> StageContext {
    let (sts, _) = sts_as_role!();
    let mut ctx = StageContext::from_clients(iam_client!(), sts, ProtectionPolicy::default());
    ctx.account_concurrency = 7;
    if with_target_roles {
        let config = aws_config::SdkConfig::builder().behavior_version(aws_config::BehaviorVersion::latest()).build();
        ctx.sessions = Some(Arc::new(AccountSessions::new(config, "iam-offboard-target-GetUsername".into(), None)));
    }
    ctx
}

fn fan_out(input: serde_json::Value) -> serde_json::Value {
    json!({"ResolveAccounts": {"Input": input, "ExecutionName": "alice-1a2b3c4d", "ExecutionId": "arn:aws:states:us-east-1:123456789012:execution:offboard:alice-1a2b3c4d"}})
}

#[tokio::test]
async fn the_fan_out_names_a_child_per_account_and_gives_each_the_input_without_its_scope() {
    let input = json!({"UserName": "alice", "Accounts": ["111111111111", "123456789012"], "DryRun": true});

    let Entry::Accounts(fan_out) = invoke::<GetUsernameOrAccounts>(&hub(true), fan_out(input)).await.unwrap() else {
        panic!("an org-wide input is answered with its accounts");
    };

    assert_eq!(fan_out.accounts, ["111111111111", "123456789012"], "just the ids");
    assert_eq!(fan_out.child_name_suffix, "alice-1a2b3c4d", "the Map names each child <account>-<suffix>");
    assert_eq!(
        fan_out.child_input,
        json!({"UserName": "alice", "DryRun": true, "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID": "arn:aws:states:us-east-1:123456789012:execution:offboard:alice-1a2b3c4d"})
    );
    assert_eq!((fan_out.max_concurrency, fan_out.dry_run, fan_out.delete_after.as_deref()), (7, true, None));
    assert!(fan_out.duration_ms.is_some(), "the fan-out is timed as every stage is");
}

#[tokio::test]
async fn a_grace_period_runs_every_account_at_once_with_one_delete_after() {
    let accounts: Vec<String> = (0..25).map(|i| format!("{:012}", 111_111_111_111u64 + i)).collect();
    let input = json!({"UserName": "alice", "Accounts": accounts, "GraceDays": 7});

    let Entry::Accounts(fan_out) = invoke::<GetUsernameOrAccounts>(&hub(true), fan_out(input)).await.unwrap() else {
        panic!("an org-wide input is answered with its accounts");
    };

    assert_eq!(fan_out.max_concurrency, 25, "every account at once, not AccountConcurrency (7)");
    let delete_after = fan_out.delete_after.clone().expect("GraceDays counted once");
    assert_eq!(fan_out.child_input["DeleteAfter"], delete_after.as_str());
    assert!(fan_out.child_input.get("GraceDays").is_none());
    assert!(!fan_out.dry_run);
}

/// Step Functions' quota on a state's input or output: 256 KiB ("Step
/// Functions service quotas": maximum input or output size for a task,
/// state, or execution, 262,144 bytes of data as a UTF-8 encoded string).
const STATE_QUOTA: usize = 256 * 1024;

#[tokio::test]
async fn five_thousand_accounts_keep_every_state_far_below_the_256_kib_quota() {
    // The largest org-wide execution: 5,000 listed accounts, the longest
    // user name, a child input at the input parser's 16 KiB limit, the
    // longest execution name and ARN. Each state the parent passes through
    // (statemachine/src/offboard.asl.yaml) is built as the state machine
    // builds it and measured.
    let accounts: Vec<String> = (0..MAX_ACCOUNTS).map(|i| format!("{:012}", 100_000_000_000u64 + i as u64)).collect();
    let name = "n".repeat(80);
    let execution_id = format!("arn:aws-us-gov:states:us-gov-west-1:123456789012:execution:{}:{name}", "m".repeat(80));
    let user = "u".repeat(64);
    let mut context = String::new();
    let mut largest = None;
    for step in [4096, 256, 16, 1] {
        loop {
            let blob = format!("{context}{}", "x".repeat(step));
            let input = json!({"UserName": user, "Accounts": accounts, "GraceDays": 364, "Context": {"Blob": blob}});
            let request =
                json!({"ResolveAccounts": {"Input": input, "ExecutionName": name, "ExecutionId": execution_id}});
            match invoke::<GetUsernameOrAccounts>(&hub(true), request).await {
                Ok(Entry::Accounts(fan_out)) => {
                    context = blob;
                    largest = Some((input, fan_out));
                }
                _ => break,
            }
        }
    }
    let (input, fan_out) = largest.expect("a valid input");
    assert_eq!(fan_out.accounts.len(), MAX_ACCOUNTS);
    assert!(
        serde_json::to_vec(&fan_out.child_input).unwrap().len() > 16 * 1024 - 64,
        "the child input is at its limit"
    );
    let report = json!({"MapRunArn": format!("arn:aws-us-gov:states:us-gov-west-1:123456789012:mapRun:{}/OffboardEachAccount:{}", "m".repeat(80), "0".repeat(36)),
                        "ResultWriterDetails": {"Bucket": "b".repeat(63), "Key": format!("org-runs/{name}/{}/manifest.json", "0".repeat(36))}});
    let summarize = json!({"SummarizeAccounts": {"ResultWriterDetails": report["ResultWriterDetails"], "MapRunArn": report["MapRunArn"],
                                                 "ReportBucket": "b".repeat(63), "ExecutionId": execution_id,
                                                 "Accounts": fan_out.accounts, "DryRun": fan_out.dry_run,
                                                 "DeleteAfter": fan_out.delete_after},
                           "ExecutionId": execution_id});
    // The payload is the function's request.
    let parsed: AccountsSummaryRequest = serde_json::from_value(summarize["SummarizeAccounts"].clone()).unwrap();
    assert_eq!(parsed.accounts.len(), MAX_ACCOUNTS);
    let states = [
        ("the execution's input", input.clone()),
        (
            "ResolveAccounts' payload",
            json!({"ResolveAccounts": {"Input": input, "ExecutionName": name, "ExecutionId": execution_id}, "ExecutionId": execution_id}),
        ),
        ("after ResolveAccounts: the Map's input", json!({"FanOut": fan_out})),
        ("after the Map", json!({"FanOut": fan_out, "Report": report})),
        ("SummarizeAccounts' payload", summarize),
    ];
    let sizes: Vec<(&str, usize)> =
        states.iter().map(|(what, state)| (*what, serde_json::to_vec(state).unwrap().len())).collect();
    let peak = sizes.iter().map(|(_, size)| *size).max().unwrap();
    assert!(peak < STATE_QUOTA / 2, "{sizes:?}");
    // Each Map item (a child workflow's input) holds one account's placement and the child input.
    let item = json!({"Placement": {"Account": fan_out.accounts[0], "ExecutionName": format!("{}-{}", fan_out.accounts[0], fan_out.child_name_suffix)},
                      "ChildInput": fan_out.child_input});
    assert!(serde_json::to_vec(&item).unwrap().len() < 20 * 1024);
    assert!(format!("{}-{}", fan_out.accounts[0], fan_out.child_name_suffix).len() <= 80);
}

#[tokio::test]
async fn without_target_roles_only_the_own_account_is_accepted_and_a_bad_input_is_refused_whole() {
    let own = json!({"UserName": "alice", "Accounts": ["123456789012"]});
    assert!(matches!(invoke::<GetUsernameOrAccounts>(&hub(false), fan_out(own)).await, Ok(Entry::Accounts(_))));

    let other = json!({"UserName": "alice", "Accounts": ["123456789012", "111111111111"]});
    let error = invoke::<GetUsernameOrAccounts>(&hub(false), fan_out(other)).await.unwrap_err();
    assert_eq!(error.name(), "InvalidInput");
    assert!(error.to_string().contains("111111111111") && error.to_string().contains("TargetRoleName"), "{error}");

    for bad in [
        json!({"UserName": "al ice", "Accounts": ["111111111111"]}),
        json!({"UserName": "alice", "Accounts": ["111111111111"], "GraceDays": 0}),
        json!({"UserName": "alice"}),
        json!(["111111111111"]),
    ] {
        let error = invoke::<GetUsernameOrAccounts>(&hub(true), fan_out(bad.clone())).await.unwrap_err();
        assert_eq!(error.name(), "InvalidInput", "{bad}");
    }
    let extra = json!({"ResolveAccounts": {"Input": {"UserName": "alice", "Accounts": ["111111111111"]}, "ExecutionName": "x", "ExecutionId": "arn:aws:states:us-east-1:123456789012:execution:offboard:x"}, "UserName": "bob"});
    assert_eq!(invoke::<GetUsernameOrAccounts>(&hub(true), extra).await.unwrap_err().name(), "InvalidInput");
}

#[tokio::test]
async fn any_other_payload_is_a_single_accounts_user_resolved_where_the_function_runs() {
    let (sts, _) = sts_as_role!();
    let get_user = alice_exists!();
    let ctx = StageContext::from_clients(iam_client!(&get_user), sts, ProtectionPolicy::default());

    let Entry::User(resolution) = invoke::<GetUsernameOrAccounts>(&ctx, json!({"UserName": "alice"})).await.unwrap()
    else {
        panic!("a plain input resolves the user");
    };

    assert_eq!((resolution.user.user_name.as_str(), resolution.account.as_str()), ("alice", "123456789012"));
    assert_eq!(get_user.num_calls(), 1);
}
