//! Wires a stage into the Lambda Runtime API. Clients are built once, at
//! init, and reused by every invocation.

use std::future::Future;
use std::pin::Pin;

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

use crate::context::StageContext;
use crate::deadline;
use crate::errors::OffboardError;
use crate::sessions::split_placement;
use crate::stage::{invoke, parse_request, Stage};

/// One invocation, type-erased: the stages' nested SDK futures are too deep
/// for rustc to lay out inside the runtime's own future types.
type Invocation<'a, R> = Pin<Box<dyn Future<Output = Result<R, OffboardError>> + 'a>>;

/// Serves stage `S` until the runtime stops. Payloads are parsed here rather
/// than by the runtime so that a malformed one fails as `InvalidInput`; a
/// payload naming another account (`Account`, `ExecutionName`) runs the stage
/// with that account's session. A bad
/// configuration ends the process at init, its reason logged, before any
/// invocation is taken.
pub async fn serve<S: Stage>() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let ctx = StageContext::from_env::<S>().await.inspect_err(|error| {
        tracing::error!(error_type = error.name(), error = %error, "refusing to start: bad configuration");
    })?;
    let ctx = &ctx;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| -> Invocation<'_, S::Response> {
        let stop_at = deadline::stop_calls_at(event.context.deadline());
        Box::pin(async move {
            let (placement, payload) = split_placement(event.payload)?;
            let request = parse_request::<S>(payload)?;
            deadline::scope(stop_at, async {
                let elsewhere = match &placement {
                    Some(placement) => ctx.in_account(placement).await?,
                    None => None,
                };
                invoke::<S>(elsewhere.as_ref().unwrap_or(ctx), request).await
            })
            .await
        })
    }))
    .await
}
