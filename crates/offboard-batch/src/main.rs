use iam_offboard_core::{lambda, stages::OffboardBatch};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::serve::<OffboardBatch>().await
}
