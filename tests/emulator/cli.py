"""Runs the `offboard` CLI against a local endpoint, as an operator would:
its own access key (so the call log tells its calls apart), no terminal."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from lambda_host import BIN_DIR

OFFBOARD = Path(os.environ.get("OFFBOARD_BIN", BIN_DIR / "offboard"))
OPERATOR_KEY = "AKIAOPERATOROPERATOR"


def run_offboard(endpoint_url: str, *args: str, access_key: str = OPERATOR_KEY, env: dict | None = None,
                 timeout: float = 600) -> subprocess.CompletedProcess:
    assert OFFBOARD.exists(), f"build the CLI first: {OFFBOARD}"
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": "operator",
        "AWS_EC2_METADATA_DISABLED": "true",
        "HOME": os.environ.get("HOME", "/tmp"),
        **(env or {}),
    }
    command = [str(OFFBOARD), "--endpoint-url", endpoint_url, "--region", "us-east-1", *args]
    return subprocess.run(command, capture_output=True, text=True, env=environment, stdin=subprocess.DEVNULL,
                          timeout=timeout)
