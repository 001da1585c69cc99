//! The deployment's IAM budget against a mocked `aws_sdk_dynamodb::Client`:
//! the configuration, the shared schedule (GCRA on one item) and the
//! connector that makes every IAM attempt take a slot first.

mod common;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client as DynamoDb;
use aws_smithy_mocks::{create_mock_http_client, mock, mock_client, RuleMode};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use iam_offboard_core::budget::{
    budgeted_http_client, take_slots, unix_micros, BudgetConfig, IamBudget, ENV_CALLS_PER_SECOND, ENV_TABLE,
    KEY_ATTRIBUTE, KEY_VALUE, NEXT_CALL_ATTRIBUTE,
};
use iam_offboard_core::clients::with_budget;

/// One slot of the shared schedule: when the call may go.
async fn take_slot(dynamodb: &DynamoDb, budget: &BudgetConfig) -> Result<SystemTime, String> {
    Ok(take_slots(dynamodb, budget, 1).await?[0])
}

fn budget(calls_per_second: f64) -> BudgetConfig {
    BudgetConfig { table: "offboard-iam-budget".into(), calls_per_second, schedule: KEY_VALUE.into() }
}

fn next_call_at(micros: u64) -> UpdateItemOutput {
    let attributes = HashMap::from([(NEXT_CALL_ATTRIBUTE.to_string(), AttributeValue::N(micros.to_string()))]);
    UpdateItemOutput::builder().set_attributes(Some(attributes)).build()
}

fn dynamodb_error(code: &str) -> HttpResponse {
    let body = format!(r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"{code}"}}"#);
    HttpResponse::new(StatusCode::try_from(400).unwrap(), SdkBody::from(body))
}

fn now_micros() -> u64 {
    unix_micros(SystemTime::now())
}

fn is_add(request: &aws_sdk_dynamodb::operation::update_item::UpdateItemInput, interval: &str) -> bool {
    is_add_on(request, interval, KEY_VALUE)
}

fn is_add_on(request: &aws_sdk_dynamodb::operation::update_item::UpdateItemInput, interval: &str, item: &str) -> bool {
    request.table_name() == Some("offboard-iam-budget")
        && request.update_expression() == Some("ADD #next :interval")
        && request.condition_expression().is_none()
        && request.expression_attribute_values().and_then(|v| v.get(":interval"))
            == Some(&AttributeValue::N(interval.into()))
        && request.key().and_then(|k| k.get(KEY_ATTRIBUTE)) == Some(&AttributeValue::S(item.into()))
}

#[test]
fn the_budget_is_off_unless_a_rate_is_set_and_a_bad_one_is_refused_at_init() {
    let vars = |rate: Option<&str>, table: Option<&str>| {
        let (rate, table) = (rate.map(String::from), table.map(String::from));
        BudgetConfig::from_vars(move |name| match name {
            ENV_CALLS_PER_SECOND => rate.clone(),
            ENV_TABLE => table.clone(),
            _ => None,
        })
    };
    for off in [None, Some(""), Some(" "), Some("0")] {
        assert_eq!(vars(off, Some("t")), Ok(None), "{off:?} turns the budget off");
    }
    assert_eq!(
        vars(Some(" 10 "), Some(" t ")),
        Ok(Some(BudgetConfig { table: "t".into(), calls_per_second: 10.0, schedule: KEY_VALUE.into() }))
    );
    assert_eq!(vars(Some("2.5"), Some("t")).unwrap().unwrap().interval_micros(), 400_000);
    assert_eq!(vars(Some("1000"), Some("t")).unwrap().unwrap().interval_micros(), 1_000);
    for bad in ["-1", "abc", "inf", "NaN", "1000.5", "1e9", "0.0"] {
        let error = vars(Some(bad), Some("t")).expect_err(bad);
        assert_eq!(error.name(), "InvalidInput", "{bad}");
        assert!(error.to_string().contains(ENV_CALLS_PER_SECOND), "{error}");
    }
    for missing in [None, Some(""), Some("  ")] {
        let error = vars(Some("10"), missing).expect_err("a budget needs its table");
        assert_eq!(error.name(), "InvalidInput");
        assert!(error.to_string().contains(ENV_TABLE), "{error}");
    }
}

#[tokio::test]
async fn a_busy_schedule_gives_the_next_slot_with_one_atomic_add() {
    let ahead = now_micros() + 5_000_000;
    let add = mock!(DynamoDb::update_item)
        .match_requests(|r| is_add(r, "100000"))
        .then_output(move || next_call_at(ahead + 100_000));
    let dynamodb = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&add]);
    let slot = take_slot(&dynamodb, &budget(10.0)).await.unwrap();
    assert_eq!(unix_micros(slot), ahead, "the slot is the schedule's time before this call's interval was added");
    assert_eq!(add.num_calls(), 1);
}

