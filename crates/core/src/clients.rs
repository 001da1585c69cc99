//! How the AWS clients are built: once per process (Lambda init, or the CLI),
//! with the TLS roots and the retry behaviour every IAM call relies on.

use aws_config::{BehaviorVersion, SdkConfig};

use crate::budget::{budgeted_http_client, IamBudget};

/// A Lambda function's AWS configuration, read from the environment Lambda
/// gives every function: the execution role's keys (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) and `AWS_REGION` ("Defined
/// runtime environment variables",
/// <https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime>),
/// with the SDK's endpoint settings (`AWS_ENDPOINT_URL`,
/// `AWS_ENDPOINT_URL_<SERVICE>`, `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`,
/// `AWS_USE_FIPS_ENDPOINT`, `AWS_USE_DUALSTACK_ENDPOINT`), the patient retry
/// policy and an HTTPS client that trusts the Amazon roots only (see
/// [`amazon_trust_http_client`]).
///
/// Not `aws_config::defaults(..).load()`: its provider chains (profile files,
/// IMDS, the container endpoint, web identity) never apply inside Lambda yet
/// were linked into every function; leaving them out is about a tenth of a
/// function's zip (docs/DESIGN.md, "Build and size"). The CLI keeps them.
pub fn lambda_config() -> SdkConfig {
    use aws_config::environment::EnvironmentVariableCredentialsProvider;
    use aws_sdk_iam::config::SharedCredentialsProvider;

    let ignore_configured_endpoints = ignore_configured_endpoints();
    let mut config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(env_value("AWS_REGION").or_else(|| env_value("AWS_DEFAULT_REGION")).map(aws_config::Region::new))
        .credentials_provider(SharedCredentialsProvider::new(EnvironmentVariableCredentialsProvider::new()))
        .retry_config(retry_policy())
        .http_client(amazon_trust_http_client(native_roots_wanted()))
        .time_source(aws_smithy_async::time::SystemTimeSource::new())
        .service_config(EnvironmentEndpoints { ignored: ignore_configured_endpoints });
    config.set_sleep_impl(aws_smithy_async::rt::sleep::default_async_sleep());
    // As aws-config's loader marks a retry policy set in code: a client that
    // adjusts retries not set by its user (DynamoDB's, under a newer retry
    // spec) then keeps the budget's 20 attempts.
    config.insert_origin("retry_config", aws_types::origin::Origin::shared_config());
    config.set_endpoint_url(env_value("AWS_ENDPOINT_URL").filter(|_| !ignore_configured_endpoints));
    config.set_use_fips(env_flag("AWS_USE_FIPS_ENDPOINT"));
    config.set_use_dual_stack(env_flag("AWS_USE_DUALSTACK_ENDPOINT"));
    config.build()
}

fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// `true` or `false` in any case; anything else is unset, with the warning
/// the SDK's own loader logs for it (aws-config `environment::parse_bool`).
fn env_flag(name: &str) -> Option<bool> {
    let value = env_value(name)?;
    match value.to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => {
            tracing::warn!(variable = name, value = %value, "not `true` or `false`: ignored");
            None
        }
    }
}

fn ignore_configured_endpoints() -> bool {
    env_flag("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").unwrap_or(false)
}

/// A client's settings from the environment as the SDK's own loader reads
/// them (aws-runtime's `env_config`): the service's variable first
/// (`AWS_ENDPOINT_URL_` and the service id upper-cased, spaces as `_`:
/// `AWS_ENDPOINT_URL_SFN`), then the global one.
#[derive(Debug)]
struct EnvironmentEndpoints {
    ignored: bool,
}

impl aws_types::service_config::LoadServiceConfig for EnvironmentEndpoints {
    fn load_config(&self, key: aws_types::service_config::ServiceConfigKey<'_>) -> Option<String> {
        if self.ignored && key.env() == "AWS_ENDPOINT_URL" {
            return None;
        }
        let service = key.service_id().to_uppercase().replace(' ', "_");
        env_value(&format!("{}_{service}", key.env())).or_else(|| env_value(key.env()))
    }
}

