//! `offboard records`: the stored plans and records of a user.

use clap::Args;
use serde_json::json;

use super::Globals;
use crate::records::{RecordArgs, RecordStore};
use crate::render::{pretty_json, Output};
use crate::Failure;

#[derive(Args)]
pub struct RecordsArgs {
    /// The IAM user name (matched without regard to case, as IAM does).
    #[arg(long)]
    user_name: String,
    /// The account the records are filed under (default: the caller's).
    #[arg(long)]
    account: Option<String>,
    #[command(flatten)]
    records: RecordArgs,
}

pub async fn run(args: &RecordsArgs, globals: &Globals) -> Result<(), Failure> {
    let Some(store) = globals.record_store(&args.records) else {
        return Err(Failure::Local("give --record-dir or --record-bucket".into()));
    };
    let account = match &args.account {
        Some(account) => account.clone(),
        None => {
            iam_offboard_core::target::get_caller_identity(&aws_sdk_sts::Client::new(&globals.config)).await?.account
        }
    };
    list_records(&store, &account, &args.user_name, globals.output).await
}

/// Prints every stored plan and record of the user, newest execution last.
async fn list_records(store: &RecordStore, account: &str, user_name: &str, output: Output) -> Result<(), Failure> {
    let mine = store.user_keys(account, user_name).await.map_err(Failure::Local)?;
    let mut documents = Vec::with_capacity(mine.len());
    for key in &mine {
        let record = store.get(key).await.map_err(Failure::Local)?;
        let outcome = match (key.rsplit('/').next().unwrap_or_default(), record.get("Error")) {
            ("plan.json" | "deletion-plan.json", _) => "plan".to_string(),
            ("quarantine.json", _) => "quarantined".to_string(),
            ("restore.json", _) => "restored".to_string(),
            (_, Some(error)) => format!("failed: {}", error.as_str().unwrap_or_default()),
            (_, None) => "offboarded".to_string(),
        };
        if output == Output::Text {
            println!("{key}  {outcome}");
        }
        documents.push(json!({"Key": key, "Record": record}));
    }
    if documents.is_empty() {
        eprintln!("no records of {user_name} under records/{account}/");
    }
    if output == Output::Json {
        println!("{}", pretty_json(&documents)?);
    }
    Ok(())
}
