//! Only the workflow may act. A stage function's IAM powers serve one
//! purpose: the step a RUNNING execution of this deployment's state machines
//! is at, the step that invoked it. A direct `lambda:Invoke` (PowerUserAccess
//! grants it, without any IAM right of its own) must not be able to use them
//! to read one person's policies, strip one person's MFA, or detach a
//! guardrail while the credentials stay.
//!
//! The state machine adds the execution's id (`$$.Execution.Id`) to every
//! payload as [`EXECUTION_ID_FIELD`]. Before any IAM call the function asks
//! Step Functions, and refuses with `NotFromWorkflow` unless:
//! - the execution belongs to one of this deployment's state machines
//!   ([`ENV_STATE_MACHINE_ARNS`]) and is `RUNNING` (DescribeExecution);
//! - the execution is at this very step: its history, newest first, has a
//!   `LambdaFunctionScheduled` event for this function whose input is this
//!   payload exactly, and no result for it yet (GetExecutionHistory). So a
//!   RUNNING execution for the same user, one waiting out a grace period
//!   say, cannot lend its id to a direct invoke: its pending step, if any,
//!   is not that payload. A caller can at most repeat, while the workflow
//!   runs it, the very step the workflow is running;
//! - the execution's input names this user (by name, regardless of case, or
//!   by id) and, for an org-wide child, this account ([`check_user`], [`check_account`]);
//! - an execution that names its parent ([`PARENT_FIELD`]: an org-wide
//!   offboarding's or a batch's children) has a RUNNING parent of this
//!   deployment too.
//!
//! Step Functions' API reference: DescribeExecution returns `status`,
//! `stateMachineArn` and `input`; GetExecutionHistory takes `reverseOrder`
//! and `maxResults` (up to 1000) and returns events with `id`,
//! `previousEventId` and, for a Lambda task, `lambdaFunctionScheduledEventDetails`
//! (`resource`, `input`, `inputDetails.truncated`); the Started event follows
//! its Scheduled event, and the Succeeded, Failed or TimedOut event its
//! Started event (`previousEventId`).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent, HistoryEventType};
use serde_json::Value;

use aws_sdk_sfn::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::errors::{classify_sdk_error, is_throttling_code, OffboardError};
use crate::input::PARENT_FIELD;
use crate::sessions::Placement;

/// This deployment's state machines, comma-separated ARNs (the template sets
/// both: the offboarding machine and the batch machine).
pub const ENV_STATE_MACHINE_ARNS: &str = "OFFBOARD_STATE_MACHINE_ARNS";
/// The field every payload carries: the execution's id, `$$.Execution.Id`.
pub const EXECUTION_ID_FIELD: &str = "ExecutionId";

/// Events read in the first page of the history: the pending step is among
/// the newest (a Lambda task's Scheduled and Started events, or a few more
/// while the MFA Map's iterations run together). Each event carries its
/// data, and a late step's inputs are large: one page of 200 events read
/// 0.5 MiB at DeleteIAMUserAndVerify.
const FIRST_PAGE: i32 = 25;
/// Events per later page, when the first did not reach the step.
const LATER_PAGE: i32 = 200;
/// Pages read at most before the step counts as not found: 825 events,
/// far more than the steps after the newest pending task.
const HISTORY_PAGES: usize = 5;
/// How long a parent found RUNNING is taken as running: a batch's children
/// ask for the same parent at every step. Step Functions also stops a
/// `.sync` child when its parent is stopped (developer guide, "Start a new
/// AWS Step Functions state machine from a running execution").
const PARENT_SEEN_FOR: Duration = Duration::from_secs(60);
/// Reads of the history before refusing: the scheduled event is written
/// before Step Functions invokes the function, but a read that does not see
/// it yet is tried again rather than failing the execution.
const HISTORY_READS: [Duration; 3] = [Duration::ZERO, Duration::from_millis(250), Duration::from_millis(1000)];

/// Confirms that an invocation comes from a RUNNING execution of this
/// deployment, at the step that invoked the function.
#[derive(Debug, Clone)]
pub struct WorkflowGuard {
    sfn: aws_sdk_sfn::Client,
    state_machines: Vec<String>,
    /// Parents found RUNNING, and when.
    parents_running: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Instant>>>,
}

/// What an admitted invocation is part of.
#[derive(Debug, Clone, PartialEq)]
pub struct Admission {
    pub execution_arn: String,
    /// The execution's input, for [`check_user`] and [`check_account`].
    pub input: Value,
    /// How long the checks took.
    pub duration: Duration,
}

