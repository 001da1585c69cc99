"""`make demo`: the local stack (moto's Step Functions interpreter running
statemachine/offboard.asl.json, the eight function binaries under the Lambda
Runtime API, the strict IAM emulator), a user holding every credential type
(passkey, hardware token and virtual MFA device included), the execution shown
stage by stage as it completes, the audit record, where it was stored (S3),
the outcome event (EventBridge) and the final status. Then a short quarantine:
a second user started with DeleteAfter a few seconds ahead, its disabled state
while the execution waits, the deletion after the wait, and the record's
Quarantine section. Last, one person offboarded from three accounts of the
organization in one execution (a child execution per account, each stage in
that account with its own target role's session), one account never having had
the user. Non-interactive."""

from __future__ import annotations

import datetime
import json
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "emulator"))

from seed import ACCOUNT, leftovers, seed_user  # noqa: E402
from stack import AUDIT_BUCKET, TARGET_ROLE_NAME, TERMINAL, Stack  # noqa: E402

QUARANTINE_TAG = "offboard:quarantined-until"
GRACE_SECONDS = 3


def show_progress(stack: Stack, execution_arn: str, on_poll=None) -> dict:
    """Prints each state as it completes; ``on_poll()`` runs between polls."""
    shown, started = 0, time.monotonic()
    while True:
        events = stack.history(execution_arn)
        for event in events[shown:]:
            exited = event.get("stateExitedEventDetails")
            if exited:
                print(f"  ✓ {time.monotonic() - started:6.2f}s  {exited['name']}")
        shown = len(events)
        if on_poll is not None:
            on_poll()
        execution = stack.sfn.describe_execution(executionArn=execution_arn)
        if execution["status"] in TERMINAL:
            return execution
        time.sleep(0.05)


def offboard_now(stack: Stack) -> bool:
    made = seed_user(stack.iam, "alice", access_keys=2, ssh_keys=2, certificates=2, virtual_devices=1,
                     passkeys=1, hardware_tokens=1, groups=2, inline_policies=1, attached_policies=2)
    print("\nseeded IAM user alice with:")
    for kind in ("AccessKeys", "SSHPublicKeys", "Certificates", "ServiceCredentials", "MFADevices", "Groups",
                 "InlinePolicies", "AttachedPolicies"):
        print(f"  {kind:<20} {', '.join(made[kind])}")
    print("  login profile, tags, permissions boundary")
    print(f"\nStartExecution on {stack.state_machine_arn} (name: alice)")
    arn = stack.start({"UserName": "alice", "Context": {"Ticket": "DEMO-1", "Requester": "make demo"}}, name="alice")
    execution = show_progress(stack, arn)
    if execution["status"] == "SUCCEEDED":
        print("\naudit record:")
        print(json.dumps(json.loads(execution["output"]), indent=2))
    else:
        print(f"\n{execution.get('error')}: {execution.get('cause')}")
    keys = stack.record_keys("records/")
    print(f"\nevidence in s3://{AUDIT_BUCKET}/ (outlives the execution's 90-day history):")
    for key in keys:
        print(f"  {key}  ({len(json.dumps(stack.record(key)))} bytes)")
    events = stack.events()
    for event in events:
        print(f"\nevent on EventBridge ({event['source']}, {event['detail-type']}):")
        print(json.dumps(event["detail"], indent=2))
    left = leftovers(stack.iam, "alice")
    print(f"\nexecution status: {execution['status']}; left behind in IAM: {left or 'nothing'}")
    recorded = any(key.endswith("/alice/alice/record.json") for key in keys) and len(events) == 1
    return execution["status"] == "SUCCEEDED" and not left and recorded


def quarantine_tag(stack: Stack, name: str) -> str | None:
    try:
        tags = stack.iam.get_user(UserName=name)["User"].get("Tags", [])
    except stack.iam.exceptions.NoSuchEntityException:
        return None
    return next((t["Value"] for t in tags if t["Key"].lower() == QUARANTINE_TAG), None)


