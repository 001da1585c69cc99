//! Batch offboarding's input: the user list a batch execution names
//! (inline `UserNames`, or an S3 object `UserList` holding a JSON array or a
//! CSV with a `UserName` column), validated as a whole before any child
//! execution starts. One bad entry refuses the batch: a typo must not
//! offboard the other 999 and leave the operator to find the one.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::errors::{classify_sdk_error, invalid_input as invalid, OffboardError};
use crate::input::{execution_name_for, validate_user_name, UserRef};
use crate::stage::Timed;

/// Users per batch: the validated list travels in the execution's state
/// (Step Functions' 256 KiB payload quota), about 130 bytes a user.
pub const MAX_BATCH_USERS: usize = 1_000;
/// Child executions in flight when the input does not say: enough to keep
/// IAM busy, few enough to leave its per-account rate to other work.
pub const DEFAULT_MAX_CONCURRENCY: u32 = 10;
/// A Distributed Map runs at most 10,000 child executions at once.
pub const MAX_CONCURRENCY: u32 = 10_000;

const FIELDS: &[&str] = &["UserNames", "UserList", "MaxConcurrency", "ToleratedFailurePercentage", "DryRun", "Context"];

/// Where the batch's users are listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserSource {
    Inline(Vec<String>),
    S3 { bucket: String, key: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct BatchRequest {
    pub source: UserSource,
    pub max_concurrency: u32,
    /// Percent of children that may fail before the Map gives up; 100 (the
    /// default) means one user's failure never stops the others.
    pub tolerated_failure_percentage: f64,
    /// Applies to every child.
    pub dry_run: bool,
    pub context: Value,
}

/// One child execution: the user and its execution name (the same name a
/// single offboarding of that user gets, so a user already being offboarded
/// is refused as a duplicate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct BatchUser {
    pub user_name: String,
    pub execution_name: String,
}

/// Parses a batch execution's input; anything malformed is `InvalidInput`.
pub fn parse_batch_input(input: &Value) -> Result<BatchRequest, OffboardError> {
    let Value::Object(fields) = input else {
        return Err(invalid("batch input must be a JSON object such as {\"UserNames\": [\"alice\", \"bob\"]}"));
    };
    if let Some(unknown) = fields.keys().find(|key| !FIELDS.contains(&key.as_str())) {
        return Err(invalid(format!(
            "batch input has unknown field {unknown:?}; accepted fields are {}",
            FIELDS.join(", ")
        )));
    }
    let source = match (fields.get("UserNames"), fields.get("UserList")) {
        (Some(_), Some(_)) => return Err(invalid("batch input has both UserNames and UserList; give exactly one")),
        (None, None) => return Err(invalid("batch input names no users; give UserNames or UserList")),
        (Some(Value::Array(names)), None) => UserSource::Inline(
            names
                .iter()
                .enumerate()
                .map(|(at, name)| {
                    name.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| invalid(format!("UserNames[{at}] must be a string, got {name}")))
                })
                .collect::<Result<_, _>>()?,
        ),
        (Some(other), None) => return Err(invalid(format!("UserNames must be an array of user names, got {other}"))),
        (None, Some(Value::Object(list))) => parse_user_list_location(list)?,
        (None, Some(other)) => {
            return Err(invalid(format!("UserList must be {{\"Bucket\": ..., \"Key\": ...}}, got {other}")))
        }
    };
    let max_concurrency = match fields.get("MaxConcurrency") {
        None => DEFAULT_MAX_CONCURRENCY,
        Some(value) => {
            value.as_u64().filter(|n| (1..=u64::from(MAX_CONCURRENCY)).contains(n)).map(|n| n as u32).ok_or_else(
                || invalid(format!("MaxConcurrency must be a whole number from 1 to {MAX_CONCURRENCY}, got {value}")),
            )?
        }
    };
    let tolerated_failure_percentage = match fields.get("ToleratedFailurePercentage") {
        None => 100.0,
        Some(value) => value.as_f64().filter(|p| (0.0..=100.0).contains(p)).ok_or_else(|| {
            invalid(format!("ToleratedFailurePercentage must be a number from 0 to 100, got {value}"))
        })?,
    };
    let dry_run = match fields.get("DryRun") {
        None => false,
        Some(Value::Bool(flag)) => *flag,
        Some(other) => return Err(invalid(format!("DryRun must be true or false, got {other}"))),
    };
    let context = match fields.get("Context") {
        None => Value::Object(Map::new()),
        Some(context @ Value::Object(_)) => context.clone(),
        Some(other) => return Err(invalid(format!("Context must be a JSON object, got {other}"))),
    };
    Ok(BatchRequest { source, max_concurrency, tolerated_failure_percentage, dry_run, context })
}

