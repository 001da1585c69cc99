//! OffboardBatch: the batch state machine's function. It validates a whole
//! user list before any child starts and summarises the Distributed Map's
//! report after it; no IAM call, S3 reads only.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::batch::{plan_batch, summarize_batch, BatchPlan, BatchSummary, SummaryRequest};
use crate::context::StageContext;
use crate::errors::{invalid_input as invalid, OffboardError};
use crate::stage::{Stage, Timed};
use crate::workflow::Subject;

/// OffboardBatch's two calls: `{"Validate": <batch input>}` before any
/// child starts, `{"Summarize": ...}` after the Map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum BatchCall {
    Validate(Value),
    Summarize(SummaryRequest),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum BatchAnswer {
    Plan(BatchPlan),
    Summary(BatchSummary),
}

impl Timed for BatchAnswer {
    fn set_duration_ms(&mut self, duration_ms: u64) {
        match self {
            Self::Plan(plan) => plan.set_duration_ms(duration_ms),
            Self::Summary(summary) => summary.set_duration_ms(duration_ms),
        }
    }
}

/// The batch state machine's function: no IAM call, S3 reads only.
pub struct OffboardBatch;

impl Stage for OffboardBatch {
    const NAME: &'static str = "OffboardBatch";
    const USES_S3: bool = true;
    type Request = BatchCall;
    type Response = BatchAnswer;

    fn subject(_: &BatchCall) -> Subject<'_> {
        Subject::default()
    }

    async fn run(ctx: &StageContext, request: BatchCall) -> Result<BatchAnswer, OffboardError> {
        match request {
            BatchCall::Validate(input) => {
                let plan = plan_batch(ctx.s3.as_ref(), &input).await?;
                tracing::info!(users = plan.count, source = %plan.source, dry_run = plan.dry_run, "batch validated");
                Ok(BatchAnswer::Plan(plan))
            }
            BatchCall::Summarize(request) => {
                let s3 = ctx
                    .s3
                    .as_ref()
                    .ok_or_else(|| invalid("this function has no S3 client; the report cannot be read"))?;
                let summary = summarize_batch(s3, &request).await?;
                tracing::info!(succeeded = summary.succeeded, failed = summary.failed_count, "batch summarised");
                Ok(BatchAnswer::Summary(summary))
            }
        }
    }
}