def print_quarantine_state(stack: Stack, name: str, until: str) -> None:
    iam = stack.iam
    print(f"\n  {name} is quarantined while the execution waits (until {until}):")
    for key in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]:
        print(f"    access key                  {key['AccessKeyId']:<24} {key['Status']}")
    for key in iam.list_ssh_public_keys(UserName=name)["SSHPublicKeys"]:
        print(f"    SSH public key              {key['SSHPublicKeyId']:<24} {key['Status']}")
    for cert in iam.list_signing_certificates(UserName=name)["Certificates"]:
        print(f"    signing certificate         {cert['CertificateId'][:24]:<24} {cert['Status']}")
    for cred in iam.list_service_specific_credentials(UserName=name)["ServiceSpecificCredentials"]:
        print(f"    service credential          {cred['ServiceSpecificCredentialId']:<24} {cred['Status']}"
              f"  ({cred['ServiceName']})")
    attached = [p["PolicyArn"] for p in iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]]
    print(f"    attached policies           {', '.join(attached)}")
    print(f"    tag                         {QUARANTINE_TAG}={quarantine_tag(stack, name)}")
    devices = [d["SerialNumber"] for d in iam.list_mfa_devices(UserName=name)["MFADevices"]]
    print(f"    kept for a restore          login profile, MFA device(s) {', '.join(devices)}")
    print("  (offboard restore --user-name ... would undo all of it now)\n")


def quarantine_then_delete(stack: Stack) -> bool:
    name = "quincy"
    made = seed_user(stack.iam, name, access_keys=2, ssh_keys=1, certificates=1, virtual_devices=1, passkeys=0,
                     hardware_tokens=0, groups=1, inline_policies=1, attached_policies=1)
    stack.iam.update_access_key(UserName=name, AccessKeyId=made["AccessKeys"][1], Status="Inactive")
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    delete_after = (now + datetime.timedelta(seconds=GRACE_SECONDS)).strftime("%Y-%m-%dT%H:%M:%SZ")
    print("\n\n=== quarantine with a grace period ===")
    print(f"seeded IAM user {name}: access keys {made['AccessKeys'][0]} (Active) and {made['AccessKeys'][1]} "
          f"(already Inactive), an SSH key, a certificate, service credentials, an MFA device, a group, policies")
    print(f"\nStartExecution (name: {name}) with DeleteAfter {delete_after}: disable now, delete after the wait")
    arn = stack.start({"UserName": name, "DeleteAfter": delete_after, "Context": {"Ticket": "DEMO-2"}}, name=name)
    shown = {"quarantine": False}

    def show_quarantine_once() -> None:
        if shown["quarantine"]:
            return
        until = quarantine_tag(stack, name)
        if until is not None:
            shown["quarantine"] = True
            print_quarantine_state(stack, name, until)

    execution = show_progress(stack, arn, on_poll=show_quarantine_once)
    if not shown["quarantine"]:
        print("  (the quarantine state could not be shown before the deletion began)")
    if execution["status"] != "SUCCEEDED":
        print(f"\n{execution.get('error')}: {execution.get('cause')}")
        return False
    record = json.loads(execution["output"])
    print("\nthe record's Quarantine section (what was disabled, and what a restore would have re-enabled):")
    print(json.dumps(record.get("Quarantine"), indent=2))
    print("\nthen deleted after the wait:")
    for kind in ("AccessKeys", "SSHPublicKeys", "SigningCertificates", "ServiceSpecificCredentials",
                 "MFADevices", "Groups", "InlinePolicies", "AttachedPolicies"):
        print(f"  {kind:<28} {len(record['Items'][kind])} removed")
    keys = stack.record_keys(f"records/{ACCOUNT}/{name}/")
    print(f"\nevidence in s3://{AUDIT_BUCKET}/:")
    for key in keys:
        print(f"  {key}")
    events = [event["detail-type"] for event in stack.events()]
    print(f"events on EventBridge: {', '.join(events)}")
    left = leftovers(stack.iam, name)
    print(f"\nexecution status: {execution['status']}; left behind in IAM: {left or 'nothing'}")
    files = {key.rsplit("/", 1)[1] for key in keys}
    return (record.get("Quarantine") is not None and not left
            and {"plan.json", "quarantine.json", "deletion-plan.json", "record.json"} <= files
            and sorted(events) == ["IAM User Offboarded", "IAM User Quarantined"])