fn parse_user_list_location(list: &Map<String, Value>) -> Result<UserSource, OffboardError> {
    if let Some(unknown) = list.keys().find(|key| !["Bucket", "Key"].contains(&key.as_str())) {
        return Err(invalid(format!("UserList has unknown field {unknown:?}; give Bucket and Key")));
    }
    let text = |field: &str| {
        list.get(field)
            .and_then(Value::as_str)
            .filter(|value| !value.is_empty())
            .map(str::to_string)
            .ok_or_else(|| invalid(format!("UserList.{field} must be a non-empty string")))
    };
    Ok(UserSource::S3 { bucket: text("Bucket")?, key: text("Key")? })
}

/// The user names in a list object: a JSON array of names (or of objects
/// with `UserName`), or CSV (RFC 4180) whose header row has a `UserName`
/// column.
pub fn parse_user_list(document: &[u8], key: &str) -> Result<Vec<String>, OffboardError> {
    let text = std::str::from_utf8(document).map_err(|_| invalid(format!("user list {key} is not UTF-8 text")))?;
    let text = text.trim_start_matches('\u{feff}');
    if text.trim_start().starts_with('[') {
        let entries: Vec<Value> =
            serde_json::from_str(text).map_err(|e| invalid(format!("user list {key} is not a JSON array: {e}")))?;
        return entries
            .iter()
            .enumerate()
            .map(|(at, entry)| match entry {
                Value::String(name) => Ok(name.clone()),
                Value::Object(row) => row
                    .get("UserName")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| invalid(format!("user list {key}: entry {at} has no UserName string"))),
                other => Err(invalid(format!(
                    "user list {key}: entry {at} must be a name or an object with UserName, got {other}"
                ))),
            })
            .collect();
    }
    let mut rows = parse_csv(text).map_err(|why| invalid(format!("user list {key} is not CSV: {why}")))?.into_iter();
    let header = rows.next().unwrap_or_default();
    let Some(column) = header.iter().position(|name| name.trim() == "UserName") else {
        return Err(invalid(format!(
            "user list {key} has no UserName column (header: {}); its first row must name the columns",
            header.join(",")
        )));
    };
    rows.enumerate()
        .filter(|(_, row)| !(row.len() == 1 && row[0].is_empty()))
        .map(|(at, row)| {
            row.get(column)
                .map(|name| name.trim().to_string())
                .ok_or_else(|| invalid(format!("user list {key}: row {} has no UserName field", at + 2)))
        })
        .collect()
}

/// RFC 4180: fields separated by `,`, rows by CRLF or LF, a field in double
/// quotes may hold commas, line breaks and `""` for a quote. IAM names may
/// contain commas, so a quoted name is read whole.
fn parse_csv(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is never closed".into());
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    Ok(rows)
}

/// Checks the whole list: 1 to [`MAX_BATCH_USERS`] valid IAM user names, no
/// name twice (IAM names are unique regardless of case, so `Alice` and
/// `alice` are the same user). Each gets its execution name.
pub fn validate_user_names(names: &[String]) -> Result<Vec<BatchUser>, OffboardError> {
    if names.is_empty() {
        return Err(invalid("the user list is empty; name at least one user"));
    }
    if names.len() > MAX_BATCH_USERS {
        return Err(invalid(format!(
            "the user list has {} users; a batch takes at most {MAX_BATCH_USERS}: split it",
            names.len()
        )));
    }
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(names.len());
    names
        .iter()
        .enumerate()
        .map(|(at, name)| {
            validate_user_name(name).map_err(|error| error.with_note(&format!("(entry {} of the user list)", at + 1)))?;
            if let Some(first) = seen.insert(name.to_ascii_lowercase(), at) {
                return Err(invalid(format!(
                    "the user list names {name} twice (entries {} and {}); IAM user names are unique regardless of case",
                    first + 1,
                    at + 1
                )));
            }
            Ok(BatchUser { user_name: name.clone(), execution_name: execution_name_for(&UserRef::Name(name.clone())) })
        })
        .collect()
}

