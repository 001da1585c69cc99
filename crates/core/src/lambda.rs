//! Wires a stage into the Lambda Runtime API. Clients are built once, at
//! init, and reused by every invocation.

use std::future::Future;
use std::pin::Pin;

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

use crate::clients;
use crate::context::StageContext;
use crate::deadline;
use crate::errors::OffboardError;
use crate::sessions::split_placement;
use crate::stage::{invoke, parse_request, Stage};
use crate::workflow::{check_account, check_user, WorkflowGuard, EXECUTION_ID_FIELD};

/// One invocation, type-erased: the stages' nested SDK futures are too deep
/// for rustc to lay out inside the runtime's own future types.
type Invocation<'a, R> = Pin<Box<dyn Future<Output = Result<R, OffboardError>> + 'a>>;

/// Serves stage `S` until the runtime stops. Every invocation is first
/// admitted by the [`WorkflowGuard`]: only the pending step of a running
/// execution of this deployment gets the function's IAM powers. Payloads are
/// parsed here rather than by the runtime so that a malformed one fails as
/// `InvalidInput`; a payload naming another account (`Account`,
/// `ExecutionName`) runs the stage with that account's session. A bad
/// configuration ends the process at init, its reason logged, before any
/// invocation is taken.
pub async fn serve<S: Stage>() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let config = clients::lambda_config();
    let (ctx, guard) = StageContext::from_env::<S>(&config)
        .and_then(|ctx| Ok((ctx, WorkflowGuard::from_env(&config)?)))
        .inspect_err(|error| {
            tracing::error!(error_type = error.name(), error = %error, "refusing to start: bad configuration");
        })?;
    let (ctx, guard) = (&ctx, &guard);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| -> Invocation<'_, S::Response> {
        let stop_at = deadline::stop_calls_at(event.context.deadline());
        Box::pin(async move {
            let admission = guard.admit(&event.context.invoked_function_arn, &event.payload).await?;
            let mut payload = event.payload;
            if let Value::Object(fields) = &mut payload {
                fields.remove(EXECUTION_ID_FIELD);
            }
            let (placement, payload) = split_placement(S::unwrap_payload(payload))?;
            let request = parse_request::<S>(payload)?;
            check_user(&admission, S::subject(&request))?;
            if placement.is_some() || admission.child_account().is_some() {
                if !S::CALLS_IAM {
                    return Err(OffboardError::InvalidInput(format!(
                        "{} works in its own account only: the payload or its execution names another account",
                        S::NAME
                    )));
                }
                check_account(&admission, placement.as_ref(), &ctx.caller().await?.account)?;
            }
            deadline::scope(stop_at, async {
                let elsewhere = match &placement {
                    Some(placement) if S::CALLS_IAM => ctx.in_account(placement).await?,
                    _ => None,
                };
                invoke::<S>(elsewhere.as_ref().unwrap_or(ctx), request).await
            })
            .await
        })
    }))
    .await
}

/// Lambda's advanced logging controls, read as lambda_runtime's default
/// subscriber reads them: JSON lines when `AWS_LAMBDA_LOG_FORMAT` is `JSON`;
/// the level from `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else INFO; no
/// timestamp or target (CloudWatch stamps each line). Lambda's `FATAL` is
/// tracing's ERROR. Not that subscriber itself: it also parses `RUST_LOG`
/// directives with tracing-subscriber's env-filter, whose regex engine was
/// about 180 KB of every function's zip (docs/DESIGN.md, "Build and size").
fn init_logging() {
    use tracing_subscriber::filter::LevelFilter;
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .map(|level| if level.eq_ignore_ascii_case("fatal") { "error".to_string() } else { level })
        .and_then(|level| level.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let logs = tracing_subscriber::fmt().with_target(false).without_time().with_max_level(level);
    if std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|format| format.eq_ignore_ascii_case("json")) {
        logs.json().init()
    } else {
        logs.init()
    }
}
