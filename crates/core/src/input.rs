//! The execution input GetUsername accepts, validated before any IAM call.

use aws_sdk_iam::primitives::{DateTime, DateTimeFormat as Format};
use serde_json::{Map, Value};

use crate::errors::{invalid_input as invalid, OffboardError};

/// Far above any legitimate input, far below Step Functions' 256 KB limit.
pub const MAX_INPUT_BYTES: usize = 16 * 1024;

/// How the caller named the user to offboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRef {
    Name(String),
    Id(String),
}

impl std::fmt::Display for UserRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Name(name) => write!(f, "user {name}"),
            Self::Id(id) => write!(f, "user id {id}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OffboardRequest {
    pub user: UserRef,
    pub dry_run: bool,
    /// The caller's free-form data, carried unchanged into the audit record.
    pub context: Value,
    /// A quarantine's end (`GraceDays` or `DeleteAfter`): disable at once,
    /// delete then. `None`: delete now.
    pub delete_after: Option<DateTime>,
}

/// A standard workflow runs for at most one year (Step Functions quotas,
/// "Maximum execution time"), and the deletion after the wait must fit in
/// the same execution: a day is kept for it.
pub const MAX_GRACE_DAYS: i64 = 364;
const DAY_SECONDS: i64 = 86_400;

/// The input field naming the execution that started this one (an org-wide
/// offboarding's or a batch's child), as Step Functions' developer guide
/// suggests (`"AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$": "$$.Execution.Id"`);
/// the functions act only while that parent runs ([`crate::workflow`]).
pub const PARENT_FIELD: &str = "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID";

const PLAIN_FIELDS: &[&str] = &["UserName", "IAMUserId", "DryRun", "Context", "GraceDays", "DeleteAfter", PARENT_FIELD];
const EVENT_FIELDS: &[&str] =
    &["version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"];
const CONFIG_DETAIL_TYPE: &str = "Config Rules Compliance Change";

/// The characters IAM allows in user, role and role session names:
/// `[A-Za-z0-9_+=,.@-]` (`[\w+=,.@-]`).
pub fn is_iam_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

/// IAM user names: 1–64 characters of `[A-Za-z0-9_+=,.@-]`.
pub fn validate_user_name(name: &str) -> Result<(), OffboardError> {
    if name.is_empty() || name.len() > 64 || !name.chars().all(is_iam_name_char) {
        return Err(invalid(format!(
            "UserName {name:?} is not an IAM user name: it must be 1-64 characters of letters, digits and _+=,.@-"
        )));
    }
    Ok(())
}

/// The user name of a stage's request, validated.
pub fn checked_user_name(user_name: &str) -> Result<&str, OffboardError> {
    validate_user_name(user_name).map(|()| user_name)
}

/// IAM user ids: `AIDA` followed by upper-case letters and digits.
pub fn validate_user_id(id: &str) -> Result<(), OffboardError> {
    let rest = id.strip_prefix("AIDA").unwrap_or("");
    if rest.is_empty() || id.len() > 128 || !rest.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()) {
        return Err(invalid(format!("IAMUserId {id:?} is not an IAM user id: it must match ^AIDA[A-Z0-9]+$")));
    }
    Ok(())
}

/// The Step Functions execution name for offboarding a user, so that a
/// second offboarding of the same user is refused as a duplicate name.
/// IAM user names are unique regardless of case, so `Alice` and `alice` get
/// one name; StartExecution's guidance for logged executions allows only
/// `[0-9A-Za-z_-]` (80 at most), so other characters become `_` and a short
/// hash of the canonical name keeps `a.b` and `a_b` apart.
pub fn execution_name_for(user: &UserRef) -> String {
    let canonical = match user {
        UserRef::Name(name) => name.to_ascii_lowercase(),
        UserRef::Id(id) => id.clone(),
    };
    let visible: String =
        canonical.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    format!("{visible}-{:08x}", fnv1a32(canonical.as_bytes()))
}