/// The validated batch: what the batch state machine's Map runs over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct BatchPlan {
    pub users: Vec<BatchUser>,
    pub count: usize,
    /// `inline`, or the list's `s3://bucket/key`.
    pub source: String,
    pub max_concurrency: u32,
    pub tolerated_failure_percentage: f64,
    pub dry_run: bool,
    pub context: Value,
    #[serde(default)]
    pub duration_ms: Option<u64>,
}

/// Reads the user list `s3://bucket/key`; a missing list is the input's fault.
pub async fn read_user_list(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Vec<u8>, OffboardError> {
    read_object(s3, bucket, key, "the user list", |location| {
        invalid(format!("the user list {location} does not exist; nothing was started"))
    })
    .await
}

/// Opens `s3://bucket/key`; a missing object is `missing`'s error.
async fn open_object(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    what: &str,
    missing: impl FnOnce(&str) -> OffboardError,
) -> Result<GetObjectOutput, OffboardError> {
    match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(object) => Ok(object),
        Err(error) if matches!(error.code(), Some("NoSuchKey" | "NoSuchBucket")) => {
            Err(missing(&format!("s3://{bucket}/{key}")))
        }
        Err(error) => Err(classify_sdk_error(error, "s3:GetObject", &format!("{what} s3://{bucket}/{key}"))),
    }
}

/// Buffers reserved ahead for an object at most: a larger one grows as it arrives.
const MAX_RESERVED: usize = 16 * 1024 * 1024;

/// Reads `s3://bucket/key` whole, each chunk appended to one buffer as it
/// arrives (sized from `Content-Length`): the object is held once, not
/// collected and then copied.
async fn read_object(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    what: &str,
    missing: impl FnOnce(&str) -> OffboardError,
) -> Result<Vec<u8>, OffboardError> {
    let object = open_object(s3, bucket, key, what, missing).await?;
    let length = object.content_length.and_then(|length| usize::try_from(length).ok()).unwrap_or(0);
    let mut bytes = Vec::with_capacity(length.min(MAX_RESERVED));
    let mut body = object.body;
    while let Some(chunk) = body.try_next().await.map_err(|e| part_way(bucket, key, e))? {
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

fn part_way(bucket: &str, key: &str, error: impl std::fmt::Display) -> OffboardError {
    OffboardError::ServiceUnavailable(format!("reading s3://{bucket}/{key} failed part-way: {error}"))
}

/// Validates a batch execution's input and its whole user list.
pub async fn plan_batch(s3: Option<&aws_sdk_s3::Client>, input: &Value) -> Result<BatchPlan, OffboardError> {
    let request = parse_batch_input(input)?;
    let (names, source) = match request.source {
        UserSource::Inline(names) => (names, "inline".to_string()),
        UserSource::S3 { bucket, key } => {
            let s3 = s3.ok_or_else(|| invalid("this function has no S3 client; a UserList cannot be read"))?;
            let document = read_user_list(s3, &bucket, &key).await?;
            (parse_user_list(&document, &key)?, format!("s3://{bucket}/{key}"))
        }
    };
    let mut users = validate_user_names(&names)?;
    if request.dry_run {
        // A plan must not take the name the real offboarding of the user
        // needs (names stay taken for 90 days): `plan-` + at most 73 ≤ 80.
        for user in &mut users {
            user.execution_name = format!("plan-{}", user.execution_name);
        }
    }
    Ok(BatchPlan {
        count: users.len(),
        users,
        source,
        max_concurrency: request.max_concurrency,
        tolerated_failure_percentage: request.tolerated_failure_percentage,
        dry_run: request.dry_run,
        context: request.context,
        duration_ms: None,
    })
}

impl Timed for BatchPlan {
    fn set_duration_ms(&mut self, duration_ms: u64) {
        self.duration_ms = Some(duration_ms);
    }
}

/// Where a Distributed Map's `ResultWriter` left its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ResultLocation {
    pub bucket: String,
    pub key: String,
}

/// What the summary is made from: the Map's report and the batch's plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct SummaryRequest {
    pub result_writer_details: ResultLocation,
    pub users: Vec<BatchUser>,
    pub dry_run: bool,
}

