//! What `offboard` prints on standard output: a record, a restore report or
//! the accounts' outcomes, as text or JSON. Progress goes to standard error,
//! so that `--output json` stays parseable.

use clap::ValueEnum;
use iam_offboard_core::fanout::AccountOutcome;
use iam_offboard_core::record::AuditRecord;
use iam_offboard_core::restore::RestoreReport;
use serde_json::json;

use crate::Failure;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

pub fn pretty_json(document: &impl serde::Serialize) -> Result<String, Failure> {
    serde_json::to_string_pretty(document).map_err(|e| Failure::Local(e.to_string()))
}

pub fn print_record(record: &AuditRecord, output: Output) -> Result<(), Failure> {
    match output {
        Output::Json => println!("{}", pretty_json(record)?),
        Output::Text => print!("{}", render_text(record)),
    }
    Ok(())
}

pub fn print_restore(report: &RestoreReport, output: Output) -> Result<(), Failure> {
    if output == Output::Json {
        println!("{}", pretty_json(report)?);
        return Ok(());
    }
    let verb = if report.dry_run { "would restore" } else { "restored" };
    println!("\n{} {}:", report.user_name, verb);
    for item in &report.restored {
        println!("  + {item}");
    }
    for item in &report.not_restored {
        println!("  - not restored (by design): {item}");
    }
    for item in &report.could_not_restore {
        println!("  ! could not restore: {item}");
    }
    Ok(())
}

/// Every account's outcome, and (JSON) the failed ones named.
pub fn print_account_outcomes(outcomes: &[AccountOutcome], failed: &[&str], output: Output) {
    match output {
        Output::Json => println!("{}", json!({"Accounts": outcomes, "FailedAccounts": failed})),
        Output::Text => {
            for outcome in outcomes {
                println!(
                    "{}  {}{}",
                    outcome.account,
                    outcome.outcome,
                    outcome.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default()
                );
            }
        }
    }
}

pub fn render_text(record: &AuditRecord) -> String {
    use std::fmt::Write as _;
    let items = &record.items;
    let verb = if record.dry_run { "would remove" } else { "removed" };
    let mut out = String::new();
    let user = &record.user;
    let heading = match (record.dry_run, &record.quarantine, &record.user_deletion) {
        (true, _, _) => "Plan for",
        (false, Some(_), None) => "Quarantined",
        _ => "Offboarded",
    };
    let _ = writeln!(out, "\n{heading} {} ({}, path {})", user.user_name, user.user_id, user.path);
    let _ = writeln!(out, "  arn                  {}", user.arn);
    if let Some(boundary) = &user.permissions_boundary {
        let _ = writeln!(out, "  boundary (kept)      {boundary}");
    }
    for tag in &user.tags {
        let _ = writeln!(out, "  tag (recorded)       {}={}", tag.key, tag.value);
    }
    if let (Some(quarantine), None) = (&record.quarantine, &record.user_deletion) {
        let deactivated = &quarantine.deactivated;
        let ids: Vec<&str> = deactivated.items().map(|(_, id)| id.as_str()).collect();
        let _ = writeln!(out, "  deactivated          {}", ids.join(", "));
        let _ = writeln!(out, "  deny attached        {}", quarantine.deny_all_policy_arn);
        let _ = writeln!(out, "  tagged               {}={}", quarantine.tag_key, quarantine.quarantined_until);
        let _ = writeln!(
            out,
            "  deletion due {}: run `offboard delete --user-name {}` then; `offboard restore --user-name {}` undoes it",
            quarantine.quarantined_until, user.user_name, user.user_name
        );
        return out;
    }
    let _ = writeln!(out, "  {verb}:");
    let mut line = |what: &str, values: Vec<String>| {
        if !values.is_empty() {
            let _ = writeln!(out, "    {what:<30} {}", values.join(", "));
        }
    };
    line("login profile", items.login_profile.iter().map(|_| "yes".to_string()).collect());
    line("access keys", items.access_keys.iter().map(|k| format!("{} ({})", k.access_key_id, k.status)).collect());
    line("SSH public keys", items.ssh_public_keys.iter().map(|k| k.ssh_public_key_id.clone()).collect());
    line("signing certificates", items.signing_certificates.iter().map(|c| c.certificate_id.clone()).collect());
    line(
        "service-specific credentials",
        items
            .service_specific_credentials
            .iter()
            .map(|c| format!("{} ({})", c.service_specific_credential_id, c.service_name))
            .collect(),
    );
    line(
        "MFA devices",
        items.mfa_devices.iter().map(|d| format!("{} [{:?}]", d.serial_number, d.handled_as)).collect(),
    );
    line("groups", items.groups.iter().map(|g| g.group_name.clone()).collect());
    line("inline policies", items.inline_policies.iter().map(|p| p.policy_name.clone()).collect());
    line("attached policies", items.attached_policies.iter().map(|p| p.policy_arn.clone()).collect());
    if let Some(deletion) = &record.user_deletion {
        let _ = writeln!(
            out,
            "  user deleted ({:?}), verified gone after {} GetUser call(s)",
            deletion.outcome, deletion.verification_attempts
        );
    }
    let total: u64 = record.timings.values().sum();
    let _ = writeln!(out, "  {} items in {} ms of stage time", items.count(), total);
    out
}