fn refused(why: impl std::fmt::Display) -> OffboardError {
    OffboardError::NotFromWorkflow(format!(
        "{why}. This function acts only for a running execution of this deployment's state machines, at the step that invoked it; nothing was changed. Start an offboarding with StartExecution (offboard start) instead."
    ))
}

/// `arn:<p>:states:<region>:<account>:execution:<machine>:<name>` →
/// `arn:<p>:states:<region>:<account>:stateMachine:<machine>`. `None` for
/// anything else (a Map Run's child, `execution:<machine>/<label>:<id>`, too:
/// no stage function runs in one).
pub fn state_machine_of(execution_arn: &str) -> Option<String> {
    let parts: Vec<&str> = execution_arn.split(':').collect();
    match parts.as_slice() {
        ["arn", partition, "states", region, account, "execution", machine, name]
            if !machine.is_empty() && !machine.contains('/') && !name.is_empty() =>
        {
            Some(format!("arn:{partition}:states:{region}:{account}:stateMachine:{machine}"))
        }
        _ => None,
    }
}

/// A failed Step Functions call of the check: throttling (KMS's too, for an
/// execution encrypted with a customer key) is `Throttled` and a server-side
/// failure `ServiceUnavailable`, both retried by the state machine; anything
/// else (ExecutionDoesNotExist, InvalidArn, a denial) means the invocation
/// cannot be shown to come from the workflow.
fn step_functions_error<E>(error: SdkError<E, HttpResponse>, action: &str, execution_arn: &str) -> OffboardError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = error.code().unwrap_or_default().to_string();
    if is_throttling_code(&code) || code == "KmsThrottlingException" {
        return OffboardError::Throttled(format!(
            "{action} on {execution_arn} was throttled ({code}) while confirming that the workflow invoked this function. Transient: retried with backoff."
        ));
    }
    let server_side = matches!(&error, SdkError::ServiceError(context) if context.raw().status().is_server_error());
    if server_side
        || matches!(error, SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_))
    {
        return classify_sdk_error(error, action, execution_arn);
    }
    refused(format!(
        "Step Functions answered {action} on {execution_arn} with {code}: {}",
        error.message().unwrap_or_default()
    ))
}

impl WorkflowGuard {
    /// A guard admitting executions of `state_machines`; an ARN that is not a
    /// state machine's is refused (a configuration that protects nothing).
    pub fn new(sfn: aws_sdk_sfn::Client, state_machines: Vec<String>) -> Result<Self, OffboardError> {
        let valid = |arn: &String| {
            let parts: Vec<&str> = arn.split(':').collect();
            parts.len() == 7
                && parts[0] == "arn"
                && parts[2] == "states"
                && parts[5] == "stateMachine"
                && !parts[6].is_empty()
        };
        if state_machines.is_empty() || !state_machines.iter().all(valid) {
            return Err(OffboardError::InvalidInput(format!(
                "{ENV_STATE_MACHINE_ARNS} holds {state_machines:?}: it must list this deployment's state machine ARNs (arn:<partition>:states:<region>:<account>:stateMachine:<name>), comma-separated. Fix the configuration; nothing is offboarded until then."
            )));
        }
        Ok(Self { sfn, state_machines, parents_running: Default::default() })
    }

    /// The guard of a Lambda function, from [`ENV_STATE_MACHINE_ARNS`]: a
    /// function without it refuses to start.
    pub fn from_env(config: &aws_config::SdkConfig) -> Result<Self, OffboardError> {
        let listed = std::env::var(ENV_STATE_MACHINE_ARNS).unwrap_or_default();
        let arns = listed.split(',').map(str::trim).filter(|arn| !arn.is_empty()).map(String::from).collect();
        Self::new(aws_sdk_sfn::Client::new(config), arns)
    }

    fn parent_seen_running(&self, parent: &str) -> bool {
        let mut seen = self.parents_running.lock().unwrap_or_else(|e| e.into_inner());
        seen.retain(|_, at| at.elapsed() < PARENT_SEEN_FOR);
        seen.contains_key(parent)
    }

    fn is_ours(&self, state_machine_arn: &str) -> bool {
        self.state_machines.iter().any(|ours| ours == state_machine_arn)
    }

