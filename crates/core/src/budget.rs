//! The deployment's IAM call budget. IAM throttles per account, and every
//! execution, every function instance and every other IAM automation in the
//! account share that one rate. When the deployer sets a budget, every
//! attempt of every IAM call a function makes (retries too: IAM counts them)
//! first takes the next slot of one schedule shared by the whole deployment,
//! so the deployment never asks IAM for more than the budget's calls per
//! second, whatever the number of executions at once; calls wait their turn
//! instead of being throttled, and no stage is cut short and redone.
//!
//! The schedule is the generic cell rate algorithm (GCRA) on one DynamoDB
//! item: `NextCallAtMicros` is when the next call may go (µs since the
//! epoch). Taking a slot is one atomic `ADD` of the interval between calls;
//! the caller goes at the time it was given. Calls of one process waiting at
//! the same moment (a stage's concurrent listings or removals) take their
//! consecutive slots with one `ADD` of that many intervals. When the schedule has fallen
//! behind the clock (the budget was idle), one conditional write moves it to
//! now, so idle time is not saved up into a burst. That write is conditioned
//! on the schedule still being behind, not on it being unchanged: when many
//! callers find it idle at once (executions starting together), the first
//! write wins and the others' next `ADD` lands on the moved schedule, where
//! conditioning on "unchanged" let every `ADD` of the herd void the others'
//! writes until callers ran out of attempts and went unpaced.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_smithy_runtime_api::client::http::{
    http_client_fn, HttpClient, HttpConnector, HttpConnectorFuture, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;

use crate::errors::OffboardError;

/// The budget in IAM calls per second for the whole deployment; unset, empty
/// or `0` turns the budget off.
pub const ENV_CALLS_PER_SECOND: &str = "OFFBOARD_IAM_CALLS_PER_SECOND";
/// The DynamoDB table (partition key `Budget`, a string) holding the schedule.
pub const ENV_TABLE: &str = "OFFBOARD_IAM_BUDGET_TABLE";

pub const KEY_ATTRIBUTE: &str = "Budget";
pub const KEY_VALUE: &str = "iam-calls";
pub const NEXT_CALL_ATTRIBUTE: &str = "NextCallAtMicros";

/// IAM's whole account rate is far below this; a larger value is a typo.
pub const MAX_CALLS_PER_SECOND: f64 = 1000.0;

/// A slot this far in the past still counts as now (the latency between
/// taking a slot and using it); further behind, the schedule is moved to now.
pub const LATE_SLOT_TOLERANCE: Duration = Duration::from_millis(100);

/// No call waits longer than this for its slot: Lambda's longest function
/// timeout (900 s, "Lambda quotas"), which no caller can outwait. A slot
/// further ahead means a broken schedule (an item written far into the
/// future, a clock far off) that would otherwise stall every offboarding of
/// the deployment: the schedule is moved back to now, logged, and the call
/// goes.
pub const MAX_SLOT_WAIT: Duration = Duration::from_secs(900);

/// How often a slot is taken again when the catch-up write keeps losing to
/// other callers; after that the call goes without waiting.
const MAX_TAKE_ATTEMPTS: usize = 5;

#[derive(Debug, Clone, PartialEq)]
pub struct BudgetConfig {
    pub table: String,
    pub calls_per_second: f64,
    /// The schedule's item (`Budget` key): [`KEY_VALUE`] for the account the
    /// deployment runs in, one per target account (see [`Self::for_account`]).
    pub schedule: String,
}

