"""The Python + boto3 equivalent of a stage, for the benchmarks: what the SSM
runbook's executeScript steps or a hand-written Python Lambda would run.
Minimal and fair: clients are created at init, as boto3 users do; the loop
below is a bare Lambda Runtime API client (lighter than AWS's own bootstrap).
The two inventory-style stages do the same IAM reads as the Rust ones; the
others only answer, since cold init is what they are compared on."""

import json
import os
import urllib.request

import boto3

STAGE = os.environ.get("STAGE", "GetUsername")
iam = boto3.client("iam")
sts = boto3.client("sts") if STAGE == "GetUsername" else None


def handle(event):
    user = event.get("UserName")
    if STAGE == "GetUsername":
        found = iam.get_user(UserName=user)["User"]
        tags = iam.list_user_tags(UserName=user)["Tags"]
        sts.get_caller_identity()
        return {"User": {"UserName": found["UserName"], "UserId": found["UserId"], "Tags": tags}}
    if STAGE == "GetKeysCertificatesMfaAndCredentials":
        result = {}
        for key, call in [
            ("AccessKeys", lambda: iam.get_paginator("list_access_keys").paginate(UserName=user).build_full_result()),
            ("SSHPublicKeys", lambda: iam.get_paginator("list_ssh_public_keys").paginate(UserName=user).build_full_result()),
            ("Certificates", lambda: iam.get_paginator("list_signing_certificates").paginate(UserName=user).build_full_result()),
            ("MFADevices", lambda: iam.get_paginator("list_mfa_devices").paginate(UserName=user).build_full_result()),
            ("ServiceSpecificCredentials", lambda: iam.list_service_specific_credentials(UserName=user)),
        ]:
            result[key] = call()
        return json.loads(json.dumps(result, default=str))
    return {"Stage": STAGE}


def main():
    api = os.environ["AWS_LAMBDA_RUNTIME_API"]
    base = f"http://{api}/2018-06-01/runtime/invocation"
    while True:
        with urllib.request.urlopen(f"{base}/next") as response:
            request_id = response.headers["Lambda-Runtime-Aws-Request-Id"]
            event = json.loads(response.read() or b"{}")
        body = json.dumps(handle(event)).encode()
        urllib.request.urlopen(urllib.request.Request(f"{base}/{request_id}/response", data=body, method="POST")).read()


if __name__ == "__main__":
    main()