    /// Admits `payload`, received by the function `function_arn`, or refuses
    /// it with `NotFromWorkflow` before anything is changed. Step Functions
    /// throttling or outages are `Throttled` / `ServiceUnavailable`, which the
    /// state machine retries.
    pub async fn admit(&self, function_arn: &str, payload: &Value) -> Result<Admission, OffboardError> {
        let started = Instant::now();
        let execution_arn = payload
            .get(EXECUTION_ID_FIELD)
            .and_then(Value::as_str)
            .ok_or_else(|| refused(format!("the payload names no {EXECUTION_ID_FIELD}")))?;
        let machine = state_machine_of(execution_arn).filter(|machine| self.is_ours(machine)).ok_or_else(|| {
            refused(format!("{execution_arn} is not an execution of this deployment's state machines"))
        })?;
        let (input, ()) = tokio::try_join!(
            self.running_input(execution_arn, &machine),
            self.find_pending_step(execution_arn, function_arn, payload)
        )?;
        if let Some(parent) = input.get(PARENT_FIELD) {
            let parent = parent.as_str().ok_or_else(|| refused(format!("{PARENT_FIELD} is not an execution ARN")))?;
            let parent_machine = state_machine_of(parent)
                .filter(|machine| self.is_ours(machine))
                .ok_or_else(|| refused(format!("the parent {parent} is not an execution of this deployment")))?;
            if !self.parent_seen_running(parent) {
                self.running_input(parent, &parent_machine).await?;
                self.parents_running
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(parent.to_string(), Instant::now());
            }
        }
        let duration = started.elapsed();
        tracing::info!(
            execution_arn,
            check_ms = duration.as_millis() as u64,
            "invocation admitted: its execution is at this step"
        );
        Ok(Admission { execution_arn: execution_arn.to_string(), input, duration })
    }

    /// The input of `execution_arn`, which must be RUNNING and of `machine`.
    async fn running_input(&self, execution_arn: &str, machine: &str) -> Result<Value, OffboardError> {
        let execution = self
            .sfn
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .map_err(|error| step_functions_error(error, "states:DescribeExecution", execution_arn))?;
        if execution.state_machine_arn() != machine {
            return Err(refused(format!("{execution_arn} belongs to {}", execution.state_machine_arn())));
        }
        if execution.status() != &ExecutionStatus::Running {
            return Err(refused(format!("execution {execution_arn} is {}, not RUNNING", execution.status().as_str())));
        }
        let input = execution.input().unwrap_or("null");
        serde_json::from_str(input)
            .map_err(|error| refused(format!("execution {execution_arn}'s input is not JSON: {error}")))
    }

    /// Finds, in the newest events of the history, the pending
    /// `LambdaFunctionScheduled` event of this function with this payload.
    async fn find_pending_step(
        &self,
        execution_arn: &str,
        function_arn: &str,
        payload: &Value,
    ) -> Result<(), OffboardError> {
        let mut last_reason = String::new();
        for wait in HISTORY_READS {
            tokio::time::sleep(wait).await;
            match self.pending_step_in_history(execution_arn, function_arn, payload).await? {
                Ok(()) => return Ok(()),
                Err(NotFound::Ended(reason)) => return Err(refused(reason)),
                Err(NotFound::NotYet(reason)) => last_reason = reason,
            }
        }
        Err(refused(last_reason))
    }

    /// One read of the history: `Ok(Err(_))` when the step is not found.
    async fn pending_step_in_history(
        &self,
        execution_arn: &str,
        function_arn: &str,
        payload: &Value,
    ) -> Result<Result<(), NotFound>, OffboardError> {
        let mut pending = PendingSteps::default();
        let mut token: Option<String> = None;
        for page_number in 0..HISTORY_PAGES {
            let page = self
                .sfn
                .get_execution_history()
                .execution_arn(execution_arn)
                .reverse_order(true)
                .include_execution_data(true)
                .max_results(if page_number == 0 { FIRST_PAGE } else { LATER_PAGE })
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|error| step_functions_error(error, "states:GetExecutionHistory", execution_arn))?;
            for event in page.events() {
                match pending.read(event, function_arn, payload) {
                    Reading::Found => return Ok(Ok(())),
                    Reading::Ended(reason) => return Ok(Err(NotFound::Ended(reason))),
                    Reading::Started(reason) => return Ok(Err(NotFound::NotYet(reason))),
                    Reading::Going => {}
                }
            }
            match page.next_token() {
                Some(next) => token = Some(next.to_string()),
                None => break,
            }
        }
        Ok(Err(NotFound::NotYet(format!(
            "execution {execution_arn} is not at a step of this function ({function_arn}) with this payload"
        ))))
    }
}

/// The history read newest first: which Lambda steps already have a result.
#[derive(Debug, Default)]
struct PendingSteps {
    /// Started events whose result was read (by id).
    started_with_result: HashSet<i64>,
    /// Scheduled events that have a result (by id).
    scheduled_with_result: HashSet<i64>,
}