/// FNV-1a, 32 bits: stable across releases and platforms, unlike std's hasher.
fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, byte| (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193))
}

/// Parses the execution input: `{"UserName"}` or `{"IAMUserId"}` with
/// optional `DryRun`, `Context` and a grace period (`GraceDays` or
/// `DeleteAfter`), or an AWS Config compliance-change event for an
/// `AWS::IAM::User`. Anything else is `InvalidInput`.
pub fn parse_execution_input(input: &Value) -> Result<OffboardRequest, OffboardError> {
    parse_execution_input_at(input, DateTime::from(std::time::SystemTime::now()))
}

/// [`parse_execution_input`] as of `now`.
pub fn parse_execution_input_at(input: &Value, now: DateTime) -> Result<OffboardRequest, OffboardError> {
    let size = serde_json::to_vec(input).map(|bytes| bytes.len()).unwrap_or(usize::MAX);
    if size > MAX_INPUT_BYTES {
        return Err(invalid(format!("input is {size} bytes; at most {MAX_INPUT_BYTES} are accepted")));
    }
    let Value::Object(fields) = input else {
        return Err(invalid(format!(
            "input must be a JSON object such as {{\"UserName\": \"alice\"}}, got {}",
            json_type(input)
        )));
    };
    if fields.contains_key("detail") || fields.contains_key("detail-type") {
        parse_config_event(fields)
    } else {
        parse_plain_input(fields, now)
    }
}

/// The RFC 3339 UTC form used in the input, the plan and the quarantine tag.
pub fn format_timestamp(at: DateTime) -> String {
    at.fmt(Format::DateTime).unwrap_or_default()
}

/// An ISO-8601 UTC timestamp (RFC 3339 ending in `Z`), as Step Functions'
/// Wait state takes it.
pub fn parse_timestamp(text: &str, field: &str) -> Result<DateTime, OffboardError> {
    DateTime::from_str(text, Format::DateTime).ok().filter(|_| text.ends_with('Z')).ok_or_else(|| {
        invalid(format!("{field} {text:?} is not an ISO-8601 UTC timestamp such as 2026-12-31T17:00:00Z"))
    })
}

/// An org-wide offboarding's child (an input naming its parent) may start
/// after its `DeleteAfter`: the parent checked that time when it started and
/// every account shares it ([`crate::fanout`]); such a child quarantines and
/// deletes without waiting, rather than be refused in that one account.
fn parse_grace(fields: &Map<String, Value>, now: DateTime) -> Result<Option<DateTime>, OffboardError> {
    match (fields.get("GraceDays"), fields.get("DeleteAfter")) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(invalid("input has both GraceDays and DeleteAfter; give at most one")),
        (Some(days), None) => match days.as_i64() {
            Some(days) if (1..=MAX_GRACE_DAYS).contains(&days) => {
                Ok(Some(DateTime::from_secs(now.secs() + days * DAY_SECONDS)))
            }
            _ => {
                Err(invalid(format!("GraceDays must be a whole number of days from 1 to {MAX_GRACE_DAYS}, got {days}")))
            }
        },
        (None, Some(at)) => {
            let text = expect_str(at, "DeleteAfter")?;
            let at = parse_timestamp(text, "DeleteAfter")?;
            if at.secs() < now.secs() && !fields.contains_key(PARENT_FIELD) {
                return Err(invalid(format!("DeleteAfter {text} is in the past (now is {})", format_timestamp(now))));
            }
            if at.secs() > now.secs() + MAX_GRACE_DAYS * DAY_SECONDS {
                return Err(invalid(format!("DeleteAfter {text} is more than {MAX_GRACE_DAYS} days ahead")));
            }
            Ok(Some(DateTime::from_secs(at.secs())))
        }
    }
}

