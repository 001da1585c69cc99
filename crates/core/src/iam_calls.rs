//! What every IAM call of the stages shares: page and concurrency sizes,
//! the one paginated-list helper, idempotent deletes, dates as recorded.

use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iam::primitives::{DateTime, DateTimeFormat};
use aws_smithy_async::future::pagination_stream::PaginationStream;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::errors::{classify_sdk_error, is_no_such_entity, OffboardError};
use crate::items::Outcome;

/// The largest page IAM serves.
pub const PAGE_SIZE: i32 = 1000;
/// In-flight IAM calls within one stage: enough to overlap latency, few
/// enough not to trip IAM's per-account throttling.
pub const CONCURRENCY: usize = 4;

pub fn format_date(date: &DateTime) -> String {
    date.fmt(DateTimeFormat::DateTime).unwrap_or_else(|_| date.secs().to_string())
}

/// Drains a paginator's stream: its items, or its pages where the service
/// models no items (Organizations); the first failed page fails the list.
pub(crate) async fn collect_all<T, E>(
    stream: PaginationStream<Result<T, SdkError<E, HttpResponse>>>,
    action: &str,
    resource: &str,
) -> Result<Vec<T>, OffboardError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    stream.collect::<Result<Vec<T>, _>>().await.map_err(|error| classify_sdk_error(error, action, resource))
}

/// Maps a delete call's result: success is `Removed`, NoSuchEntity is
/// `AlreadyAbsent`, anything else is the classified error.
pub fn idempotent<O, E>(
    result: Result<O, SdkError<E, HttpResponse>>,
    action: &str,
    resource: &str,
) -> Result<Outcome, OffboardError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(Outcome::Removed),
        Err(error) if is_no_such_entity(&error) => Ok(Outcome::AlreadyAbsent),
        Err(error) => Err(classify_sdk_error(error, action, resource)),
    }
}
