//! The AWS configuration: the standard one, with the operator's region,
//! profile and endpoint, then an MFA-authenticated session if asked for.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sts::config::{Credentials, SharedCredentialsProvider};
use clap::Args;
use iam_offboard_core::errors::classify_sdk_error;

use crate::Failure;

#[derive(Args)]
pub struct AwsArgs {
    /// AWS region (else the standard AWS configuration decides).
    #[arg(long, global = true)]
    region: Option<String>,
    /// Named profile from the shared AWS config files.
    #[arg(long, global = true)]
    profile: Option<String>,
    /// Send every AWS call to this endpoint (a local emulator, a VPC endpoint).
    #[arg(long, global = true)]
    endpoint_url: Option<String>,
}

impl AwsArgs {
    /// S3 by path rather than by bucket host name: an endpoint such as a
    /// local emulator has no per-bucket host names.
    pub fn path_style(&self) -> bool {
        self.endpoint_url.is_some()
    }
}

#[derive(Args)]
pub struct MfaArgs {
    /// MFA device serial or ARN: get an MFA-authenticated STS session first,
    /// for policies that require aws:MultiFactorAuthPresent.
    #[arg(long, global = true, requires = "mfa_token_code")]
    mfa_serial: Option<String>,
    /// The current code of that MFA device.
    #[arg(long, global = true, requires = "mfa_serial")]
    mfa_token_code: Option<String>,
}

/// Standard AWS configuration, then an MFA session if asked for.
pub async fn config(aws: &AwsArgs, mfa: &MfaArgs) -> Result<SdkConfig, Failure> {
    // The project's own HTTPS client (rustls with ring: no C crypto library to
    // build); an operator's machine also trusts its system store (a proxy's CA).
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(iam_offboard_core::clients::retry_policy())
        .http_client(iam_offboard_core::clients::amazon_trust_http_client(true));
    if let Some(region) = &aws.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(profile) = &aws.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(endpoint) = &aws.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    let config = loader.load().await;
    let (Some(serial), Some(code)) = (&mfa.mfa_serial, &mfa.mfa_token_code) else {
        return Ok(config);
    };
    let session = aws_sdk_sts::Client::new(&config)
        .get_session_token()
        .serial_number(serial)
        .token_code(code)
        .send()
        .await
        .map_err(|e| classify_sdk_error(e, "sts:GetSessionToken", &format!("MFA device {serial}")))?;
    let credentials =
        session.credentials().ok_or_else(|| Failure::Local("sts:GetSessionToken returned no credentials".into()))?;
    let credentials = Credentials::new(
        credentials.access_key_id(),
        credentials.secret_access_key(),
        Some(credentials.session_token().to_string()),
        std::time::SystemTime::try_from(*credentials.expiration()).ok(),
        "offboard-mfa-session",
    );
    Ok(config.into_builder().credentials_provider(SharedCredentialsProvider::new(credentials)).build())
}