/// The IAM client: `config` with the retry partition of [`patient_retry_partition`].
pub fn iam_client(config: &SdkConfig) -> aws_sdk_iam::Client {
    budgeted_iam_client(config, None)
}

/// [`iam_client`] whose every attempt first waits for a slot of the
/// deployment's IAM budget (see [`crate::budget`]), when one is set. The
/// budget keeps its own DynamoDB client: the function's own credentials,
/// whatever account `config`'s credentials work in.
pub fn budgeted_iam_client(config: &SdkConfig, budget: Option<IamBudget>) -> aws_sdk_iam::Client {
    let mut iam = aws_sdk_iam::config::Builder::from(config).retry_partition(patient_retry_partition());
    if let (Some(budget), Some(http)) = (budget, config.http_client()) {
        iam = with_budget(iam, http, budget);
    }
    aws_sdk_iam::Client::from_conf(iam.build())
}

/// `iam` sending through `http` with every attempt first waiting for its
/// slot of `budget`. The wait happens inside the connector, where the SDK's
/// upload stall check reads it as a stalled upload: with 100 offboardings
/// under one budget, calls that waited longer than its 5 s grace period
/// failed with `ThroughputBelowMinimum`. So upload stall protection is off
/// for this client (an IAM request body is a few hundred bytes); download
/// stall protection stays.
pub fn with_budget(
    iam: aws_sdk_iam::config::Builder,
    http: aws_smithy_runtime_api::client::http::SharedHttpClient,
    budget: IamBudget,
) -> aws_sdk_iam::config::Builder {
    use aws_sdk_iam::config::StalledStreamProtectionConfig;
    let stall_protection =
        StalledStreamProtectionConfig::enabled().upload_enabled(false).download_enabled(true).build();
    iam.http_client(budgeted_http_client(http, budget)).stalled_stream_protection(stall_protection)
}

/// The S3 client of the batch stage. Path-style addressing only when an
/// endpoint is configured and not ignored (a local emulator has no
/// per-bucket host names).
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let s3 = aws_sdk_s3::config::Builder::from(config).force_path_style(s3_endpoint_configured());
    aws_sdk_s3::Client::from_conf(s3.build())
}

fn s3_endpoint_configured() -> bool {
    !ignore_configured_endpoints()
        && ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"].iter().any(|var| env_value(var).is_some())
}

/// The roots IAM and STS certificates chain to (Amazon Trust Services),
/// public regional and VPC endpoints alike.
pub const AMAZON_TRUST_SERVICES_ROOTS: &str = include_str!("amazon-trust-services-roots.pem");

/// Set `OFFBOARD_TRUST_NATIVE_ROOTS=true` to also trust the system store
/// (a TLS-inspecting proxy with its own CA).
pub const ENV_TRUST_NATIVE_ROOTS: &str = "OFFBOARD_TRUST_NATIVE_ROOTS";

fn native_roots_wanted() -> bool {
    env_flag(ENV_TRUST_NATIVE_ROOTS).unwrap_or(false)
}

/// The default HTTPS client reads every file of the system trust store
/// (~280 on Debian) before the first invocation; AWS endpoints need only the
/// five Amazon Trust Services roots, compiled in.
pub fn amazon_trust_http_client(with_native_roots: bool) -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
    let trust_store = TrustStore::empty()
        .with_native_roots(with_native_roots)
        .with_pem_certificate(AMAZON_TRUST_SERVICES_ROOTS.as_bytes());
    let context = TlsContext::builder().with_trust_store(trust_store).build().expect("a static TLS context");
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .tls_context(context)
        .build_https()
}

