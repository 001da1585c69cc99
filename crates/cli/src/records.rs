//! Where `offboard` keeps plans and records: a folder or an S3 bucket, in the
//! state machine's layout `records/<AccountId>/<UserName>/<ExecutionName>/`
//! (`plan.json` before the first change, `record.json` at the end).

use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;
use serde_json::Value;

#[derive(Args, Clone, Default)]
#[group(multiple = false)]
pub struct RecordArgs {
    /// Keep the plan and record under this folder.
    #[arg(long)]
    pub record_dir: Option<PathBuf>,
    /// Keep the plan and record in this S3 bucket (the deployment's audit bucket).
    #[arg(long)]
    pub record_bucket: Option<String>,
}

pub enum RecordStore {
    Dir(PathBuf),
    Bucket { s3: aws_sdk_s3::Client, bucket: String },
}

/// `records/<AccountId>/<UserName>/`: `_unresolved` when no user was resolved.
pub fn user_prefix(account: &str, user_name: Option<&str>) -> String {
    format!("records/{account}/{}/", user_name.unwrap_or("_unresolved"))
}

impl RecordStore {
    /// `None` when neither option was given. `path_style` for endpoints
    /// such as a local emulator, which have no per-bucket host names.
    pub fn from_args(args: &RecordArgs, config: &aws_config::SdkConfig, path_style: bool) -> Option<Self> {
        if let Some(dir) = &args.record_dir {
            return Some(Self::Dir(dir.clone()));
        }
        let bucket = args.record_bucket.as_deref()?;
        Some(Self::bucket(bucket, config, path_style))
    }

    pub fn bucket(bucket: &str, config: &aws_config::SdkConfig, path_style: bool) -> Self {
        let s3 = aws_sdk_s3::config::Builder::from(config).force_path_style(path_style).build();
        Self::Bucket { s3: aws_sdk_s3::Client::from_conf(s3), bucket: bucket.to_string() }
    }

    /// Stores `document` as JSON at `key`; returns where it went.
    pub async fn put(&self, key: &str, document: &impl Serialize) -> Result<String, String> {
        let body = serde_json::to_vec_pretty(document).map_err(|e| e.to_string())?;
        match self {
            Self::Dir(root) => {
                let path = root.join(key);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
                }
                std::fs::write(&path, body).map_err(|e| format!("{}: {e}", path.display()))?;
                Ok(path.display().to_string())
            }
            Self::Bucket { s3, bucket } => {
                s3.put_object()
                    .bucket(bucket)
                    .key(key)
                    .content_type("application/json")
                    .body(body.into())
                    .send()
                    .await
                    .map_err(|e| {
                        format!("s3:PutObject s3://{bucket}/{key}: {}", aws_sdk_s3::error::DisplayErrorContext(&e))
                    })?;
                Ok(format!("s3://{bucket}/{key}"))
            }
        }
    }

    pub async fn get(&self, key: &str) -> Result<Value, String> {
        self.get_dated(key).await.map(|(document, _)| document)
    }

    /// The document at `key` and, in a bucket, when S3 says it was written
    /// (`LastModified`, which no writer sets; a folder's times are anyone's).
    pub async fn get_dated(&self, key: &str) -> Result<(Value, Option<std::time::SystemTime>), String> {
        let (bytes, written) = match self {
            Self::Dir(root) => (std::fs::read(root.join(key)).map_err(|e| format!("{key}: {e}"))?, None),
            Self::Bucket { s3, bucket } => {
                let object = s3.get_object().bucket(bucket).key(key).send().await.map_err(|e| {
                    format!("s3:GetObject s3://{bucket}/{key}: {}", aws_sdk_s3::error::DisplayErrorContext(&e))
                })?;
                let written = object.last_modified().and_then(|at| std::time::SystemTime::try_from(*at).ok());
                (object.body.collect().await.map_err(|e| e.to_string())?.to_vec(), written)
            }
        };
        let document = serde_json::from_slice(&bytes).map_err(|e| format!("{key} is not JSON: {e}"))?;
        Ok((document, written))
    }

    /// The bucket, for a store in S3.
    pub fn bucket_name(&self) -> Option<&str> {
        match self {
            Self::Dir(_) => None,
            Self::Bucket { bucket, .. } => Some(bucket),
        }
    }

    /// Every key filed under `records/<account>/<user>/`, the user name
    /// matched without regard to case (as IAM compares names), sorted.
    pub async fn user_keys(&self, account: &str, user_name: &str) -> Result<Vec<String>, String> {
        let mut keys = self.keys(&format!("records/{account}/")).await?;
        keys.retain(|key| key.split('/').nth(2).is_some_and(|user| user.eq_ignore_ascii_case(user_name)));
        Ok(keys)
    }

    /// Every key under `prefix`, sorted.
    pub async fn keys(&self, prefix: &str) -> Result<Vec<String>, String> {
        let mut keys = match self {
            Self::Dir(root) => {
                let mut found = Vec::new();
                walk(root, &root.join(prefix), &mut found)?;
                found
            }
            Self::Bucket { s3, bucket } => {
                let mut pages = s3.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
                let mut found = Vec::new();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|e| {
                        format!(
                            "s3:ListObjectsV2 s3://{bucket}/{prefix}: {}",
                            aws_sdk_s3::error::DisplayErrorContext(&e)
                        )
                    })?;
                    found.extend(page.contents().iter().filter_map(|object| object.key().map(String::from)));
                }
                found
            }
        };
        keys.sort();
        Ok(keys)
    }
}

fn walk(root: &Path, dir: &Path, found: &mut Vec<String>) -> Result<(), String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_dir() {
            walk(root, &path, found)?;
        } else if let Ok(relative) = path.strip_prefix(root) {
            found.push(relative.to_string_lossy().replace(std::path::MAIN_SEPARATOR, "/"));
        }
    }
    Ok(())
}
