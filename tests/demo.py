"""`make demo`: the local stack (moto's Step Functions interpreter running
statemachine/offboard.asl.json, the six release binaries under the Lambda
Runtime API, the strict IAM emulator), a user holding every credential type
(passkey, hardware token and virtual MFA device included), the execution shown
stage by stage as it completes, the audit record, where it was stored (S3),
the outcome event (EventBridge) and the final status."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "emulator"))

from seed import leftovers, seed_user  # noqa: E402
from stack import AUDIT_BUCKET, TERMINAL, Stack  # noqa: E402


def show_progress(stack: Stack, execution_arn: str) -> dict:
    shown, started = 0, time.monotonic()
    while True:
        events = stack.history(execution_arn)
        for event in events[shown:]:
            exited = event.get("stateExitedEventDetails")
            if exited:
                print(f"  ✓ {time.monotonic() - started:6.2f}s  {exited['name']}")
        shown = len(events)
        execution = stack.sfn.describe_execution(executionArn=execution_arn)
        if execution["status"] in TERMINAL:
            return execution
        time.sleep(0.05)


def main() -> int:
    print("starting the local stack (IAM emulator, Step Functions interpreter, six Lambda functions)...")
    with Stack() as stack:
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
        return 0 if execution["status"] == "SUCCEEDED" and not left and recorded else 1


if __name__ == "__main__":
    sys.exit(main())
