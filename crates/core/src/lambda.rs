//! Wires a stage into the Lambda Runtime API. Clients are built once, at
//! init, and reused by every invocation.

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

use crate::stages::{invoke, parse_request, Stage, StageContext};

/// Serves stage `S` until the runtime stops. Payloads are parsed here rather
/// than by the runtime so that a malformed one fails as `InvalidInput`.
pub async fn serve<S: Stage>() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let ctx = StageContext::from_env().await;
    let ctx = &ctx;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        invoke::<S>(ctx, parse_request::<S>(event.payload)?).await
    }))
    .await
}