MEMBER_ACCOUNTS = ("111111111111", "222222222222", "333333333333")


def offboard_across_accounts(stack: Stack) -> bool:
    for account in MEMBER_ACCOUNTS:
        stack.deploy_target_roles(account)
    for account in MEMBER_ACCOUNTS[:2]:
        seed_user(stack.iam_in(account), "dana", access_keys=1, ssh_keys=1, certificates=1, virtual_devices=1,
                  passkeys=1, hardware_tokens=1, groups=1, inline_policies=1, attached_policies=1, boundary=False)
    print(f"\nIAM user dana exists in accounts {MEMBER_ACCOUNTS[0]} and {MEMBER_ACCOUNTS[1]}, not in {MEMBER_ACCOUNTS[2]};")
    print(f"each member account holds the target roles {TARGET_ROLE_NAME}-<Stage> (infra/target-account.yaml)")
    execution_input = {"UserName": "dana", "Accounts": list(MEMBER_ACCOUNTS), "Context": {"Ticket": "DEMO-3"}}
    print(f"\nStartExecution {json.dumps(execution_input)} (name: dana-everywhere)")
    arn = stack.start(execution_input, name="dana-everywhere")
    execution = show_progress(stack, arn)
    output = json.loads(execution.get("output") or "{}")
    summary = {key: output.get(key) for key in ("Total", "Offboarded", "NotPresent", "Failed")}
    print(f"\nsummary: {summary}; the Distributed Map's report: {output.get('ReportUri')}")
    print("each account's child execution (named <account>-<execution>):")
    found = {}
    for account in MEMBER_ACCOUNTS:
        child = stack.sfn.describe_execution(executionArn=stack.state_machine_arn.replace(
            ":stateMachine:", ":execution:") + f":{account}-dana-everywhere")
        found[account] = ("Offboarded" if child["status"] == "SUCCEEDED"
                          else "NotPresent" if child.get("error") == "UserNotFound" else "Failed")
        key = f"records/{account}/dana/{child['name']}/record.json"
        stored = stack.s3.list_objects_v2(Bucket=AUDIT_BUCKET, Prefix=key).get("KeyCount", 0)
        print(f"  {account}  {child['status']:<9} {found[account]:<11} {f's3://{AUDIT_BUCKET}/{key}' if stored else ''}")
    assumed = [c for c in stack.calls() if c["Action"] == "AssumeRole"]
    by_account: dict[str, int] = {}
    for call in stack.calls():
        if call["Service"] == "iam" and call["Account"] in MEMBER_ACCOUNTS:
            by_account[call["Account"]] = by_account.get(call["Account"], 0) + 1
    print(f"\n{len(assumed)} AssumeRole calls (one per stage function and account); IAM calls made in each account "
          f"with that account's session: {by_account}")
    left = {account: leftovers(stack.iam_in(account), "dana") for account in MEMBER_ACCOUNTS[:2]}
    print(f"execution status: {execution['status']}; left behind in IAM: {({a: l for a, l in left.items() if l}) or 'nothing'}")
    wanted = {MEMBER_ACCOUNTS[0]: "Offboarded", MEMBER_ACCOUNTS[1]: "Offboarded", MEMBER_ACCOUNTS[2]: "NotPresent"}
    return (execution["status"] == "SUCCEEDED" and found == wanted and not any(left.values())
            and summary == {"Total": 3, "Offboarded": 2, "NotPresent": 1, "Failed": 0})


def main() -> int:
    # moto's interpreter logs every absent path a Choice's IsPresent looks at
    # as an ERROR; the execution history is what the demo shows.
    logging.getLogger("moto.stepfunctions.parser.asl.component.eval_component").setLevel(logging.CRITICAL)
    print("starting the local stack (IAM emulator, Step Functions interpreter, eight Lambda functions)...")
    with Stack(env={"OFFBOARD_TARGET_ROLE_NAME": TARGET_ROLE_NAME}) as stack:
        offboarded = offboard_now(stack)
        quarantined = quarantine_then_delete(stack)
        stack.clear_calls()
        across = offboard_across_accounts(stack)
        return 0 if offboarded and quarantined and across else 1


if __name__ == "__main__":
    sys.exit(main())
