//! `offboard`: plan or run an offboarding in-process, or start it on the
//! deployed state machine. Every rule lives in iam-offboard-core.

use std::process::ExitCode;

use clap::Parser;

mod aws;
mod commands;
mod failure;
mod follow;
mod grace;
mod offboarding;
mod records;
mod render;

use commands::{Command, Globals};
use failure::Failure;
use render::Output;

#[derive(Parser)]
#[command(name = "offboard", version, about = "Delete an AWS IAM user completely, whatever MFA devices it has")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    aws: aws::AwsArgs,
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,
    #[command(flatten)]
    mfa: aws::MfaArgs,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.exit(),
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let globals = Globals {
        config: aws::config(&cli.aws, &cli.mfa).await?,
        output: cli.output,
        path_style: cli.aws.path_style(),
    };
    commands::run(&cli.command, &globals).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_shape_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn one_user_selector_exactly() {
        assert!(Cli::try_parse_from(["offboard", "delete", "--yes"]).is_err());
        assert!(Cli::try_parse_from(["offboard", "delete", "--user-name", "a", "--user-id", "AIDAX"]).is_err());
        assert!(Cli::try_parse_from(["offboard", "plan", "--user-name", "alice"]).is_ok());
        assert!(Cli::try_parse_from(["offboard", "plan", "--user-name", "alice", "--mfa-serial", "x"]).is_err());
        assert!(Cli::try_parse_from([
            "offboard",
            "delete",
            "--user-name",
            "a",
            "--record-dir",
            "d",
            "--record-bucket",
            "b"
        ])
        .is_err());
        assert!(Cli::try_parse_from(["offboard", "records", "--user-name", "a", "--record-bucket", "b"]).is_ok());
        assert!(Cli::try_parse_from(["offboard", "restore", "--record", "r.json", "--dry-run"]).is_ok());
        assert!(Cli::try_parse_from(["offboard", "restore"]).is_err());
        assert!(
            Cli::try_parse_from(["offboard", "restore", "--user-name", "a", "--record-bucket", "b", "--yes"]).is_ok()
        );
        assert!(
            Cli::try_parse_from(["offboard", "restore", "--user-name", "a"]).is_err(),
            "the records to search are required"
        );
        assert!(Cli::try_parse_from(["offboard", "restore", "--user-name", "a", "--record", "r.json"]).is_err());
    }
}