enum Reading {
    Found,
    /// The execution has ended: no step of it is pending.
    Ended(String),
    /// Its start was reached without the step: not pending, or not yet
    /// visible in the history (read again).
    Started(String),
    Going,
}

/// Why the step was not found in one read of the history.
enum NotFound {
    /// The execution has ended: final.
    Ended(String),
    /// Perhaps not visible yet: read again before refusing.
    NotYet(String),
}

impl PendingSteps {
    fn read(&mut self, event: &HistoryEvent, function_arn: &str, payload: &Value) -> Reading {
        use HistoryEventType as T;
        match event.r#type() {
            T::ExecutionSucceeded | T::ExecutionFailed | T::ExecutionAborted | T::ExecutionTimedOut => {
                Reading::Ended(format!("the execution has ended ({})", event.r#type().as_str()))
            }
            T::ExecutionStarted => Reading::Started("the execution has no pending step for this function".into()),
            T::LambdaFunctionSucceeded | T::LambdaFunctionFailed | T::LambdaFunctionTimedOut => {
                self.started_with_result.insert(event.previous_event_id());
                Reading::Going
            }
            T::LambdaFunctionStarted => {
                if self.started_with_result.contains(&event.id()) {
                    self.scheduled_with_result.insert(event.previous_event_id());
                }
                Reading::Going
            }
            T::LambdaFunctionStartFailed | T::LambdaFunctionScheduleFailed => {
                self.scheduled_with_result.insert(event.previous_event_id());
                Reading::Going
            }
            T::LambdaFunctionScheduled if !self.scheduled_with_result.contains(&event.id()) => {
                match event.lambda_function_scheduled_event_details() {
                    Some(details)
                        if details.resource() == function_arn
                            && !details.input_details().is_some_and(|d| d.truncated())
                            && details.input().and_then(|input| serde_json::from_str::<Value>(input).ok()).as_ref()
                                == Some(payload) =>
                    {
                        Reading::Found
                    }
                    _ => Reading::Going,
                }
            }
            _ => Reading::Going,
        }
    }
}

/// Who a stage's request is about, for [`check_user`], [`check_account`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Subject<'a> {
    pub user_name: Option<&'a str>,
    pub user_id: Option<&'a str>,
}

/// The users an execution input names: `UserName`, `IAMUserId`, or a Config
/// event's `detail.resourceId`.
fn input_names(input: &Value, subject: Subject<'_>) -> bool {
    let by_name = input.get("UserName").and_then(Value::as_str);
    let by_id = input
        .get("IAMUserId")
        .or_else(|| input.get("detail").and_then(|detail| detail.get("resourceId")))
        .and_then(Value::as_str);
    let name_matches = matches!((by_name, subject.user_name), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b));
    let id_matches = matches!((by_id, subject.user_id), (Some(a), Some(b)) if a == b);
    name_matches || id_matches
}

/// The request is about the user its execution's input names (by name,
/// regardless of case, or by id).
pub fn check_user(admission: &Admission, subject: Subject<'_>) -> Result<(), OffboardError> {
    if (subject.user_name.is_some() || subject.user_id.is_some()) && !input_names(&admission.input, subject) {
        return Err(refused(format!(
            "execution {} does not offboard user {}",
            admission.execution_arn,
            subject.user_name.or(subject.user_id).unwrap_or_default()
        )));
    }
    Ok(())
}

impl Admission {
    /// The account of an org-wide offboarding's child: its input names its
    /// parent and its account. `None` for any other execution, which works in
    /// the function's own account (an `Account` in its input is refused as
    /// input later, not here).
    pub fn child_account(&self) -> Option<&str> {
        self.input.get(PARENT_FIELD).and_then(|_| self.input.get("Account")).and_then(Value::as_str)
    }
}