fn parse_plain_input(fields: &Map<String, Value>, now: DateTime) -> Result<OffboardRequest, OffboardError> {
    reject_unknown_fields(fields, PLAIN_FIELDS, "input")?;
    let user = match (fields.get("UserName"), fields.get("IAMUserId")) {
        (Some(_), Some(_)) => return Err(invalid("input names both UserName and IAMUserId; give exactly one")),
        (None, None) => return Err(invalid("input names no user; give UserName or IAMUserId")),
        (Some(name), None) => {
            let name = expect_str(name, "UserName")?;
            validate_user_name(name)?;
            UserRef::Name(name.to_string())
        }
        (None, Some(id)) => {
            let id = expect_str(id, "IAMUserId")?;
            validate_user_id(id)?;
            UserRef::Id(id.to_string())
        }
    };
    let dry_run = match fields.get("DryRun") {
        None => false,
        Some(Value::Bool(flag)) => *flag,
        Some(other) => return Err(invalid(format!("DryRun must be true or false, got {}", json_type(other)))),
    };
    let context = match fields.get("Context") {
        None => Value::Null,
        Some(context @ Value::Object(_)) => context.clone(),
        Some(other) => return Err(invalid(format!("Context must be a JSON object, got {}", json_type(other)))),
    };
    let delete_after = parse_grace(fields, now)?;
    if let Some(parent) = fields.get(PARENT_FIELD) {
        let parent = expect_str(parent, PARENT_FIELD)?;
        if !is_execution_arn(parent) {
            return Err(invalid(format!("{PARENT_FIELD} {parent:?} is not a Step Functions execution ARN")));
        }
    }
    Ok(OffboardRequest { user, dry_run, context, delete_after })
}

fn parse_config_event(fields: &Map<String, Value>) -> Result<OffboardRequest, OffboardError> {
    reject_unknown_fields(fields, EVENT_FIELDS, "EventBridge event")?;
    let detail_type = fields.get("detail-type").map(|v| expect_str(v, "detail-type")).transpose()?;
    if detail_type != Some(CONFIG_DETAIL_TYPE) {
        return Err(invalid(format!(
            "EventBridge event detail-type must be {CONFIG_DETAIL_TYPE:?}, got {detail_type:?}"
        )));
    }
    let Some(Value::Object(detail)) = fields.get("detail") else {
        return Err(invalid("EventBridge event has no detail object"));
    };
    let resource_type = detail.get("resourceType").and_then(Value::as_str);
    if resource_type != Some("AWS::IAM::User") {
        return Err(invalid(format!(
            "detail.resourceType must be \"AWS::IAM::User\", got {resource_type:?}; only IAM users are offboarded"
        )));
    }
    let compliance =
        detail.get("newEvaluationResult").and_then(|result| result.get("complianceType")).and_then(Value::as_str);
    if compliance != Some("NON_COMPLIANT") {
        return Err(invalid(format!(
            "detail.newEvaluationResult.complianceType must be NON_COMPLIANT, got {compliance:?}; a compliant user is not offboarded"
        )));
    }
    let id = detail
        .get("resourceId")
        .ok_or_else(|| invalid("detail.resourceId (the IAM user id) is missing"))
        .and_then(|id| expect_str(id, "detail.resourceId"))?;
    validate_user_id(id)?;
    let mut context = Map::new();
    context.insert("Source".into(), fields.get("source").cloned().unwrap_or(Value::Null));
    context.insert("EventId".into(), fields.get("id").cloned().unwrap_or(Value::Null));
    context.insert("ConfigRuleName".into(), detail.get("configRuleName").cloned().unwrap_or(Value::Null));
    Ok(OffboardRequest {
        user: UserRef::Id(id.to_string()),
        dry_run: false,
        context: Value::Object(context),
        delete_after: None,
    })
}

/// `arn:<partition>:states:<region>:<account>:execution:<machine>:<name>`.
pub fn is_execution_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.split(':').collect();
    parts.len() == 8
        && parts[0] == "arn"
        && parts[2] == "states"
        && parts[5] == "execution"
        && parts[6..].iter().all(|part| !part.is_empty())
}

