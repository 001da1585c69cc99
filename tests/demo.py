"""`make demo`: the local stack, a user holding every credential type
(passkey, hardware token and virtual MFA device included), offboarded stage by
stage, and the audit record printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "emulator"))

from seed import leftovers, seed_user  # noqa: E402
from server import start  # noqa: E402

OFFBOARD = ROOT / "target" / "release" / "offboard"


def main() -> int:
    server = start(0)
    print(f"local IAM emulator on {server.url}")
    try:
        iam = boto3.client("iam", endpoint_url=server.url, region_name="us-east-1",
                           aws_access_key_id="AKIASEEDSEEDSEEDSEED", aws_secret_access_key="seed")
        made = seed_user(iam, "alice", ssh_keys=1, certificates=1)
        print("seeded user alice with:")
        for kind in ("AccessKeys", "SSHPublicKeys", "Certificates", "ServiceCredentials", "MFADevices", "Groups",
                     "InlinePolicies", "AttachedPolicies"):
            print(f"  {kind:<20} {', '.join(made[kind])}")
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "AKIAOPERATOROPERATOR", "AWS_SECRET_ACCESS_KEY": "operator",
               "AWS_EC2_METADATA_DISABLED": "true"}
        common = [str(OFFBOARD), "--endpoint-url", server.url, "--region", "us-east-1"]
        print("\n$ offboard delete --user-name alice --yes   (stage by stage)")
        result = subprocess.run([*common, "delete", "--user-name", "alice", "--yes", "--output", "json",
                                 "--context", '{"Ticket": "DEMO-1", "Requester": "make demo"}'],
                                env=env, text=True, capture_output=True, stdin=subprocess.DEVNULL)
        sys.stderr.write(result.stderr)
        if result.returncode != 0:
            print(f"offboarding FAILED (exit {result.returncode})")
            return 1
        print("\naudit record:")
        print(json.dumps(json.loads(result.stdout), indent=2))
        left = leftovers(iam, "alice")
        print(f"\nfinal status: {'SUCCEEDED' if not left else 'INCOMPLETE ' + json.dumps(left)}")
        return 0 if not left else 1
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