/// IAM throttles per account, so many offboardings at once queue behind one
/// rate. Each call waits its turn (up to 20 attempts, full-jitter backoff
/// from 100 ms to 10 s, about a minute in all) rather than failing its stage
/// after a few seconds and making the state machine redo the stage's earlier
/// calls. Inside a Lambda the invocation's deadline comes first
/// ([`crate::deadline`]); the state machine's retries cover longer throttling.
/// (Adaptive retry mode was measured and rejected: its per-process rate
/// limiter does not coordinate hundreds of Lambda instances, and after
/// sporadic throttles it paced a single offboarding down to 0.5 calls/s.)
pub fn retry_policy() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::standard()
        .with_max_attempts(20)
        .with_initial_backoff(std::time::Duration::from_millis(100))
        .with_max_backoff(std::time::Duration::from_secs(10))
}

/// IAM calls get a retry partition without the SDK's client-side retry
/// quota: the quota (shared by every invocation of a warm function) empties
/// under sustained throttling and then fails calls on their first throttle,
/// which turns an account-wide slowdown into failed stages.
pub fn patient_retry_partition() -> aws_smithy_runtime::client::retries::RetryPartition {
    use aws_smithy_runtime::client::retries::{RetryPartition, TokenBucket};
    RetryPartition::custom("iam-offboard").token_bucket(TokenBucket::unlimited()).build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};

    fn endpoint_of(loader: &EnvironmentEndpoints, service_id: &str) -> Option<String> {
        let key = ServiceConfigKey::builder().service_id(service_id).env("AWS_ENDPOINT_URL").profile("endpoint_url");
        loader.load_config(key.build().expect("a complete key"))
    }

    // The variable names are the SDK's ("Service-specific endpoints",
    // https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html):
    // AWS_ENDPOINT_URL_<service id, upper case, spaces as underscores>.
    #[test]
    fn a_service_reads_its_own_endpoint_variable_unless_configured_endpoints_are_ignored() {
        std::env::set_var("AWS_ENDPOINT_URL_OFFBOARD_CLIENTS_TEST", "http://127.0.0.1:1");
        let loader = EnvironmentEndpoints { ignored: false };
        assert_eq!(endpoint_of(&loader, "Offboard Clients Test").as_deref(), Some("http://127.0.0.1:1"));
        assert_eq!(endpoint_of(&EnvironmentEndpoints { ignored: true }, "Offboard Clients Test"), None);
    }

    #[test]
    fn a_flag_is_true_or_false_in_any_case_and_anything_else_is_unset() {
        for (value, flag) in [("TRUE", Some(true)), ("false", Some(false)), ("1", None), ("yes", None), ("", None)] {
            std::env::set_var("OFFBOARD_CLIENTS_TEST_FLAG", value);
            assert_eq!(env_flag("OFFBOARD_CLIENTS_TEST_FLAG"), flag, "{value:?}");
        }
    }

    // The one test that sets the SDK's own endpoint variables (the others
    // running beside it read them, but assert nothing that depends on them).
    #[test]
    fn a_configured_endpoint_is_used_and_s3_path_style_unless_configured_endpoints_are_ignored() {
        std::env::remove_var("AWS_ENDPOINT_URL_S3");
        std::env::set_var("AWS_ENDPOINT_URL", "http://127.0.0.1:1");
        std::env::remove_var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
        assert_eq!(lambda_config().endpoint_url(), Some("http://127.0.0.1:1"));
        assert!(s3_endpoint_configured());
        std::env::set_var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true");
        assert_eq!(lambda_config().endpoint_url(), None);
        assert!(!s3_endpoint_configured());
        std::env::remove_var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
        std::env::remove_var("AWS_ENDPOINT_URL");
        assert!(!s3_endpoint_configured(), "no endpoint: S3's virtual-hosted addressing");
        std::env::set_var("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:2");
        assert!(s3_endpoint_configured());
        std::env::remove_var("AWS_ENDPOINT_URL_S3");
    }

    #[test]
    fn the_retry_policy_is_marked_as_set_in_code() {
        assert!(lambda_config().get_origin("retry_config").is_client_config());
        assert_eq!(lambda_config().retry_config().map(|retry| retry.max_attempts()), Some(20));
    }
}