impl BudgetConfig {
    pub fn from_env() -> Result<Option<Self>, OffboardError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// The budget from a variable lookup; `None` when it is off. A value
    /// that is not a positive number, or a budget without its table, is
    /// refused here, at init: a deployment that believes it is capped must
    /// not run uncapped.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, OffboardError> {
        let rate = var(ENV_CALLS_PER_SECOND).map(|value| value.trim().to_string()).unwrap_or_default();
        if rate.is_empty() || rate == "0" {
            return Ok(None);
        }
        let calls_per_second = rate
            .parse::<f64>()
            .ok()
            .filter(|rate| rate.is_finite() && *rate > 0.0 && *rate <= MAX_CALLS_PER_SECOND)
            .ok_or_else(|| {
                OffboardError::InvalidInput(format!(
                    "{ENV_CALLS_PER_SECOND} holds {rate:?}: the IAM budget must be a number of calls per second above 0 and at most {MAX_CALLS_PER_SECOND}, or 0 for no budget. Fix the configuration; nothing is offboarded until then."
                ))
            })?;
        let table = var(ENV_TABLE).map(|table| table.trim().to_string()).filter(|table| !table.is_empty()).ok_or_else(|| {
            OffboardError::InvalidInput(format!(
                "{ENV_CALLS_PER_SECOND} sets an IAM budget of {calls_per_second} calls/s but {ENV_TABLE} names no table to share it in. Fix the configuration; nothing is offboarded until then."
            ))
        })?;
        Ok(Some(Self { table, calls_per_second, schedule: KEY_VALUE.into() }))
    }

    /// The same budget for calls into another account: IAM throttles each
    /// account on its own, so each gets its own schedule in the same table.
    pub fn for_account(self, account: &str) -> Self {
        Self { schedule: format!("{KEY_VALUE}#{account}"), ..self }
    }

    /// The time between two calls, in µs (at least 1).
    pub fn interval_micros(&self) -> u64 {
        ((1_000_000.0 / self.calls_per_second).round() as u64).max(1)
    }
}

pub fn unix_micros(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).unwrap_or_default().as_micros() as u64
}

/// Takes the next `count` consecutive slots (at least one) of the shared
/// schedule in one UpdateItem, and returns when each may be used, earliest
/// first. Errors are DynamoDB's, as text.
pub async fn take_slots(
    dynamodb: &aws_sdk_dynamodb::Client,
    budget: &BudgetConfig,
    count: usize,
) -> Result<Vec<SystemTime>, String> {
    let count = count.max(1) as u64;
    let interval = budget.interval_micros();
    let span = interval * count;
    let failed = |error: aws_sdk_dynamodb::error::SdkError<_, _>| {
        format!("UpdateItem on {}: {}", budget.table, aws_sdk_dynamodb::error::DisplayErrorContext(&error))
    };
    let slots_from = |first: u64, now: u64| -> Vec<SystemTime> {
        (0..count).map(|k| UNIX_EPOCH + Duration::from_micros((first + k * interval).max(now))).collect()
    };
    for _ in 0..MAX_TAKE_ATTEMPTS {
        // A slot is stale only if it was already past when this caller asked
        // for it (the schedule sat idle). Read after the answer instead, a slow
        // answer (a busy host, DynamoDB latency) made fresh slots look stale:
        // at 1,000 offboardings at once callers gave up five slots each and
        // went unpaced, and the schedule ran minutes ahead of calls nobody made.
        let asked = unix_micros(SystemTime::now());
        let taken = dynamodb
            .update_item()
            .table_name(&budget.table)
            .key(KEY_ATTRIBUTE, AttributeValue::S(budget.schedule.clone()))
            .update_expression("ADD #next :interval")
            .expression_attribute_names("#next", NEXT_CALL_ATTRIBUTE)
            .expression_attribute_values(":interval", AttributeValue::N(span.to_string()))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(failed)?;
        let next = taken
            .attributes()
            .and_then(|attributes| attributes.get(NEXT_CALL_ATTRIBUTE))
            .and_then(|value| value.as_n().ok())
            .and_then(|value| value.parse::<u64>().ok())
            .ok_or_else(|| format!("UpdateItem on {} returned no number {NEXT_CALL_ATTRIBUTE}", budget.table))?;
        let first = next.saturating_sub(span);
        let now = unix_micros(SystemTime::now());
        let stale_below = asked.saturating_sub(LATE_SLOT_TOLERANCE.as_micros() as u64);
        let too_far = now + MAX_SLOT_WAIT.as_micros() as u64;
        if first > too_far {
            let reset = dynamodb
                .update_item()
                .table_name(&budget.table)
                .key(KEY_ATTRIBUTE, AttributeValue::S(budget.schedule.clone()))
                .update_expression("SET #next = :reset")
                .condition_expression("#next > :too_far")
                .expression_attribute_names("#next", NEXT_CALL_ATTRIBUTE)
                .expression_attribute_values(":reset", AttributeValue::N((now + span).to_string()))
                .expression_attribute_values(":too_far", AttributeValue::N(too_far.to_string()))
                .send()
                .await;
            match reset {
                Ok(_) => {
                    tracing::error!(schedule = %budget.schedule, slot_in_secs = (first - now) / 1_000_000,
                        "IAM budget schedule was further ahead than any call can wait; moved back to now");
                    return Ok(slots_from(now, now));
                }
                // Another caller moved it back first: take slots of it.
                Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                    continue
                }
                Err(error) => return Err(failed(error)),
            }
        }
        if first >= stale_below {
            return Ok(slots_from(first, now));
        }
        // `:seen` (this caller's stale slots, which it gives up) always passes
        // `>=`, the schedule only moving forward; it makes each request name
        // the slots it abandons, so the schedule can be audited from requests.
        let caught_up = dynamodb
            .update_item()
            .table_name(&budget.table)
            .key(KEY_ATTRIBUTE, AttributeValue::S(budget.schedule.clone()))
            .update_expression("SET #next = :caught_up")
            .condition_expression("#next < :stale_below AND #next >= :seen")
            .expression_attribute_names("#next", NEXT_CALL_ATTRIBUTE)
            .expression_attribute_values(":caught_up", AttributeValue::N((now + span).to_string()))
            .expression_attribute_values(":stale_below", AttributeValue::N(stale_below.to_string()))
            .expression_attribute_values(":seen", AttributeValue::N(next.to_string()))
            .send()
            .await;
        match caught_up {
            Ok(_) => return Ok(slots_from(now, now)),
            // Another caller moved the schedule first: take slots of it.
            Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                continue
            }
            Err(error) => return Err(failed(error)),
        }
    }
    tracing::warn!(
        attempts = MAX_TAKE_ATTEMPTS,
        "IAM budget schedule kept moving; this call goes without waiting its turn"
    );
    Ok(vec![SystemTime::now()])
}

