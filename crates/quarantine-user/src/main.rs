use iam_offboard_core::{lambda, stages::QuarantineUser};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::serve::<QuarantineUser>().await
}
