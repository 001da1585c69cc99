//! `offboard delete`: the offboarding run in-process, or with --grace-days
//! its quarantine (a later delete finishes it).

use clap::Args;

use super::{confirm, execution_input, AccountArgs, Common, Globals, Grace};
use crate::offboarding::{self, Offboarding};
use crate::records::RecordArgs;
use crate::Failure;

#[derive(Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub grace: Grace,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub records: RecordArgs,
    #[command(flatten)]
    pub scope: AccountArgs,
}

pub async fn run(args: &DeleteArgs, globals: &Globals) -> Result<(), Failure> {
    let input = execution_input(&args.common, false, &args.grace)?;
    if !args.yes {
        let what = match (args.scope.given(), args.grace.grace_days) {
            (true, _) => "deletes IAM user {} and everything it holds in every account named".to_string(),
            (false, Some(days)) => format!("quarantines IAM user {{}} now (every credential off, AWSDenyAll attached) for deletion in {days} day(s)"),
            (false, None) => "deletes IAM user {} and everything it holds".to_string(),
        };
        confirm(args.common.target.identifier(), &what)?;
    }
    let deletion = Offboarding { input, deletes: true, store: globals.record_store(&args.records), scope: &args.scope };
    offboarding::run(deletion, globals).await
}
