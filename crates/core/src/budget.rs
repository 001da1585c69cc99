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
//! the caller goes at the time it was given. When the schedule has fallen
//! behind the clock (the budget was idle), one conditional write moves it to
//! now, so idle time is not saved up into a burst. That write is conditioned
//! on the schedule still being behind, not on it being unchanged: when many
//! callers find it idle at once (executions starting together), the first
//! write wins and the others' next `ADD` lands on the moved schedule, where
//! conditioning on "unchanged" let every `ADD` of the herd void the others'
//! writes until callers ran out of attempts and went unpaced.

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

/// Takes the next slot of the shared schedule and returns when the call may
/// go (now or later). Errors are DynamoDB's, as text.
pub async fn take_slot(dynamodb: &aws_sdk_dynamodb::Client, budget: &BudgetConfig) -> Result<SystemTime, String> {
    let interval = budget.interval_micros();
    let failed = |error: aws_sdk_dynamodb::error::SdkError<_, _>| {
        format!("UpdateItem on {}: {}", budget.table, aws_sdk_dynamodb::error::DisplayErrorContext(&error))
    };
    for _ in 0..MAX_TAKE_ATTEMPTS {
        let taken = dynamodb
            .update_item()
            .table_name(&budget.table)
            .key(KEY_ATTRIBUTE, AttributeValue::S(budget.schedule.clone()))
            .update_expression("ADD #next :interval")
            .expression_attribute_names("#next", NEXT_CALL_ATTRIBUTE)
            .expression_attribute_values(":interval", AttributeValue::N(interval.to_string()))
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
        let slot = next.saturating_sub(interval);
        let now = unix_micros(SystemTime::now());
        if slot + LATE_SLOT_TOLERANCE.as_micros() as u64 >= now {
            return Ok(UNIX_EPOCH + Duration::from_micros(slot.max(now)));
        }
        // `:seen` (this caller's stale slot, which it gives up) always passes
        // `>=`, the schedule only moving forward; it makes each request name
        // the slot it abandons, so the schedule can be audited from requests.
        let stale_below = now - LATE_SLOT_TOLERANCE.as_micros() as u64;
        let caught_up = dynamodb
            .update_item()
            .table_name(&budget.table)
            .key(KEY_ATTRIBUTE, AttributeValue::S(budget.schedule.clone()))
            .update_expression("SET #next = :caught_up")
            .condition_expression("#next < :stale_below AND #next >= :seen")
            .expression_attribute_names("#next", NEXT_CALL_ATTRIBUTE)
            .expression_attribute_values(":caught_up", AttributeValue::N((now + interval).to_string()))
            .expression_attribute_values(":stale_below", AttributeValue::N(stale_below.to_string()))
            .expression_attribute_values(":seen", AttributeValue::N(next.to_string()))
            .send()
            .await;
        match caught_up {
            Ok(_) => return Ok(UNIX_EPOCH + Duration::from_micros(now)),
            // Another caller moved the schedule first: take a slot of it.
            Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => continue,
            Err(error) => return Err(failed(error)),
        }
    }
    tracing::warn!(attempts = MAX_TAKE_ATTEMPTS, "IAM budget schedule kept moving; this call goes without waiting its turn");
    Ok(SystemTime::now())
}

/// A deployment's budget: its configuration and the DynamoDB client that
/// keeps the schedule (built from the plain configuration, so its own calls
/// are not budgeted).
#[derive(Debug, Clone)]
pub struct IamBudget {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub config: BudgetConfig,
}

impl IamBudget {
    /// Waits for this call's slot. When the schedule cannot be reached the
    /// call goes unpaced and the failure is logged: IAM's own throttling and
    /// the retries still hold, and an offboarding never fails for the budget.
    pub async fn wait_for_slot(&self) {
        match take_slot(&self.dynamodb, &self.config).await {
            Ok(slot) => {
                if let Ok(wait) = slot.duration_since(SystemTime::now()) {
                    tokio::time::sleep(wait).await;
                }
            }
            Err(error) => tracing::error!(error, "IAM budget unavailable; this call goes without waiting its turn"),
        }
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