/// The request works where its execution does: a child in its account, any
/// other execution in `home`, the function's own account.
pub fn check_account(admission: &Admission, placement: Option<&Placement>, home: &str) -> Result<(), OffboardError> {
    let asked = placement.map(|placement| placement.account.as_str()).unwrap_or(home);
    let expected = admission.child_account().unwrap_or(home);
    if asked != expected {
        return Err(refused(format!("execution {} works in account {expected}, not {asked}", admission.execution_arn)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executions_name_their_state_machine() {
        assert_eq!(
            state_machine_of("arn:aws:states:us-east-1:123456789012:execution:hub-offboard:alice-872213e7").as_deref(),
            Some("arn:aws:states:us-east-1:123456789012:stateMachine:hub-offboard")
        );
        assert_eq!(
            state_machine_of("arn:aws-us-gov:states:us-gov-west-1:123456789012:execution:m:x").as_deref(),
            Some("arn:aws-us-gov:states:us-gov-west-1:123456789012:stateMachine:m")
        );
        for not_one in [
            "arn:aws:states:us-east-1:123456789012:execution:hub-offboard-batch/OffboardUsers:4f1c",
            "arn:aws:states:us-east-1:123456789012:stateMachine:hub-offboard",
            "arn:aws:states:us-east-1:123456789012:execution:hub-offboard",
            "arn:aws:states:us-east-1:123456789012:execution::x",
            "arn:aws:lambda:us-east-1:123456789012:function:f",
            "",
        ] {
            assert_eq!(state_machine_of(not_one), None, "{not_one}");
        }
    }

    /// Both checks, as the Lambda wiring makes them.
    fn check(
        admission: &Admission,
        subject: Subject<'_>,
        placement: Option<&Placement>,
        home: &str,
    ) -> Result<(), OffboardError> {
        check_user(admission, subject)?;
        check_account(admission, placement, home)
    }

    fn admission(input: Value) -> Admission {
        Admission { execution_arn: "arn:aws:states:r:1:execution:m:e".into(), input, duration: Duration::ZERO }
    }

    #[test]
    fn the_input_must_name_the_user_and_the_account() {
        let by_name = admission(serde_json::json!({"UserName": "Alice"}));
        let alice = Subject { user_name: Some("alice"), user_id: Some("AIDAALICE") };
        let bob = Subject { user_name: Some("bob"), user_id: Some("AIDABOB") };
        assert_eq!(check(&by_name, alice, None, "111122223333"), Ok(()));
        assert_eq!(check(&by_name, bob, None, "111122223333").unwrap_err().name(), "NotFromWorkflow");
        let by_id = admission(serde_json::json!({"IAMUserId": "AIDAALICE"}));
        assert_eq!(check(&by_id, alice, None, "111122223333"), Ok(()));
        assert!(check(&by_id, bob, None, "111122223333").is_err());
        let event = admission(serde_json::json!({"detail-type": "x", "detail": {"resourceId": "AIDABOB"}}));
        assert_eq!(check(&event, bob, None, "111122223333"), Ok(()));
        assert!(check(&event, alice, None, "111122223333").is_err());
        assert_eq!(check(&by_name, Subject::default(), None, "111122223333"), Ok(()), "no user: the input itself");

        let parent = "arn:aws:states:us-east-1:111122223333:execution:hub-offboard:alice";
        let child =
            admission(serde_json::json!({"UserName": "alice", "Account": "444455556666", PARENT_FIELD: parent}));
        let there = Placement { account: "444455556666".into(), execution: "x".into() };
        let elsewhere = Placement { account: "777788889999".into(), execution: "x".into() };
        assert_eq!(check(&child, alice, Some(&there), "111122223333"), Ok(()));
        assert!(check(&child, alice, Some(&elsewhere), "111122223333").is_err());
        assert!(check(&child, alice, None, "111122223333").is_err(), "a child works in its account only");
        assert!(check(&by_name, alice, Some(&there), "111122223333").is_err(), "a hub execution stays home");
        let home = Placement { account: "111122223333".into(), execution: "x".into() };
        assert_eq!(check(&by_name, alice, Some(&home), "111122223333"), Ok(()));
        // An Account in a hub execution's input is the input's problem
        // (InvalidInput when parsed), not a reason to refuse the workflow.
        let odd = admission(serde_json::json!({"UserName": "alice", "Account": "444455556666"}));
        assert_eq!(check(&odd, alice, None, "111122223333"), Ok(()));
        assert!(check(&odd, alice, Some(&there), "111122223333").is_err());
    }

    #[test]
    fn a_guard_needs_state_machine_arns() {
        let sfn = aws_sdk_sfn::Client::from_conf(
            aws_sdk_sfn::Config::builder().behavior_version(aws_sdk_sfn::config::BehaviorVersion::latest()).build(),
        );
        assert!(WorkflowGuard::new(sfn.clone(), vec![]).is_err());
        assert!(WorkflowGuard::new(sfn.clone(), vec!["arn:aws:states:r:1:execution:m:e".into()]).is_err());
        assert!(WorkflowGuard::new(sfn.clone(), vec!["offboard".into()]).is_err());
        assert!(WorkflowGuard::new(
            sfn,
            vec!["arn:aws:states:us-east-1:123456789012:stateMachine:hub-offboard".into()]
        )
        .is_ok());
    }
}