#[tokio::test]
async fn each_target_account_has_its_own_schedule_in_the_same_table() {
    let ahead = now_micros() + 2_000_000;
    let home = mock!(DynamoDb::update_item)
        .match_requests(|r| is_add_on(r, "100000", "iam-calls"))
        .then_output(move || next_call_at(ahead + 100_000));
    let target = mock!(DynamoDb::update_item)
        .match_requests(|r| is_add_on(r, "100000", "iam-calls#444455556666"))
        .then_output(move || next_call_at(ahead + 1_100_000));
    let dynamodb = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&home, &target]);
    let home_slot = take_slot(&dynamodb, &budget(10.0)).await.unwrap();
    let target_slot = take_slot(&dynamodb, &budget(10.0).for_account("444455556666")).await.unwrap();
    assert_eq!((unix_micros(home_slot), unix_micros(target_slot)), (ahead, ahead + 1_000_000));
    assert_eq!((home.num_calls(), target.num_calls()), (1, 1));
}

#[tokio::test]
async fn an_idle_schedule_is_moved_to_now_once_so_idle_time_is_no_burst() {
    let add =
        mock!(DynamoDb::update_item).match_requests(|r| is_add(r, "50000")).then_output(|| next_call_at(1_050_000));
    let catch_up = mock!(DynamoDb::update_item)
        .match_requests(|r| {
            let values = r.expression_attribute_values().unwrap();
            let caught_up: u64 = values[":caught_up"].as_n().unwrap().parse().unwrap();
            let stale_below: u64 = values[":stale_below"].as_n().unwrap().parse().unwrap();
            r.update_expression() == Some("SET #next = :caught_up")
                && r.condition_expression() == Some("#next < :stale_below AND #next >= :seen")
                && values[":seen"] == AttributeValue::N("1050000".into())
                && caught_up.abs_diff(now_micros() + 50_000) < 60_000_000
                // now + one interval, against (asked - tolerance): apart by both
                // and by the time the answer took (here well under a second).
                && (50_000 + 100_000..1_150_000).contains(&(caught_up - stale_below))
        })
        .then_output(|| UpdateItemOutput::builder().build());
    let dynamodb = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&add, &catch_up]);
    let before = SystemTime::now();
    let slot = take_slot(&dynamodb, &budget(20.0)).await.unwrap();
    assert!(slot >= before && slot <= SystemTime::now(), "a caught-up schedule lets the call go now");
    assert_eq!((add.num_calls(), catch_up.num_calls()), (1, 1));
}

#[tokio::test]
async fn a_caller_that_loses_the_catch_up_takes_a_slot_of_the_schedule_the_winner_set() {
    let ahead = now_micros() + 3_000_000;
    let stale =
        mock!(DynamoDb::update_item).match_requests(|r| is_add(r, "100000")).then_output(|| next_call_at(100_000));
    let lost = mock!(DynamoDb::update_item)
        .match_requests(|r| r.condition_expression().is_some())
        .then_http_response(|| dynamodb_error("ConditionalCheckFailedException"));
    let fresh = mock!(DynamoDb::update_item)
        .match_requests(|r| is_add(r, "100000"))
        .then_output(move || next_call_at(ahead + 100_000));
    let dynamodb = mock_client!(
        aws_sdk_dynamodb,
        RuleMode::Sequential,
        [&stale, &lost, &fresh],
        |c: aws_sdk_dynamodb::config::Builder| c.retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
    );
    let slot = take_slot(&dynamodb, &budget(10.0)).await.unwrap();
    assert_eq!(unix_micros(slot), ahead);
    assert_eq!((stale.num_calls(), lost.num_calls(), fresh.num_calls()), (1, 1, 1));
}

#[tokio::test]
async fn an_unreachable_schedule_is_an_error_naming_the_table() {
    let denied = mock!(DynamoDb::update_item).then_http_response(|| dynamodb_error("AccessDeniedException"));
    let dynamodb =
        mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&denied], |c: aws_sdk_dynamodb::config::Builder| c
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled()));
    let error = take_slot(&dynamodb, &budget(10.0)).await.unwrap_err();
    assert!(error.contains("offboard-iam-budget") && error.contains("AccessDenied"), "{error}");
}

