use iam_offboard_core::{batch::OffboardBatch, lambda};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::serve::<OffboardBatch>().await
}
