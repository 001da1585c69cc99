use iam_offboard_core::{lambda, stages::DeleteIamUserAndVerify};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::serve::<DeleteIamUserAndVerify>().await
}