/// Every attempt IAM receives, a retry of a throttled call included, took a
/// slot first; and a budget that cannot be reached never fails the call.
#[tokio::test]
async fn every_iam_attempt_takes_a_slot_and_an_unreachable_budget_never_fails_a_call() {
    let get_user = mock!(aws_sdk_iam::Client::get_user)
        .sequence()
        .http_response(|| common::error_xml(400, "Throttling", "Rate exceeded"))
        .http_response(|| common::get_user_xml("alice", common::ALICE_ID, "/", None))
        .build();
    let slots = mock!(DynamoDb::update_item)
        .match_requests(|r| is_add(r, "100000"))
        .then_compute_output(|_| next_call_at(now_micros() + 100_000));
    let dynamodb = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&slots]);
    let iam_budget = IamBudget::new(dynamodb, budget(10.0));
    let iam = mock_client!(aws_sdk_iam, RuleMode::Sequential, [&get_user], |c: aws_sdk_iam::config::Builder| c
        .http_client(budgeted_http_client(create_mock_http_client(), iam_budget.clone()))
        .retry_config(
            aws_sdk_iam::config::retry::RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(1))
        ));
    let user = iam.get_user().user_name("alice").send().await.unwrap();
    assert_eq!(user.user.unwrap().user_name, "alice");
    assert_eq!((get_user.num_calls(), slots.num_calls()), (2, 2), "one slot per attempt");

    let denied = mock!(DynamoDb::update_item).then_http_response(|| dynamodb_error("ResourceNotFoundException"));
    let dynamodb =
        mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&denied], |c: aws_sdk_dynamodb::config::Builder| c
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled()));
    let unreachable = IamBudget::new(dynamodb, budget(10.0));
    let get_user = mock!(aws_sdk_iam::Client::get_user)
        .then_http_response(|| common::get_user_xml("alice", common::ALICE_ID, "/", None));
    let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&get_user], |c: aws_sdk_iam::config::Builder| c
        .http_client(budgeted_http_client(create_mock_http_client(), unreachable.clone())));
    assert!(iam.get_user().user_name("alice").send().await.is_ok());
    assert_eq!((get_user.num_calls(), denied.num_calls()), (1, 1));
}

/// A call whose slot lies further ahead than the SDK's upload stall grace
/// period still goes: the wait is the budget's, not a stalled upload.
#[tokio::test]
async fn a_call_waiting_for_a_distant_slot_is_not_cut_off_as_a_stalled_upload() {
    use aws_sdk_iam::config::StalledStreamProtectionConfig;
    let get_user = mock!(aws_sdk_iam::Client::get_user)
        .then_http_response(|| common::get_user_xml("alice", common::ALICE_ID, "/", None));
    let wait = Duration::from_millis(2500);
    let slots = mock!(DynamoDb::update_item)
        .match_requests(|r| is_add(r, "100000"))
        .then_compute_output(move |_| next_call_at(now_micros() + wait.as_micros() as u64 + 100_000));
    let dynamodb = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&slots]);
    let iam_budget = IamBudget::new(dynamodb, budget(10.0));
    // A grace period shorter than the wait, as the default 5 s is shorter
    // than a slot behind a queue of 50 callers at 10 calls/s.
    let strict = StalledStreamProtectionConfig::enabled().grace_period(Duration::from_secs(1)).build();
    let iam =
        mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&get_user], |c: aws_sdk_iam::config::Builder| with_budget(
            c.stalled_stream_protection(strict.clone())
                .sleep_impl(aws_smithy_async::rt::sleep::TokioSleep::new())
                .time_source(aws_smithy_async::time::SystemTimeSource::new()),
            create_mock_http_client(),
            iam_budget.clone()
        ));
    let started = std::time::Instant::now();
    let user = iam.get_user().user_name("alice").send().await.unwrap();
    assert_eq!(user.user.unwrap().user_name, "alice");
    assert!(started.elapsed() >= wait, "the call waited for its slot");
    assert_eq!((get_user.num_calls(), slots.num_calls()), (1, 1));
}

/// Calls started together (a stage's concurrent listings) take their
/// consecutive slots with one UpdateItem, and each still waits for its own.
#[tokio::test]
async fn calls_waiting_together_take_their_slots_in_one_update() {
    let get_user = mock!(aws_sdk_iam::Client::get_user)
        .then_http_response(|| common::get_user_xml("alice", common::ALICE_ID, "/", None));
    let four_slots = mock!(DynamoDb::update_item)
        .match_requests(|r| is_add(r, "400000"))
        .then_compute_output(|_| next_call_at(now_micros() + 400_000));
    let dynamodb = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&four_slots]);
    let iam_budget = IamBudget::new(dynamodb, budget(10.0));
    let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&get_user], |c: aws_sdk_iam::config::Builder| c
        .http_client(budgeted_http_client(create_mock_http_client(), iam_budget.clone())));
    let started = std::time::Instant::now();
    let call = || iam.get_user().user_name("alice").send();
    let (a, b, c, d) = tokio::join!(call(), call(), call(), call());
    assert!(a.is_ok() && b.is_ok() && c.is_ok() && d.is_ok());
    assert_eq!(
        (get_user.num_calls(), four_slots.num_calls()),
        (4, 1),
        "one UpdateItem of four intervals for four calls"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the last call waited for the fourth slot, 0.3 s after the first"
    );
}

