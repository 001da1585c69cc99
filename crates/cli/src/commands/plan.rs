//! `offboard plan`: everything that would be removed, nothing changed.

use clap::Args;

use super::{execution_input, AccountArgs, Common, Globals, Grace};
use crate::offboarding::{self, Offboarding};
use crate::records::RecordArgs;
use crate::Failure;

#[derive(Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub records: RecordArgs,
    #[command(flatten)]
    pub scope: AccountArgs,
}

pub async fn run(args: &PlanArgs, globals: &Globals) -> Result<(), Failure> {
    let input = execution_input(&args.common, true, &Grace::default())?;
    let plan = Offboarding { input, deletes: false, store: globals.record_store(&args.records), scope: &args.scope };
    offboarding::run(plan, globals).await
}