/// The batch's outcome per user, from each child execution's real status
/// (never the Map's own status).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct BatchSummary {
    pub total: usize,
    /// Offboarded (or, in a dry run, planned).
    pub succeeded: usize,
    pub outcome: String,
    /// Did not exist: nothing to offboard.
    pub not_found: Vec<String>,
    /// Refused by protection.
    pub protected: Vec<String>,
    /// Every other failure, by error name.
    pub failed: BTreeMap<String, Vec<String>>,
    /// Never started (the Map stopped first, past its tolerated failures).
    pub not_run: Vec<String>,
    pub failed_count: usize,
    pub report_uri: String,
    #[serde(default)]
    pub duration_ms: Option<u64>,
}

/// One child as the `ResultWriter` files list it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ChildResult {
    input: Option<String>,
    status: String,
    error: Option<String>,
    cause: Option<String>,
}

impl ChildResult {
    fn user_name(&self) -> Option<String> {
        let input: Value = serde_json::from_str(self.input.as_deref()?).ok()?;
        input.get("UserName").and_then(Value::as_str).map(str::to_string)
    }

    /// The offboarding's own error name: a failed child reaches the Map as
    /// `States.TaskFailed` whose cause is the child's DescribeExecution.
    fn error_name(&self) -> String {
        let error = self.error.clone().unwrap_or_else(|| self.status.clone());
        if error != "States.TaskFailed" {
            return error;
        }
        self.cause
            .as_deref()
            .and_then(|cause| serde_json::from_str::<Value>(cause).ok())
            .and_then(|child| child.get("Error").and_then(Value::as_str).map(str::to_string))
            .unwrap_or(error)
    }
}

/// What a report object that is not there (yet) is: `ServiceUnavailable`, retried.
fn report_missing(location: &str) -> OffboardError {
    OffboardError::ServiceUnavailable(format!("the Map's report {location} is not there (yet); retried"))
}

/// An object of a Distributed Map's report (`ResultWriter`), its manifest,
/// read as `T`; anything else is `ServiceUnavailable`.
pub(crate) async fn read_report<T: DeserializeOwned>(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<T, OffboardError> {
    let bytes = read_object(s3, bucket, key, "the Map's report", report_missing).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        OffboardError::ServiceUnavailable(format!("s3://{bucket}/{key} is not the JSON the Map writes: {e}"))
    })
}

/// Each entry of a `ResultWriter` result file (a JSON array, `OutputType`
/// JSON), parsed as `T` while the object arrives: one entry's text is held
/// at a time, never the file (a report of thousands of children is tens of
/// megabytes). A file that is not such an array is `ServiceUnavailable`.
pub(crate) async fn for_each_report_entry<T: DeserializeOwned>(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    mut each: impl FnMut(T),
) -> Result<(), OffboardError> {
    let object = open_object(s3, bucket, key, "the Map's report", report_missing).await?;
    let malformed =
        |why: String| OffboardError::ServiceUnavailable(format!("s3://{bucket}/{key} lists no child results: {why}"));
    let mut elements = ArrayElements::default();
    let mut body = object.body;
    while let Some(chunk) = body.try_next().await.map_err(|e| part_way(bucket, key, e))? {
        elements
            .feed(&chunk, |text| {
                serde_json::from_slice(text).map(&mut each).map_err(|e| format!("an entry is not a child result: {e}"))
            })
            .map_err(malformed)?;
    }
    elements.finish().map_err(malformed)
}

/// Where [`ArrayElements`] is in the array.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ArrayPlace {
    #[default]
    BeforeArray,
    /// After `[`: the first element or `]`.
    FirstElementOrEnd,
    /// After an element: `,` or `]`.
    CommaOrEnd,
    /// After `,`: an element.
    Element,
    /// Inside an element (an object or an array), this many levels deep.
    Inside(usize),
    AfterArray,
}