fn reject_unknown_fields(fields: &Map<String, Value>, known: &[&str], what: &str) -> Result<(), OffboardError> {
    match fields.keys().find(|key| !known.contains(&key.as_str())) {
        Some(unknown) => {
            Err(invalid(format!("{what} has unknown field {unknown:?}; accepted fields are {}", known.join(", "))))
        }
        None => Ok(()),
    }
}

fn expect_str<'a>(value: &'a Value, field: &str) -> Result<&'a str, OffboardError> {
    value.as_str().ok_or_else(|| invalid(format!("{field} must be a string, got {}", json_type(value))))
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config_event(resource_id: &str) -> Value {
        json!({
            "version": "0",
            "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
            "detail-type": "Config Rules Compliance Change",
            "source": "aws.config",
            "account": "123456789012",
            "time": "2026-11-01T12:00:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": {
                "resourceId": resource_id,
                "awsRegion": "us-east-1",
                "awsAccountId": "123456789012",
                "configRuleName": "iam-user-unused-credentials-check",
                "recordVersion": "1.0",
                "configRuleARN": "arn:aws:config:us-east-1:123456789012:config-rule/config-rule-abc",
                "messageType": "ComplianceChangeNotification",
                "notificationCreationTime": "2026-11-01T12:00:00Z",
                "resourceType": "AWS::IAM::User",
                "newEvaluationResult": {"complianceType": "NON_COMPLIANT"}
            }
        })
    }

    #[test]
    fn accepts_the_three_shapes() {
        let by_name = parse_execution_input(&json!({"UserName": "alice.o'neil"}));
        assert!(by_name.is_err(), "apostrophe is not an IAM name character");
        let by_name = parse_execution_input(&json!({"UserName": "a+b=c,d.e@f-g_h"})).unwrap();
        assert_eq!(by_name.user, UserRef::Name("a+b=c,d.e@f-g_h".into()));
        assert!(!by_name.dry_run);

        let by_id = parse_execution_input(
            &json!({"IAMUserId": "AIDAEXAMPLE1234567890", "DryRun": true, "Context": {"Ticket": "OPS-1"}}),
        )
        .unwrap();
        assert_eq!(by_id.user, UserRef::Id("AIDAEXAMPLE1234567890".into()));
        assert!(by_id.dry_run);
        assert_eq!(by_id.context, json!({"Ticket": "OPS-1"}));

        let from_event = parse_execution_input(&config_event("AIDAEXAMPLE1234567890")).unwrap();
        assert_eq!(from_event.user, UserRef::Id("AIDAEXAMPLE1234567890".into()));
        assert_eq!(from_event.context["ConfigRuleName"], "iam-user-unused-credentials-check");
        assert!(!from_event.dry_run);
    }

    #[test]
    fn execution_names_are_case_insensitive_safe_and_distinct() {
        let name = |n: &str| execution_name_for(&UserRef::Name(n.into()));
        assert_eq!(name("alice"), name("Alice"));
        assert_eq!(name("ALICE"), name("alice"));
        assert_ne!(name("a.b"), name("a_b"));
        assert_ne!(name("a,b"), name("a@b"));
        assert_eq!(name("alice"), "alice-872213e7", "the README's example");
        assert!(name("a-b_c").starts_with("a-b_c-"), "- and _ are kept as they are");
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        for n in ["a+b=c,d.e@f-g_h", &"W".repeat(64), "x"] {
            let made = name(n);
            assert!(made.len() <= 80, "{made}");
            assert!(made.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{made}");
        }
        let by_id = execution_name_for(&UserRef::Id("AIDAEXAMPLE1234567890".into()));
        assert!(by_id.starts_with("AIDAEXAMPLE1234567890-"), "{by_id}");
    }

    #[test]
    fn a_grace_period_is_days_or_a_utc_timestamp_within_a_year() {
        let now = DateTime::from_str("2026-11-25T08:00:00Z", Format::DateTime).unwrap();
        let at = |input: Value| parse_execution_input_at(&input, now).map(|r| r.delete_after.map(format_timestamp));
        assert_eq!(at(json!({"UserName": "a"})).unwrap(), None);
        assert_eq!(at(json!({"UserName": "a", "GraceDays": 1})).unwrap().as_deref(), Some("2026-11-26T08:00:00Z"));
        assert_eq!(at(json!({"UserName": "a", "GraceDays": 364})).unwrap().as_deref(), Some("2027-11-24T08:00:00Z"));
        assert_eq!(
            at(json!({"UserName": "a", "DeleteAfter": "2026-11-25T08:00:00Z"})).unwrap().as_deref(),
            Some("2026-11-25T08:00:00Z")
        );
        assert_eq!(
            at(json!({"UserName": "a", "DeleteAfter": "2027-11-24T08:00:00Z"})).unwrap().as_deref(),
            Some("2027-11-24T08:00:00Z")
        );
        // A child of an org-wide offboarding keeps its parent's time, even once past.
        let parent = "arn:aws:states:us-east-1:123456789012:execution:offboard:a-org";
        assert_eq!(
            at(json!({"UserName": "a", "DeleteAfter": "2026-11-25T07:59:59Z", PARENT_FIELD: parent}))
                .unwrap()
                .as_deref(),
            Some("2026-11-25T07:59:59Z")
        );
        assert!(at(json!({"UserName": "a", "DeleteAfter": "2027-11-24T08:00:01Z", PARENT_FIELD: parent})).is_err());
        for bad in [
            json!({"UserName": "a", "GraceDays": 0}),
            json!({"UserName": "a", "GraceDays": 365}),
            json!({"UserName": "a", "GraceDays": 1.5}),
            json!({"UserName": "a", "GraceDays": "7"}),
            json!({"UserName": "a", "GraceDays": -1}),
            json!({"UserName": "a", "GraceDays": 7, "DeleteAfter": "2026-12-01T00:00:00Z"}),
            json!({"UserName": "a", "DeleteAfter": "2026-11-25T07:59:59Z"}),
            json!({"UserName": "a", "DeleteAfter": "2027-11-24T08:00:01Z"}),
            json!({"UserName": "a", "DeleteAfter": "2026-12-01T00:00:00+01:00"}),
            json!({"UserName": "a", "DeleteAfter": "next week"}),
            json!({"UserName": "a", "DeleteAfter": 1764057600}),
        ] {
            assert_eq!(at(bad.clone()).unwrap_err().name(), "InvalidInput", "{bad}");
        }
    }

    #[test]
    fn sixty_four_character_names_are_the_limit() {
        assert!(validate_user_name(&"a".repeat(64)).is_ok());
        assert!(validate_user_name(&"a".repeat(65)).is_err());
    }

    /// The shared fixture (also run end to end) plus an oversized input.
    pub(crate) fn malformed_inputs() -> Vec<Value> {
        let cases: Vec<Value> =
            serde_json::from_str(include_str!("../../../tests/fixtures/malformed-inputs.json")).unwrap();
        let mut inputs: Vec<Value> = cases.into_iter().map(|case| case["Input"].clone()).collect();
        inputs.push(json!({"UserName": "alice", "Context": {"Blob": "x".repeat(MAX_INPUT_BYTES)}}));
        inputs
    }

    #[test]
    fn malformed_inputs_are_invalid_input() {
        let inputs = malformed_inputs();
        assert!(inputs.len() >= 30);
        for input in inputs {
            match parse_execution_input(&input) {
                Err(OffboardError::InvalidInput(message)) => assert!(!message.is_empty()),
                other => panic!("{input} gave {other:?}, expected InvalidInput"),
            }
        }
    }

    #[test]
    fn messages_name_the_offending_field() {
        let err = parse_execution_input(&json!({"UserName": "alice", "Dryrun": true})).unwrap_err();
        assert!(err.to_string().contains("\"Dryrun\""), "{err}");
        let err = parse_execution_input(&json!({"IAMUserId": "nope"})).unwrap_err();
        assert!(err.to_string().contains("IAMUserId"), "{err}");
    }
}