/// A slot that was current when the caller asked for it is used even when the
/// answer comes late (a busy host, DynamoDB latency): one UpdateItem, no
/// catch-up write, where reading the clock after the answer took it for an
/// idle schedule and gave the slot up.
#[tokio::test]
async fn a_slot_answered_slowly_is_used_not_mistaken_for_an_idle_schedule() {
    let slow = mock!(DynamoDb::update_item).match_requests(|r| is_add(r, "100000")).then_compute_output(|_| {
        let next = now_micros() + 100_000;
        std::thread::sleep(Duration::from_millis(400));
        next_call_at(next)
    });
    let dynamodb = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&slow]);
    let slot = take_slot(&dynamodb, &budget(10.0)).await.unwrap();
    assert_eq!(slow.num_calls(), 1, "no second UpdateItem");
    assert!(slot <= SystemTime::now(), "the late slot goes now");
}

/// The catch-up write failing for another reason than a lost race is the
/// budget's error, not a reason to take slots again.
#[tokio::test]
async fn a_catch_up_write_that_fails_otherwise_is_an_error() {
    let stale =
        mock!(DynamoDb::update_item).match_requests(|r| is_add(r, "100000")).then_output(|| next_call_at(100_000));
    let denied = mock!(DynamoDb::update_item)
        .match_requests(|r| r.condition_expression().is_some())
        .then_http_response(|| dynamodb_error("AccessDeniedException"));
    let dynamodb = mock_client!(
        aws_sdk_dynamodb,
        RuleMode::Sequential,
        [&stale, &denied],
        |c: aws_sdk_dynamodb::config::Builder| c.retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
    );
    let error = take_slot(&dynamodb, &budget(10.0)).await.unwrap_err();
    assert!(error.contains("AccessDenied"), "{error}");
    assert_eq!((stale.num_calls(), denied.num_calls()), (1, 1));
}

#[tokio::test]
async fn a_schedule_set_far_into_the_future_stalls_no_one_and_is_moved_back_to_now() {
    // Someone (or a clock far off) left the schedule a year ahead.
    let a_year_ahead = now_micros() + 365 * 86_400 * 1_000_000;
    let add = mock!(DynamoDb::update_item)
        .match_requests(|r| is_add(r, "100000"))
        .then_output(move || next_call_at(a_year_ahead + 100_000));
    let reset = mock!(DynamoDb::update_item)
        .match_requests(|r| {
            let values = r.expression_attribute_values().unwrap();
            let reset: u64 = values[":reset"].as_n().unwrap().parse().unwrap();
            let too_far: u64 = values[":too_far"].as_n().unwrap().parse().unwrap();
            r.update_expression() == Some("SET #next = :reset")
                && r.condition_expression() == Some("#next > :too_far")
                && reset.abs_diff(now_micros() + 100_000) < 60_000_000
                && too_far.abs_diff(now_micros() + 900_000_000) < 60_000_000
        })
        .then_output(|| UpdateItemOutput::builder().build());
    let dynamodb = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&add, &reset]);
    let before = SystemTime::now();
    let slot = take_slot(&dynamodb, &budget(10.0)).await.unwrap();
    assert!(slot >= before && slot <= SystemTime::now() + Duration::from_secs(1), "the call goes now: {slot:?}");
    assert_eq!((add.num_calls(), reset.num_calls()), (1, 1));
}

#[tokio::test]
async fn a_slot_within_the_longest_function_timeout_is_waited_for() {
    let ten_minutes_ahead = now_micros() + 600 * 1_000_000;
    let add = mock!(DynamoDb::update_item)
        .match_requests(|r| is_add(r, "100000"))
        .then_output(move || next_call_at(ten_minutes_ahead + 100_000));
    let dynamodb = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&add]);
    let slot = take_slot(&dynamodb, &budget(10.0)).await.unwrap();
    assert_eq!(unix_micros(slot), ten_minutes_ahead);
}

#[tokio::test(start_paused = true)]
async fn a_target_accounts_budget_keeps_the_deployments_client_and_its_own_schedule() {
    let ahead = now_micros() + 2_000_000;
    let target = mock!(DynamoDb::update_item)
        .match_requests(|r| is_add_on(r, "100000", "iam-calls#444455556666"))
        .then_output(move || next_call_at(ahead + 100_000));
    let dynamodb = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&target]);
    let home = IamBudget::new(dynamodb, budget(10.0));
    let elsewhere = home.for_account("444455556666");
    assert_eq!(elsewhere.config.schedule, "iam-calls#444455556666");
    assert_eq!(home.config.schedule, KEY_VALUE, "the deployment's own schedule is unchanged");
    elsewhere.wait_for_slot().await;
    assert_eq!(target.num_calls(), 1, "the target account's slot came from the deployment's table client");
}
