use iam_offboard_core::{lambda, stages::GetUsernameOrAccounts};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::serve::<GetUsernameOrAccounts>().await
}
