//! OffboardBatch: the batch state machine's function. It validates a whole
//! user list before any child starts and summarises the Distributed Map's
//! report after it; it also summarises an org-wide offboarding's report for
//! the offboarding state machine. No IAM call, S3 reads only.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::account_summary::{summarize_accounts, AccountsSummary, AccountsSummaryRequest};
use crate::batch::{plan_batch, summarize_batch, BatchPlan, BatchSummary, SummaryRequest};
use crate::context::StageContext;
use crate::errors::{invalid_input as invalid, OffboardError};
use crate::stage::{Stage, Timed};
use crate::workflow::Subject;

/// OffboardBatch's calls: from the batch state machine `{"Validate": <batch
/// input>}` before any child starts and `{"Summarize": ...}` after the Map;
/// from the offboarding state machine, after an org-wide offboarding's Map,
/// `{"SummarizeAccounts": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum BatchCall {
    Validate(Value),
    Summarize(SummaryRequest),
    SummarizeAccounts(AccountsSummaryRequest),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum BatchAnswer {
    Plan(BatchPlan),
    Summary(BatchSummary),
    Accounts(AccountsSummary),
}

impl Timed for BatchAnswer {
    fn set_duration_ms(&mut self, duration_ms: u64) {
        match self {
            Self::Plan(plan) => plan.set_duration_ms(duration_ms),
            Self::Summary(summary) => summary.set_duration_ms(duration_ms),
            Self::Accounts(summary) => summary.set_duration_ms(duration_ms),
        }
    }
}

/// The batch state machine's function, and the org-wide summary's: no IAM
/// call, S3 reads only.
pub struct OffboardBatch;

impl Stage for OffboardBatch {
    const NAME: &'static str = "OffboardBatch";
    const USES_S3: bool = true;
    const CALLS_IAM: bool = false;
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
                let summary = summarize_batch(report_reader(ctx)?, &request).await?;
                tracing::info!(succeeded = summary.succeeded, failed = summary.failed_count, "batch summarised");
                Ok(BatchAnswer::Summary(summary))
            }
            BatchCall::SummarizeAccounts(request) => {
                let summary = summarize_accounts(report_reader(ctx)?, &request).await?;
                tracing::info!(
                    accounts = summary.total,
                    offboarded = summary.offboarded,
                    planned = summary.planned,
                    restored = summary.restored,
                    not_present = summary.not_present,
                    failed = summary.failed,
                    "accounts summarised"
                );
                Ok(BatchAnswer::Accounts(summary))
            }
        }
    }
}

fn report_reader(ctx: &StageContext) -> Result<&aws_sdk_s3::Client, OffboardError> {
    ctx.s3.as_ref().ok_or_else(|| invalid("this function has no S3 client; the report cannot be read"))
}
