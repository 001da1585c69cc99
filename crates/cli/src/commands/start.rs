//! `offboard start`: an execution of the deployed state machine (or, with
//! --users-file, of the batch state machine), followed with --wait.

use std::path::{Path, PathBuf};

use aws_config::SdkConfig;
use clap::Args;
use iam_offboard_core::input::{self, UserRef};
use serde_json::{json, Value};

use super::{execution_input, unix_millis, Common, Globals, Grace, Target};
use crate::follow::follow_execution;
use crate::render::Output;
use crate::Failure;

/// What `start` offboards: one user, or a batch from a file.
#[derive(Args, Clone)]
#[group(required = true, multiple = false)]
pub struct StartTarget {
    /// The IAM user name.
    #[arg(long)]
    pub user_name: Option<String>,
    /// The IAM user id (AIDA...).
    #[arg(long)]
    pub user_id: Option<String>,
    /// A batch on the batch state machine: a CSV file with a UserName column,
    /// or a JSON array of names (validated here, passed inline).
    #[arg(long)]
    users_file: Option<PathBuf>,
}

#[derive(Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub who: StartTarget,
    /// Free-form JSON object carried into the audit record(s).
    #[arg(long)]
    context: Option<String>,
    #[arg(long)]
    state_machine_arn: String,
    /// Child executions at once (a batch only; default 10).
    #[arg(long, requires = "users_file", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    max_concurrency: Option<u32>,
    #[command(flatten)]
    pub grace: Grace,
    /// Only gather and report.
    #[arg(long)]
    dry_run: bool,
    /// Execution name (default: the user name or id; names are unique,
    /// so a second offboarding of the same user is refused).
    #[arg(long)]
    execution_name: Option<String>,
    /// Follow the execution until it ends and print its output.
    #[arg(long)]
    wait: bool,
}

pub async fn run(args: &StartArgs, globals: &Globals) -> Result<(), Failure> {
    let StartArgs { who, context, state_machine_arn, max_concurrency, grace, dry_run, execution_name, wait } = args;
    let (config, output) = (&globals.config, globals.output);
    if let Some(path) = &who.users_file {
        if grace.grace_days.is_some() {
            return Err(Failure::Local("--grace-days goes with one user, not with --users-file".into()));
        }
        let input = batch_input(path, context.as_deref(), *dry_run, *max_concurrency).await?;
        let name = execution_name.clone().unwrap_or_else(|| format!("batch-{}", unix_millis()));
        return start_execution(config, state_machine_arn, &name, input, *wait, output).await;
    }
    let common = Common {
        target: Target { user_name: who.user_name.clone(), user_id: who.user_id.clone() },
        context: context.clone(),
    };
    let input = execution_input(&common, *dry_run, grace)?;
    let name = execution_name.clone().unwrap_or_else(|| execution_name_for(&common.target));
    start_execution(config, state_machine_arn, &name, input, *wait, output).await
}

/// The batch state machine's input from a users file, checked here by the
/// rule the batch's first state applies (core's `plan_batch`), so a bad list
/// starts nothing.
async fn batch_input(
    path: &Path,
    context: Option<&str>,
    dry_run: bool,
    max_concurrency: Option<u32>,
) -> Result<Value, Failure> {
    use iam_offboard_core::batch::{parse_user_list, plan_batch};
    let document = std::fs::read(path).map_err(|e| Failure::Local(format!("{}: {e}", path.display())))?;
    let names = parse_user_list(&document, &path.display().to_string())?;
    let mut input = json!({"UserNames": names});
    if dry_run {
        input["DryRun"] = json!(true);
    }
    if let Some(max) = max_concurrency {
        input["MaxConcurrency"] = json!(max);
    }
    if let Some(context) = context {
        input["Context"] =
            serde_json::from_str(context).map_err(|e| Failure::Local(format!("--context is not JSON: {e}")))?;
    }
    plan_batch(None, &input).await?;
    Ok(input)
}

fn execution_name_for(target: &Target) -> String {
    let user = match (&target.user_name, &target.user_id) {
        (Some(name), _) => UserRef::Name(name.clone()),
        (None, id) => UserRef::Id(id.clone().unwrap_or_default()),
    };
    input::execution_name_for(&user)
}

async fn start_execution(
    config: &SdkConfig,
    state_machine_arn: &str,
    name: &str,
    input: Value,
    wait: bool,
    output: Output,
) -> Result<(), Failure> {
    let sfn = aws_sdk_sfn::Client::new(config);
    let started =
        sfn.start_execution().state_machine_arn(state_machine_arn).name(name).input(input.to_string()).send().await;
    let execution_arn = match started {
        Ok(started) => started.execution_arn().to_string(),
        Err(error) if aws_sdk_sfn::error::ProvideErrorMetadata::code(&error) == Some("ExecutionAlreadyExists") => {
            return Err(Failure::Local(format!(
                "an execution named {name} already exists on {state_machine_arn}: this user is (or was) already being offboarded. Inspect it, or pass --execution-name to start a new attempt"
            )));
        }
        Err(error) => {
            return Err(Failure::Local(format!(
                "states:StartExecution failed: {}",
                aws_sdk_sfn::error::DisplayErrorContext(&error)
            )))
        }
    };
    eprintln!("started {execution_arn}");
    if !wait {
        if output == Output::Json {
            println!("{}", json!({"ExecutionArn": execution_arn}));
        }
        return Ok(());
    }
    // A batch's size is known here; mid-run, a Map Run's own total counts
    // only the items started so far.
    let batch_size = input.get("UserNames").and_then(Value::as_array).map(Vec::len);
    follow_execution(&sfn, &execution_arn, batch_size, output).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_names_follow_the_cores_rule() {
        let target = Target { user_name: Some("A,b@c".into()), user_id: None };
        assert_eq!(execution_name_for(&target), input::execution_name_for(&UserRef::Name("a,b@c".into())));
        assert!(execution_name_for(&target).starts_with("a_b_c-"));
    }
}