/// Splits a JSON array of objects (or arrays) arriving in pieces into each
/// element's text, handed on whole. Bytes are scanned, never decoded: no
/// byte of a multi-byte UTF-8 character is an ASCII quote, backslash,
/// bracket or brace (RFC 8259 for the grammar). Each element's own text is
/// checked by whoever parses it.
#[derive(Debug, Default)]
struct ArrayElements {
    place: ArrayPlace,
    in_string: bool,
    escaped: bool,
    element: Vec<u8>,
}

impl ArrayElements {
    fn feed(&mut self, chunk: &[u8], mut each: impl FnMut(&[u8]) -> Result<(), String>) -> Result<(), String> {
        for &byte in chunk {
            let blank = matches!(byte, b' ' | b'\t' | b'\n' | b'\r');
            self.place = match (self.place, byte) {
                (ArrayPlace::Inside(depth), _) => {
                    self.element.push(byte);
                    match (self.in_string, self.escaped, byte) {
                        (true, true, _) => {
                            self.escaped = false;
                            ArrayPlace::Inside(depth)
                        }
                        (true, false, b'\\') => {
                            self.escaped = true;
                            ArrayPlace::Inside(depth)
                        }
                        (true, false, b'"') | (false, _, b'"') => {
                            self.in_string = !self.in_string;
                            ArrayPlace::Inside(depth)
                        }
                        (true, false, _) => ArrayPlace::Inside(depth),
                        (false, _, b'{' | b'[') => ArrayPlace::Inside(depth + 1),
                        (false, _, b'}' | b']') if depth == 1 => {
                            each(&self.element)?;
                            self.element.clear();
                            ArrayPlace::CommaOrEnd
                        }
                        (false, _, b'}' | b']') => ArrayPlace::Inside(depth - 1),
                        (false, _, _) => ArrayPlace::Inside(depth),
                    }
                }
                (place, _) if blank => place,
                (ArrayPlace::BeforeArray, b'[') => ArrayPlace::FirstElementOrEnd,
                (ArrayPlace::FirstElementOrEnd | ArrayPlace::Element, b'{' | b'[') => {
                    self.element.push(byte);
                    ArrayPlace::Inside(1)
                }
                (ArrayPlace::FirstElementOrEnd | ArrayPlace::CommaOrEnd, b']') => ArrayPlace::AfterArray,
                (ArrayPlace::CommaOrEnd, b',') => ArrayPlace::Element,
                (place, byte) => {
                    return Err(format!("unexpected {:?} ({place:?}): not a JSON array of objects", byte as char))
                }
            };
        }
        Ok(())
    }

    fn finish(&self) -> Result<(), String> {
        match self.place {
            ArrayPlace::AfterArray => Ok(()),
            place => Err(format!("the array ends early ({place:?})")),
        }
    }
}

/// The result files a `ResultWriter` manifest lists, by status (`SUCCEEDED`,
/// `FAILED`, `PENDING`), and the bucket they are in.
pub(crate) fn result_files(manifest: &Value, location: &ResultLocation) -> (String, Vec<String>) {
    let bucket = manifest.get("DestinationBucket").and_then(Value::as_str).unwrap_or(&location.bucket).to_string();
    let keys = ["SUCCEEDED", "FAILED", "PENDING"]
        .iter()
        .flat_map(|status| {
            manifest.pointer(&format!("/ResultFiles/{status}")).and_then(Value::as_array).cloned().unwrap_or_default()
        })
        .filter_map(|file| file.get("Key").and_then(Value::as_str).map(str::to_string))
        .collect();
    (bucket, keys)
}

/// Summarises a batch from the `ResultWriter` manifest and its result files.
pub async fn summarize_batch(s3: &aws_sdk_s3::Client, request: &SummaryRequest) -> Result<BatchSummary, OffboardError> {
    let location = &request.result_writer_details;
    let manifest: Value = read_report(s3, &location.bucket, &location.key).await?;
    let (bucket, keys) = result_files(&manifest, location);
    let mut children = Vec::new();
    for key in keys {
        for_each_report_entry(s3, &bucket, &key, |child: ChildResult| children.push(child)).await?;
    }
    Ok(summarize(request, &children, format!("s3://{}/{}", location.bucket, location.key)))
}

