//! A Lambda invocation's time budget. Under account-wide throttling IAM
//! calls keep retrying (see [`crate::clients::retry_policy`]), which can
//! outlast the function's timeout, and a killed invocation loses the record
//! of what it removed. So a stage stops waiting on IAM shortly before the
//! deadline and returns `Throttled` naming what it did remove; the state
//! machine retries the stage.

use std::future::Future;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::errors::OffboardError;

/// Time kept back from the Lambda deadline to report the result.
pub const RESERVE: Duration = Duration::from_secs(4);

tokio::task_local! {
    static STOP_CALLS_AT: Instant;
}

/// When a stage running until `lambda_deadline` must stop waiting on IAM.
pub fn stop_calls_at(lambda_deadline: SystemTime) -> Instant {
    let remaining = lambda_deadline.duration_since(SystemTime::now()).unwrap_or_default();
    Instant::now() + remaining.saturating_sub(RESERVE)
}

/// Runs `work` with `at` as the current invocation's stop time.
pub async fn scope<F: Future>(at: Instant, work: F) -> F::Output {
    STOP_CALLS_AT.scope(at, work).await
}

/// The current invocation's stop time; `None` outside a Lambda (the CLI).
pub fn current() -> Option<Instant> {
    STOP_CALLS_AT.try_with(|at| *at).ok()
}

/// Runs `call` unless the invocation's stop time passes first; then it is
/// `Throttled`, naming `what` was still waiting.
pub async fn before_stop<T>(
    call: impl Future<Output = Result<T, OffboardError>>,
    what: &str,
) -> Result<T, OffboardError> {
    match current() {
        None => call.await,
        Some(at) => tokio::time::timeout_at(at, call).await.unwrap_or_else(|_| Err(out_of_time(what))),
    }
}

pub fn out_of_time(what: &str) -> OffboardError {
    OffboardError::Throttled(format!(
        "{what} was still waiting for IAM (throttled, or slow to answer) when the invocation had to stop, {} s before the function's timeout. Transient: the state machine retries the stage, which is idempotent.",
        RESERVE.as_secs()
    ))
}
