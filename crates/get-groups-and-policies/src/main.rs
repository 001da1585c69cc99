use iam_offboard_core::{lambda, stages::GetGroupsAndPolicies};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::serve::<GetGroupsAndPolicies>().await
}