/// Most slots one UpdateItem takes for the calls of one process waiting
/// together: a stage sends at most [`crate::iam_calls::CONCURRENCY`] removals
/// or six listings at once.
pub const MAX_SLOTS_PER_TAKE: usize = 8;

/// The slots this process took and has not handed out yet, and how many of
/// its calls are waiting for one. When several calls wait at once (a stage's
/// listings or removals run concurrently), the one that reaches the schedule
/// takes a slot for each of them in one UpdateItem and the others take theirs
/// from here: one DynamoDB request for the group instead of one per call.
#[derive(Debug, Default)]
struct SlotReservoir {
    waiting: AtomicUsize,
    slots: tokio::sync::Mutex<VecDeque<SystemTime>>,
}

/// Counts a caller as waiting for as long as it exists (a caller whose
/// future is dropped, at an invocation's deadline, stops counting).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A deployment's budget: its configuration and the DynamoDB client that
/// keeps the schedule (built from the plain configuration, so its own calls
/// are not budgeted).
#[derive(Debug, Clone)]
pub struct IamBudget {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub config: BudgetConfig,
    reservoir: Arc<SlotReservoir>,
}

impl IamBudget {
    pub fn new(dynamodb: aws_sdk_dynamodb::Client, config: BudgetConfig) -> Self {
        Self { dynamodb, config, reservoir: Arc::default() }
    }

    /// The same budget for calls into `account`: that account's own schedule
    /// in the same table, kept with the same client (the deployment's
    /// credentials: a target account's role cannot reach the table).
    pub fn for_account(&self, account: &str) -> Self {
        Self::new(self.dynamodb.clone(), self.config.clone().for_account(account))
    }

