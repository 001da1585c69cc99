//! Following an execution of the deployed state machine: its states as they
//! complete, a batch's item counts, then its output or its error.

use std::time::Duration;

use iam_offboard_core::record::AuditRecord;

use crate::render::{render_text, Output};
use crate::Failure;

/// Prints each state as it completes, then the execution's output or error.
pub async fn follow_execution(
    sfn: &aws_sdk_sfn::Client,
    execution_arn: &str,
    batch_size: Option<usize>,
    output: Output,
) -> Result<(), Failure> {
    use aws_sdk_sfn::types::{ExecutionStatus, HistoryEventType};
    let mut seen = 0;
    let mut map_run: Option<String> = None;
    let mut last_progress = String::new();
    loop {
        // The status first, then the history: a status read after the
        // history could be terminal with the last states not yet printed.
        let execution = sfn.describe_execution().execution_arn(execution_arn).send().await.map_err(|e| {
            Failure::Local(format!("states:DescribeExecution failed: {}", aws_sdk_sfn::error::DisplayErrorContext(&e)))
        })?;
        let history =
            sfn.get_execution_history().execution_arn(execution_arn).max_results(1000).send().await.map_err(|e| {
                Failure::Local(format!(
                    "states:GetExecutionHistory failed: {}",
                    aws_sdk_sfn::error::DisplayErrorContext(&e)
                ))
            })?;
        for event in history.events().iter().skip(seen) {
            if event.r#type() == &HistoryEventType::TaskStateExited
                || event.r#type() == &HistoryEventType::PassStateExited
            {
                if let Some(details) = event.state_exited_event_details() {
                    eprintln!("  ✓ {}", details.name());
                }
            }
            if let Some(details) = event.map_run_started_event_details() {
                map_run = details.map_run_arn().map(str::to_string);
            }
        }
        seen = history.events().len();
        if let Some(map_run_arn) = &map_run {
            // A batch: its items' progress, from the Map Run's own counts.
            if let Ok(run) = sfn.describe_map_run().map_run_arn(map_run_arn).send().await {
                if let Some(counts) = run.item_counts() {
                    let progress = format!(
                        "  items done {}/{} ({} failed)",
                        counts.succeeded() + counts.failed() + counts.aborted() + counts.timed_out(),
                        batch_size.map_or(counts.total(), |size| size as i64),
                        counts.failed() + counts.aborted() + counts.timed_out()
                    );
                    if progress != last_progress {
                        eprintln!("{progress}");
                        last_progress = progress;
                    }
                }
            }
        }
        match execution.status() {
            ExecutionStatus::Running | ExecutionStatus::PendingRedrive => {
                tokio::time::sleep(Duration::from_secs(1)).await
            }
            ExecutionStatus::Succeeded => {
                let text = execution.output().unwrap_or("{}");
                match (output, serde_json::from_str::<AuditRecord>(text)) {
                    (Output::Text, Ok(record)) => print!("{}", render_text(&record)),
                    _ => println!("{text}"),
                }
                return Ok(());
            }
            status => {
                return Err(Failure::Local(format!(
                    "execution {} {}: {}: {}",
                    execution_arn,
                    status.as_str(),
                    execution.error().unwrap_or("unknown"),
                    execution.cause().unwrap_or("")
                )))
            }
        }
    }
}
