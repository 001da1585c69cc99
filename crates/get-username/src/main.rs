use iam_offboard_core::{fanout::GetUsernameOrAccounts, lambda};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::serve::<GetUsernameOrAccounts>().await
}