    /// Waits for this call's slot. When the schedule cannot be reached the
    /// call goes unpaced and the failure is logged: IAM's own throttling and
    /// the retries still hold, and an offboarding never fails for the budget.
    pub async fn wait_for_slot(&self) {
        match self.next_slot().await {
            Ok(slot) => {
                if let Ok(wait) = slot.duration_since(SystemTime::now()) {
                    tokio::time::sleep(wait).await;
                }
            }
            Err(error) => tracing::error!(error, "IAM budget unavailable; this call goes without waiting its turn"),
        }
    }

    /// A slot taken earlier for this call, or new slots for every call of
    /// this process now waiting. A slot left over past its time (its caller
    /// went away) is dropped, never used late: the budget's time passed
    /// unused rather than spent twice.
    async fn next_slot(&self) -> Result<SystemTime, String> {
        let _waiting = Waiting::new(&self.reservoir.waiting);
        let mut slots = self.reservoir.slots.lock().await;
        let now = SystemTime::now();
        while let Some(slot) = slots.pop_front() {
            if slot + LATE_SLOT_TOLERANCE >= now {
                return Ok(slot);
            }
        }
        // Lets the calls started together with this one (the other futures
        // of a join or a buffered stream, polled next) register as waiting.
        tokio::task::yield_now().await;
        let wanted = self.reservoir.waiting.load(Ordering::SeqCst).clamp(1, MAX_SLOTS_PER_TAKE);
        let mut taken = take_slots(&self.dynamodb, &self.config, wanted).await?.into_iter();
        let first = taken.next().unwrap_or(now);
        slots.extend(taken);
        Ok(first)
    }
}

/// `inner` with every request (each attempt) first waiting for a slot of
/// `budget`. Built on the SDK's own connector extension point.
pub fn budgeted_http_client(inner: SharedHttpClient, budget: IamBudget) -> SharedHttpClient {
    http_client_fn(move |settings, components| {
        SharedHttpConnector::new(BudgetedConnector {
            inner: inner.http_connector(settings, components),
            budget: budget.clone(),
        })
    })
}

#[derive(Debug)]
struct BudgetedConnector {
    inner: SharedHttpConnector,
    budget: IamBudget,
}

impl HttpConnector for BudgetedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let (inner, budget) = (self.inner.clone(), self.budget.clone());
        HttpConnectorFuture::new(async move {
            budget.wait_for_slot().await;
            inner.call(request).await
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    use super::*;

    fn budget() -> BudgetConfig {
        BudgetConfig { table: "offboard-iam-budget".into(), calls_per_second: 10.0, schedule: KEY_VALUE.into() }
    }

    #[tokio::test]
    async fn a_slot_left_over_past_its_time_is_dropped_and_a_fresh_one_is_used_without_asking_dynamodb() {
        let add = mock!(aws_sdk_dynamodb::Client::update_item)
            .match_requests(|r| r.update_expression() == Some("ADD #next :interval"))
            .then_compute_output(|_| {
                let next = unix_micros(SystemTime::now()) + 100_000;
                UpdateItemOutput::builder()
                    .set_attributes(Some(HashMap::from([(
                        NEXT_CALL_ATTRIBUTE.to_string(),
                        AttributeValue::N(next.to_string()),
                    )])))
                    .build()
            });
        let budget = IamBudget::new(mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&add]), budget());
        let now = SystemTime::now();
        let (stale, fresh) = (now - 2 * LATE_SLOT_TOLERANCE, now + Duration::from_secs(1));
        budget.reservoir.slots.lock().await.extend([stale, fresh]);
        assert_eq!(budget.next_slot().await.unwrap(), fresh);
        assert_eq!(add.num_calls(), 0);
        assert!(budget.reservoir.slots.lock().await.is_empty(), "the stale slot was dropped, not kept");
        let taken = budget.next_slot().await.unwrap();
        assert_eq!(add.num_calls(), 1, "an empty reservoir asks the schedule");
        assert!(taken >= now, "{taken:?}");
        assert_eq!(budget.reservoir.waiting.load(Ordering::SeqCst), 0, "no caller is left counted as waiting");
    }
}
