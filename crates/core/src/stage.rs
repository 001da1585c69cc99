//! What every stage is: a request type, a response type and a `run`, driven
//! through [`invoke`] by the Lambda binaries ([`crate::lambda`]) and the CLI
//! ([`crate::pipeline`]). The stages themselves are in [`crate::stages`].

use std::future::Future;
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tracing::Instrument;

use std::sync::Arc;

use aws_config::SdkConfig;

use crate::accounts::account_concurrency_from_env;
use crate::budget::{BudgetConfig, IamBudget};
use crate::clients;
use crate::context::StageContext;
use crate::deadline;
use crate::errors::OffboardError;
use crate::sessions::AccountSessions;
use crate::target::ProtectionPolicy;
use crate::workflow::Subject;

pub trait Stage {
    /// The state's name in the state machine; also the key in `Timings`.
    const NAME: &'static str;
    /// Reads S3 (the batch stage): its process builds an S3 client at init.
    const USES_S3: bool = false;
    /// Lists the organization's accounts (GetUsername's function).
    const USES_ORGANIZATIONS: bool = false;
    /// Calls IAM (every stage but the batch helper): its process takes the
    /// deployment's IAM budget (a DynamoDB client) and the sessions into
    /// member accounts. A stage without IAM calls links neither (its
    /// context's IAM client is the plain one, never called, and its role has
    /// no IAM rights), and refuses a payload placed in another account.
    const CALLS_IAM: bool = true;
    type Request: DeserializeOwned;
    type Response: Serialize + Timed;
    /// Who the request is about: the span's user, and what the workflow
    /// check compares with the execution's input ([`crate::workflow::check_user`]).
    fn subject(request: &Self::Request) -> Subject<'_>;
    /// The request inside a Lambda payload, without the envelope the state
    /// machine puts around it (the execution's id is taken out before).
    fn unwrap_payload(payload: Value) -> Value {
        payload
    }
    fn run(ctx: &StageContext, request: Self::Request) -> impl Future<Output = Result<Self::Response, OffboardError>>;
}

/// Responses record how long their stage took.
pub trait Timed {
    fn set_duration_ms(&mut self, duration_ms: u64);
}

/// Runs one stage inside a span carrying the stage and user name, and
/// stamps the response with the stage's duration.
pub async fn invoke<S: Stage>(ctx: &StageContext, request: S::Request) -> Result<S::Response, OffboardError> {
    let span = tracing::info_span!("stage", stage = S::NAME, user_name = tracing::field::Empty);
    if let Some(user_name) = S::subject(&request).user_name {
        span.record("user_name", user_name);
    }
    let started = Instant::now();
    let run = S::run(ctx, request).instrument(span.clone());
    // Backstop for calls not guarded by `deadline::before_stop`, a second
    // later so that a removal stage's own itemised error comes first.
    let result = match deadline::current() {
        Some(at) => tokio::time::timeout_at(at + std::time::Duration::from_secs(1), run)
            .await
            .unwrap_or_else(|_| Err(deadline::out_of_time(S::NAME))),
        None => run.await,
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    let _entered = span.enter();
    match result {
        Ok(mut response) => {
            response.set_duration_ms(duration_ms);
            tracing::info!(duration_ms, "stage succeeded");
            Ok(response)
        }
        Err(error) => {
            tracing::error!(error_type = error.name(), error = %error, duration_ms, "stage failed");
            Err(error)
        }
    }
}

/// Parses a stage's JSON payload; a malformed one is `InvalidInput`.
pub fn parse_request<S: Stage>(payload: Value) -> Result<S::Request, OffboardError> {
    serde_json::from_value(payload)
        .map_err(|error| OffboardError::InvalidInput(format!("{} input is malformed: {error}", S::NAME)))
}

impl StageContext {
    /// A Lambda function's context: its AWS configuration
    /// ([`clients::lambda_config`]), the `OFFBOARD_PROTECTED_*` variables and
    /// the IAM budget (`OFFBOARD_IAM_*`, see [`crate::budget`]). A bad
    /// protection or budget configuration is refused here, at init.
    /// The S3 client only for a stage that uses it ([`Stage::USES_S3`], a
    /// constant): the other binaries then link no S3 code at all.
    pub fn from_env<S: Stage>(config: &SdkConfig) -> Result<Self, OffboardError> {
        let protection = ProtectionPolicy::from_env()?;
        // Checked in every function, so that a bad budget setting is refused
        // at deploy time whichever function the template gives it to.
        let budget_config = BudgetConfig::from_env()?;
        let mut ctx = if S::CALLS_IAM {
            // The schedule's table is the deployment's: its DynamoDB client has
            // the function's own credentials, also for calls into other accounts.
            let budget = budget_config.map(|budget| IamBudget::new(aws_sdk_dynamodb::Client::new(config), budget));
            let sessions = AccountSessions::from_env(config, budget.clone(), S::NAME)?.map(Arc::new);
            let iam = clients::budgeted_iam_client(config, budget);
            let mut ctx = Self::from_clients(iam, aws_sdk_sts::Client::new(config), protection);
            ctx.sessions = sessions;
            ctx
        } else {
            Self::new(config, protection)
        };
        if S::USES_S3 {
            ctx.s3 = Some(clients::s3_client(config));
        }
        if S::USES_ORGANIZATIONS {
            ctx.organizations = Some(aws_sdk_organizations::Client::new(config));
            ctx.account_concurrency = account_concurrency_from_env()?;
        }
        Ok(ctx)
    }
}