fn summarize(request: &SummaryRequest, children: &[ChildResult], report_uri: String) -> BatchSummary {
    let mut summary = BatchSummary {
        total: request.users.len(),
        outcome: if request.dry_run { "Planned" } else { "Offboarded" }.to_string(),
        report_uri,
        ..BatchSummary::default()
    };
    let mut seen = std::collections::HashSet::new();
    for child in children {
        let user = child.user_name().unwrap_or_else(|| "(unknown)".into());
        seen.insert(user.to_ascii_lowercase());
        if child.status == "SUCCEEDED" {
            summary.succeeded += 1;
            continue;
        }
        match child.error_name().as_str() {
            "UserNotFound" => summary.not_found.push(user),
            "ProtectedUser" => summary.protected.push(user),
            error => summary.failed.entry(error.to_string()).or_default().push(user),
        }
    }
    summary.not_run = request
        .users
        .iter()
        .filter(|user| !seen.contains(&user.user_name.to_ascii_lowercase()))
        .map(|user| user.user_name.clone())
        .collect();
    summary.failed_count = summary.failed.values().map(Vec::len).sum::<usize>() + summary.not_run.len();
    summary
}

impl Timed for BatchSummary {
    fn set_duration_ms(&mut self, duration_ms: u64) {
        self.duration_ms = Some(duration_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn inline_and_s3_lists_with_their_options() {
        let inline = parse_batch_input(&json!({"UserNames": ["alice", "bob"], "DryRun": true, "MaxConcurrency": 5,
                                               "ToleratedFailurePercentage": 20, "Context": {"Ticket": "OPS-9"}}))
        .unwrap();
        assert_eq!(inline.source, UserSource::Inline(names(&["alice", "bob"])));
        assert!(inline.dry_run);
        assert_eq!((inline.max_concurrency, inline.tolerated_failure_percentage), (5, 20.0));
        assert_eq!(inline.context, json!({"Ticket": "OPS-9"}));
        let listed = parse_batch_input(&json!({"UserList": {"Bucket": "lists", "Key": "leavers.csv"}})).unwrap();
        assert_eq!(listed.source, UserSource::S3 { bucket: "lists".into(), key: "leavers.csv".into() });
        assert_eq!((listed.max_concurrency, listed.tolerated_failure_percentage), (DEFAULT_MAX_CONCURRENCY, 100.0));
        assert!(!listed.dry_run);
        assert_eq!(listed.context, json!({}), "an object, so every child's Context is one");
    }

    #[test]
    fn malformed_batch_inputs_are_invalid_input() {
        for bad in [
            json!([]),
            json!({}),
            json!({"UserNames": ["a"], "UserList": {"Bucket": "b", "Key": "k"}}),
            json!({"UserNames": "alice"}),
            json!({"UserNames": ["alice", 7]}),
            json!({"UserList": {"Bucket": "b"}}),
            json!({"UserList": {"Bucket": "", "Key": "k"}}),
            json!({"UserList": {"Bucket": "b", "Key": "k", "Region": "x"}}),
            json!({"UserList": "s3://b/k"}),
            json!({"UserNames": ["a"], "MaxConcurrency": 0}),
            json!({"UserNames": ["a"], "MaxConcurrency": 10_001}),
            json!({"UserNames": ["a"], "MaxConcurrency": 2.5}),
            json!({"UserNames": ["a"], "ToleratedFailurePercentage": 101}),
            json!({"UserNames": ["a"], "ToleratedFailurePercentage": -1}),
            json!({"UserNames": ["a"], "DryRun": "yes"}),
            json!({"UserNames": ["a"], "Context": "OPS-1"}),
            json!({"UserNames": ["a"], "Dryrun": true}),
        ] {
            let error = parse_batch_input(&bad).unwrap_err();
            assert_eq!(error.name(), "InvalidInput", "{bad}");
        }
        assert_eq!(
            parse_batch_input(&json!({"UserNames": ["a"], "MaxConcurrency": 10_000})).unwrap().max_concurrency,
            10_000
        );
        assert_eq!(
            parse_batch_input(&json!({"UserNames": ["a"], "ToleratedFailurePercentage": 0}))
                .unwrap()
                .tolerated_failure_percentage,
            0.0
        );
    }

    #[test]
    fn lists_are_json_arrays_or_csv_with_a_user_name_column() {
        assert_eq!(parse_user_list(br#"["alice", "bob"]"#, "l.json").unwrap(), names(&["alice", "bob"]));
        assert_eq!(
            parse_user_list(br#"[{"UserName": "alice", "Ticket": 1}, {"UserName": "bob"}]"#, "l.json").unwrap(),
            names(&["alice", "bob"])
        );
        let csv =
            "Ticket,UserName,Manager\r\nOPS-1,alice,carol\r\nOPS-2,\"b,ob\",dan\r\n\r\nOPS-3,\"say \"\"hi\"\"\",erin";
        assert_eq!(parse_user_list(csv.as_bytes(), "l.csv").unwrap(), names(&["alice", "b,ob", "say \"hi\""]));
        assert_eq!(parse_user_list("\u{feff}UserName\nalice\n".as_bytes(), "bom.csv").unwrap(), names(&["alice"]));
        for (bad, why) in [
            ("Name,Ticket\nalice,1\n", "no UserName column"),
            ("UserName,Ticket\n\"alice,1\n", "not CSV"),
            ("Ticket,UserName\nOPS-1\n", "no UserName field"),
            ("[\"alice\", 3]", "entry 1"),
            ("[{\"Name\": \"alice\"}]", "no UserName"),
            ("[\"alice\"", "not a JSON array"),
        ] {
            let error = parse_user_list(bad.as_bytes(), "l").unwrap_err();
            assert_eq!(error.name(), "InvalidInput");
            assert!(error.to_string().contains(why), "{bad:?}: {error}");
        }
        assert!(parse_user_list(&[0xff, 0xfe], "l").is_err());
    }

    #[test]
    fn the_summary_reads_each_childs_real_outcome() {
        let users: Vec<BatchUser> = validate_user_names(&names(&["ann", "ben", "cat", "dan", "eve", "fay"])).unwrap();
        let child = |user: &str, status: &str, error: Option<&str>, cause: Option<&str>| ChildResult {
            input: Some(json!({"UserName": user, "DryRun": false}).to_string()),
            status: status.into(),
            error: error.map(Into::into),
            cause: cause.map(Into::into),
        };
        let described = |error: &str| json!({"Status": "FAILED", "Error": error, "Cause": "..."}).to_string();
        let children = [
            child("ann", "SUCCEEDED", None, None),
            child("ben", "FAILED", Some("States.TaskFailed"), Some(&described("UserNotFound"))),
            child("cat", "FAILED", Some("States.TaskFailed"), Some(&described("ProtectedUser"))),
            child("dan", "FAILED", Some("States.TaskFailed"), Some(&described("AccessDenied"))),
            child("eve", "FAILED", Some("StepFunctions.ExecutionAlreadyExistsException"), Some("already exists")),
        ];
        let request = SummaryRequest {
            result_writer_details: ResultLocation { bucket: "reports".into(), key: "b/manifest.json".into() },
            users,
            dry_run: false,
        };
        let summary = summarize(&request, &children, "s3://reports/b/manifest.json".into());
        assert_eq!((summary.total, summary.succeeded, summary.outcome.as_str()), (6, 1, "Offboarded"));
        assert_eq!(summary.not_found, ["ben"]);
        assert_eq!(summary.protected, ["cat"]);
        assert_eq!(summary.failed["AccessDenied"], ["dan"]);
        assert_eq!(summary.failed["StepFunctions.ExecutionAlreadyExistsException"], ["eve"]);
        assert_eq!(summary.not_run, ["fay"]);
        assert_eq!(summary.failed_count, 3, "dan, eve and fay; not found and protected are reported apart");
        assert_eq!(child("x", "FAILED", Some("States.TaskFailed"), Some("not json")).error_name(), "States.TaskFailed");
        assert_eq!(child("x", "ABORTED", None, None).error_name(), "ABORTED");
    }

    fn elements(chunks: &[&[u8]]) -> Result<Vec<String>, String> {
        let mut splitter = ArrayElements::default();
        let mut found = Vec::new();
        for chunk in chunks {
            splitter.feed(chunk, |text| {
                found.push(String::from_utf8(text.to_vec()).unwrap());
                Ok(())
            })?;
        }
        splitter.finish().map(|()| found)
    }

    #[test]
    fn a_result_file_is_split_into_its_entries_however_it_arrives() {
        let text = r#" [ {"Input":"{\"a\":[1,{\"b\":\"}]\"}]}","Status":"SUCCEEDED"} ,
                        {"Cause":"quote \\\" and brace { in a string","Name":"é—ü"},[1,[2]] ]  "#;
        let whole = elements(&[text.as_bytes()]).unwrap();
        assert_eq!(whole.len(), 3);
        for entry in &whole[..2] {
            serde_json::from_str::<Value>(entry).unwrap();
        }
        assert_eq!(whole[2], "[1,[2]]");
        // Every split point, inside strings, escapes and multi-byte characters too.
        let bytes = text.as_bytes();
        for at in 0..=bytes.len() {
            assert_eq!(elements(&[&bytes[..at], &bytes[at..]]).unwrap(), whole, "split at {at}");
        }
        let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(elements(&one_by_one).unwrap(), whole);
        assert_eq!(elements(&[b"[]"]).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_result_file_is_never_held_whole_only_its_largest_entry() {
        // 20,000 entries of about 600 bytes (12 MB), arriving in 64 KiB chunks as S3 sends
        // them: what is held between entries is one entry's text, whatever the file's size.
        let one = json!({"Input": "x".repeat(500), "Status": "SUCCEEDED", "Output": "{}"}).to_string();
        let text = format!("[{}]", vec![one.as_str(); 20_000].join(","));
        let mut splitter = ArrayElements::default();
        let mut seen = 0;
        for chunk in text.as_bytes().chunks(64 * 1024) {
            splitter
                .feed(chunk, |entry| {
                    seen += 1;
                    assert_eq!(entry.len(), one.len());
                    Ok(())
                })
                .unwrap();
        }
        splitter.finish().unwrap();
        assert_eq!(seen, 20_000);
        assert!(splitter.element.capacity() <= 2 * one.len(), "{} bytes held", splitter.element.capacity());
    }

    #[test]
    fn anything_but_a_whole_array_of_objects_is_refused() {
        for bad in
            [&b""[..], b"{}", b"[1]", b"[{},]", b"[,{}]", b"[{}{}]", b"[{}", b"[{\"a\":\"}]", b"[{}] x", b"[{}][]"]
        {
            assert!(elements(&[bad]).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let mut splitter = ArrayElements::default();
        let error = splitter.feed(b"[{}]", |_| Err("entry refused".into())).unwrap_err();
        assert_eq!(error, "entry refused", "an entry's own error is handed back");
    }

    #[test]
    fn csv_follows_rfc_4180() {
        let rows = |text: &str| parse_csv(text).unwrap();
        assert_eq!(
            rows("a,b\"c\r\nx\ry"),
            [vec!["a", "b\"c"], vec!["x\ry"]],
            "a quote inside a field is a character; a lone CR too"
        );
        assert_eq!(rows("a,"), [vec!["a", ""]], "a last row without a line break, ending in an empty field");
        assert_eq!(rows("a\n,b"), [vec!["a"], vec!["", "b"]]);
        assert_eq!(rows("\"x\ny\""), [vec!["x\ny"]]);
        assert!(rows("").is_empty());
        assert_eq!(parse_csv("\"open").unwrap_err(), "a quoted field is never closed");
    }

    #[test]
    fn the_whole_list_is_checked_before_any_child() {
        let users = validate_user_names(&names(&["alice", "bob.smith@example.com"])).unwrap();
        assert_eq!(users[0], BatchUser { user_name: "alice".into(), execution_name: "alice-872213e7".into() });
        assert!(users[1].execution_name.starts_with("bob_smith_example_com-"));
        let error = validate_user_names(&names(&["alice", "bob", "Alice"])).unwrap_err();
        assert!(error.to_string().contains("entries 1 and 3"), "{error}");
        let error = validate_user_names(&names(&["alice", "not a name"])).unwrap_err();
        assert!(error.to_string().contains("entry 2"), "{error}");
        assert_eq!(validate_user_names(&[]).unwrap_err().name(), "InvalidInput");
        let many: Vec<String> = (0..=MAX_BATCH_USERS).map(|n| format!("user{n}")).collect();
        assert!(validate_user_names(&many[..MAX_BATCH_USERS]).is_ok());
        assert!(validate_user_names(&many).unwrap_err().to_string().contains("at most 1000"));
    }
}
