"""`make bench`: what an operator pays for, measured on this machine, side by
side with a Python + boto3 handler and a bare lambda_runtime binary (the
floor). Ratios measured in one run are what count; absolute numbers on a
2-core machine are noisy, so medians and spreads are reported.

Writes bench/results/latest.json and bench/results/latest.md.
Environment: BENCH_RUNS (cold-init runs, default 20), BENCH_WARM (warm
invocations, default 20), BENCH_SCALE (scale runs "<offboardings>@<IAM bucket
rate>", default "200@10,1000@50", each started independently and as a batch,
the deployment's IAM budget set to the bucket rate), BENCH_BUDGET_HELD
("<offboardings>@<bucket rate>/<budget>", default "50@10/5")."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "emulator"))

import boto3  # noqa: E402

from lambda_host import FUNCTIONS, LambdaHost, access_key_for  # noqa: E402
from seed import leftovers, seed_user  # noqa: E402

RELEASE = ROOT / "target" / "release"
RUNS = int(os.environ.get("BENCH_RUNS", "20"))
WARM = int(os.environ.get("BENCH_WARM", "20"))
#: Scale runs, "<offboardings>@<IAM bucket rate>", each run in every mode of
#: BENCH_SCALE_MODES; the deployment's budget is the bucket rate.
SCALE = [tuple(float(x) for x in run.split("@")) for run in os.environ.get("BENCH_SCALE", "200@10,1000@50").split(",") if run]
#: Which of the two ways each scale run is made ("independent,batch").
SCALE_MODES = os.environ.get("BENCH_SCALE_MODES", "independent,batch").split(",")
#: The budget-held run: "<offboardings>@<bucket rate>/<budget>".
BUDGET_HELD = os.environ.get("BENCH_BUDGET_HELD", "50@10/5")
SCALE_USER = dict(access_keys=1, ssh_keys=0, certificates=0, services=("bedrock.amazonaws.com",), virtual_devices=1,
                  passkeys=1, hardware_tokens=0, groups=1, inline_policies=1, attached_policies=1, boundary=False)
PYTHON = ROOT / ".venv" / "bin" / "python"
BASE_ENV = {
    "PATH": os.environ.get("PATH", ""),
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "AKIABENCHBENCHBENCH1",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_LAMBDA_FUNCTION_NAME": "bench",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
    "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/bench",
    "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
}


def summary(values: list[float]) -> dict:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50": round(statistics.median(ordered), 3), "p95": round(p95, 3), "min": round(ordered[0], 3),
            "max": round(ordered[-1], 3), "n": len(ordered)}


# --- 1. cold init: exec -> first GET /next --------------------------------

class FirstNext:
    """A Runtime API stub that notes when /next is first asked for."""

    def __init__(self):
        self.arrived = threading.Event()
        self.at = 0.0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                if "/invocation/next" in self.path and not stub.arrived.is_set():
                    stub.at = time.perf_counter()
                    stub.arrived.set()
                self.send_response(410)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.api = f"127.0.0.1:{self.server.server_address[1]}"


def cold_init_ms(command: list[str], env: dict[str, str], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        stub = FirstNext()
        started = time.perf_counter()
        process = subprocess.Popen(command, env={**env, "AWS_LAMBDA_RUNTIME_API": stub.api},
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not stub.arrived.wait(30):
            process.kill()
            raise RuntimeError(f"{command} never asked for an invocation")
        samples.append((stub.at - started) * 1000)
        process.kill()
        process.wait()
        stub.server.shutdown()
    return samples


def bench_cold_init(iam_url: str) -> dict:
    env = {**BASE_ENV, "AWS_ENDPOINT_URL_IAM": iam_url, "AWS_ENDPOINT_URL_STS": iam_url}
    floor_command = [str(RELEASE / "bench-floor")]
    results, all_floor = {}, []
    for stage, binary in FUNCTIONS.items():
        # Floor and function alternate, so each ratio compares runs made under
        # the same background load.
        rust_samples, floor_samples = [], []
        for _ in range(RUNS):
            floor_samples += cold_init_ms(floor_command, env, 1)
            rust_samples += cold_init_ms([str(RELEASE / binary)], env, 1)
        all_floor += floor_samples
        rust = summary(rust_samples)
        rust["times_floor"] = round(rust["p50"] / statistics.median(floor_samples), 2)
        python = summary(cold_init_ms([str(PYTHON), str(ROOT / "bench" / "python_stage.py")],
                                      {**env, "STAGE": stage}, max(5, RUNS // 2)))
        results[stage] = {"rust": rust, "python_boto3": python}
        print(f"  cold init {stage:<42} rust p50 {rust['p50']:7.2f} ms ({rust['times_floor']:.2f}x floor)   "
              f"python+boto3 p50 {python['p50']:8.1f} ms", flush=True)
    results["floor (lambda_runtime, no SDK)"] = summary(all_floor)
    return results


# --- 2/3. first and warm invocation latency, peak RSS ----------------------

def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def stage_requests(account: str, bench_user_id: str) -> dict[str, dict]:
    """One representative request per stage, repeatable against the same
    state (removals take the NoSuchEntity path, which is the same code)."""
    return {
        "GetUsername": {"UserName": "bench", "DryRun": True},
        "GetKeysCertificatesMfaAndCredentials": {"UserName": "bench"},
        "GetGroupsAndPolicies": {"UserName": "bench"},
        # A retry of the MFA task after its device was removed (re-check,
        # ListMFADevices, recorded as removed): repeatable, changes nothing.
        "DeleteKeysCertificatesMfaAndCredentials": {
            "UserName": "bench", "UserId": bench_user_id, "HandledAs": "Virtual", "RetryCount": 1,
            "MFADevice": {"SerialNumber": f"arn:aws:iam::{account}:mfa/no-such-device", "EnableDate": None, "HandledAs": "Virtual"}},
        "DeleteGroupsAndPolicies": {"UserName": "bench", "UserId": bench_user_id, "Permissions": {
            "Groups": [], "AttachedPolicies": [], "InlinePolicies": [{"PolicyName": "no-such-policy", "PolicyDocument": {}}]}},
        "DeleteIAMUserAndVerify": {
            "Target": {"User": {"UserName": "nobody-bench", "UserId": "AIDABENCH00000000000", "Arn": "arn:aws:iam::123456789012:user/nobody-bench",
                                "Path": "/", "CreateDate": None, "PasswordLastUsed": None, "Tags": [], "PermissionsBoundary": None},
                       "DryRun": False, "Context": None, "DurationMs": 1},
            "Removed": {"Credentials": {"LoginProfile": None, "AccessKeys": [], "SSHPublicKeys": [], "SigningCertificates": [],
                                        "ServiceSpecificCredentials": [], "MFADevices": []}, "MFADevices": [],
                        "Permissions": {"Groups": [], "InlinePolicies": [], "AttachedPolicies": []}}},
        # The check after a quarantine's wait (one GetUser): the bench user is
        # not quarantined, so it answers StillQuarantined false, every time.
        "QuarantineUser": {"Action": "Check", "UserName": "bench", "UserId": bench_user_id,
                           "DeleteAfter": "2026-12-01T17:00:00Z"},
        # The batch machine's first call on an inline list (no AWS call at all).
        "OffboardBatch": {"Validate": {"UserNames": ["bench", "bench-2"], "MaxConcurrency": 5}},
    }


def bench_invocations(iam_url: str) -> dict:
    from lambda_host import ACCOUNT

    results = {}
    iam = boto3.client("iam", endpoint_url=iam_url, region_name="us-east-1",
                       aws_access_key_id="AKIASEEDSEEDSEEDSEED", aws_secret_access_key="seed")
    requests = stage_requests(ACCOUNT, iam.get_user(UserName="bench")["User"]["UserId"])
    host = LambdaHost(iam_url, bin_dir=RELEASE, log_dir=Path(tempfile.mkdtemp()))
    host.start()
    try:
        for stage, function in host.functions.items():
            payload = json.dumps(requests[stage]).encode()
            started = time.perf_counter()
            first = function.invoke(payload)
            first_ms = (time.perf_counter() - started) * 1000
            assert not first.error, (stage, first.body)
            warm = []
            for _ in range(WARM):
                started = time.perf_counter()
                answer = function.invoke(payload)
                warm.append((time.perf_counter() - started) * 1000)
                assert not answer.error, (stage, answer.body)
            results[stage] = {"first_ms": round(first_ms, 2), "warm_ms": summary(warm),
                              "peak_rss_mib": round(peak_rss_kib(function.processes[0].pid) / 1024, 2)}
            print(f"  invoke {stage:<45} first {first_ms:6.1f} ms  warm p50 {results[stage]['warm_ms']['p50']:5.1f} ms  "
                  f"RSS {results[stage]['peak_rss_mib']} MiB", flush=True)
    finally:
        host.stop()
    for stage in ("GetUsername", "GetKeysCertificatesMfaAndCredentials"):
        results[stage]["python_boto3_peak_rss_mib"] = python_rss(iam_url, stage)
    return results


def python_rss(iam_url: str, stage: str) -> float:
    """Peak RSS of the Python + boto3 handler over the same invocation."""
    from lambda_host import Function

    env = {"AWS_ENDPOINT_URL_IAM": iam_url, "AWS_ENDPOINT_URL_STS": iam_url, "STAGE": stage}
    command = [str(PYTHON), str(ROOT / "bench" / "python_stage.py")]
    function = Function(stage, command, env, 1, Path(tempfile.mkdtemp()))
    function.start()
    try:
        for _ in range(3):
            answer = function.invoke(json.dumps({"UserName": "bench"}).encode())
            assert not answer.error, answer.body
        return round(peak_rss_kib(function.processes[0].pid) / 1024, 2)
    finally:
        function.stop()


# --- 4. package size -------------------------------------------------------

def bench_package_sizes() -> dict:
    sizes = {}
    for stage, binary in {**FUNCTIONS, "floor": "bench-floor"}.items():
        archive = Path(tempfile.mkdtemp()) / f"{binary}.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zipped:
            zipped.write(RELEASE / binary, "bootstrap")
        sizes[stage] = {"binary_mib": round((RELEASE / binary).stat().st_size / 2**20, 2),
                        "zip_mib": round(archive.stat().st_size / 2**20, 2)}
    return sizes


# --- 5/6/7. calls, wall time, scale through the state machine --------------

REFERENCE = dict(access_keys=2, ssh_keys=5, certificates=2,
                 services=("codecommit.amazonaws.com", "cassandra.amazonaws.com", "bedrock.amazonaws.com"),
                 credentials_per_service=2, virtual_devices=3, passkeys=3, hardware_tokens=2,
                 groups=10, inline_policies=5, attached_policies=20)


def lower_bound(made: dict) -> dict:
    virtual = sum(1 for s in made["MFADevices"] if ":mfa/" in s)
    items = (len(made["AccessKeys"]) + len(made["SSHPublicKeys"]) + len(made["Certificates"])
             + len(made["ServiceCredentials"]) + len(made["MFADevices"]) + len(made["Groups"])
             + len(made["InlinePolicies"]) + len(made["AttachedPolicies"]) + 1)  # + login profile
    return {
        "resolve (GetUser, which carries the tags)": 1,
        # A direct invoke skips GetUsername, so every mutating task checks its
        # target first: GetUser in the credentials, permissions and deletion
        # tasks, GetUser + ListMFADevices in each MFA device's task.
        "re-check before each mutating task's first change": 3 + 2 * len(made["MFADevices"]),
        "list one page per type (6 credential + 3 permission lists)": 9,
        "GetUserPolicy per inline policy (documents for the record)": len(made["InlinePolicies"]),
        "one mutation per item (+ DeleteVirtualMFADevice per virtual device)": items + virtual,
        # Marking it as taken from the user first (mfa.rs, TAKEN_FROM_TAG) is
        # what lets a retry delete a device its earlier attempt left unassigned.
        "TagMFADevice per virtual device": virtual,
        "DeleteUser + one GetUser to verify": 2,
    }


def bench_through_state_machine() -> dict:
    from stack import Stack

    results: dict = {}
    with Stack(instances=4) as stack:
        by_key = {access_key_for(stage): stage for stage in FUNCTIONS}
        walls, calls_per_run = [], None
        for run in range(3):
            made = seed_user(stack.iam, f"reference{run}", **REFERENCE)
            stack.clear_calls()
            started = time.perf_counter()
            execution = stack.run({"UserName": f"reference{run}"}, name=f"reference{run}")
            walls.append((time.perf_counter() - started) * 1000)
            assert execution["status"] == "SUCCEEDED", execution.get("cause")
            calls = [c for c in stack.calls() if c["AccessKeyId"] in by_key and c["Service"] == "iam"]
            calls_per_run = {"total": len(calls), "by_action": {}}
            for call in calls:
                calls_per_run["by_action"][call["Action"]] = calls_per_run["by_action"].get(call["Action"], 0) + 1
            bound = lower_bound(made)
        results["reference_user"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in REFERENCE.items()}
        results["iam_calls"] = {"observed": calls_per_run, "lower_bound": bound, "lower_bound_total": sum(bound.values())}
        results["state_machine_wall_ms"] = summary(walls)
        print(f"  reference offboarding via the state machine: p50 {results['state_machine_wall_ms']['p50']:.0f} ms, "
              f"{calls_per_run['total']} IAM calls (lower bound {sum(bound.values()) })", flush=True)

        from moto.iam.models import iam_backends
        backend = iam_backends["123456789012"]["global"]
        for i in range(5000):
            backend.create_user(region_name="us-east-1", user_name=f"crowd{i:04d}")
        target = stack.iam.get_user(UserName="crowd4999")["User"]["UserId"]
        stack.clear_calls()
        execution = stack.run({"IAMUserId": target, "DryRun": True}, name="crowd-lookup")
        assert execution["status"] == "SUCCEEDED"
        results["id_lookup_5000_users_list_calls"] = sum(
            1 for c in stack.calls() if c["Action"] == "ListUsers" and by_key.get(c["AccessKeyId"]) == "GetUsername")
        for i in range(5000):
            backend.delete_user(f"crowd{i:04d}")

    return results


def busiest_window(times: list[float], seconds: float) -> int:
    times = sorted(times)
    busiest, first = 0, 0
    for last, at in enumerate(times):
        while times[first] <= at - seconds:
            first += 1
        busiest = max(busiest, last - first + 1)
    return busiest


def per_second(times: list[float]) -> list[int]:
    """Calls in each whole second from the first call to the last."""
    first = min(times)
    counts = [0] * (int(max(times) - first) + 1)
    for at in times:
        counts[int(at - first)] += 1
    return counts


def stage_concurrency(budget: float) -> int:
    """The template's advice for StageConcurrency: about IamCallsPerSecond / 2."""
    return max(1, round(budget / 2))


def scale_run(size: int, rate: float, budget: float, batch: bool) -> dict:
    """``size`` offboardings on a fresh stack whose IAM bucket serves ``rate``
    calls/s, under a deployment budget of ``budget`` calls/s: started at once
    (independently), or as one execution of the batch machine."""
    from stack import Stack

    # The template's StageTimeoutSeconds default; idle instances go away as on
    # Lambda, so a thousand executions moving from stage to stage do not leave
    # a thousand processes behind each function. Each function's reserved
    # concurrency is the template's advice for StageConcurrency.
    concurrency = stage_concurrency(budget)
    with Stack(timeout_seconds=300, idle_seconds=10, iam_budget=budget, max_concurrency=concurrency) as stack:
        names = [f"{'b' if batch else 'i'}{size}-{i}" for i in range(size)]
        needed = sum(sum(lower_bound(seed_user(stack.iam, name, **SCALE_USER)).values()) for name in names)
        batch_arn = stack.create_batch_state_machine() if batch else None
        stack.clear_calls()
        stack.faults(RequestsPerSecond=rate)
        started, started_at = time.perf_counter(), time.time()
        if batch:
            # As many children at once as the budget's calls per second: each
            # makes about 30 calls, so they keep the budget busy without queueing
            # behind hundreds of others.
            execution = stack.sfn.start_execution(stateMachineArn=batch_arn, name=f"batch{size}",
                                                  input=json.dumps({"UserNames": names,
                                                                    "MaxConcurrency": int(budget)}))
            stack.wait(execution["executionArn"], timeout=7200)
            children = [e for page in stack.sfn.get_paginator("list_executions").paginate(stateMachineArn=stack.state_machine_arn)
                        for e in page["executions"]]
            outcomes = [stack.wait(child["executionArn"], timeout=60)["status"] for child in children]
        else:
            arns = [stack.start({"UserName": name}, name=name) for name in names]
            children = [{"executionArn": arn} for arn in arns]
            outcomes = [stack.wait(arn, timeout=7200)["status"] for arn in arns]
        elapsed, ended_at = time.perf_counter() - started, time.time()
        # Why executions did not succeed, by the error they ended with.
        failures = Counter(stack.sfn.describe_execution(executionArn=child["executionArn"]).get("error", "none")
                           for child, outcome in zip(children, outcomes) if outcome != "SUCCEEDED")
        stack.faults()
        calls = [c for c in stack.calls() if c["Service"] == "iam"]
        served = [c for c in calls if not c["Injected"]]
        throttled = len(calls) - len(served)
        left = sum(1 for name in names if leftovers(stack.iam, name))
        limit = min(rate, budget)
        ideal = needed / limit
        served_times = [c["Time"] for c in served]
        return {"offboardings": size, "mode": "batch" if batch else "independent", "bucket_rate_per_s": rate,
                "budget_per_s": budget, "stage_concurrency": concurrency, "succeeded": outcomes.count("SUCCEEDED"), "failed_by_error": dict(failures),
                "left_behind": left,
                "seconds": round(elapsed, 1), "ideal_seconds": round(ideal, 1), "wall_over_ideal": round(elapsed / ideal, 3),
                "iam_calls_served": len(served), "iam_calls_needed": needed,
                "served_over_needed": round(len(served) / needed, 3), "throttled": throttled,
                "throttled_over_served": round(throttled / len(served), 3),
                "busiest_10s_calls_per_s": busiest_window(served_times, 10.0) / 10.0,
                # Where wall time above the ideal goes: before the first IAM
                # call, after the last, and in seconds when IAM served less
                # than the rate in between.
                "ramp_seconds": round(min(served_times) - started_at, 1),
                "tail_seconds": round(ended_at - max(served_times), 1),
                "seconds_below_rate": sum(1 for n in per_second(served_times) if n < 0.9 * limit)}


def bench_scale() -> dict:
    rows = []
    for size, rate in SCALE:
        for batch in [mode == "batch" for mode in SCALE_MODES]:
            row = scale_run(int(size), rate, rate, batch)
            rows.append(row)
            print(f"  scale {row['mode']:>11} {row['offboardings']:>4} @ {rate:g}/s: {row['succeeded']} SUCCEEDED, "
                  f"{row['left_behind']} left, {row['seconds']} s (ideal {row['ideal_seconds']}), served/needed "
                  f"{row['served_over_needed']}, throttled/served {row['throttled_over_served']}", flush=True)
    size, rest = BUDGET_HELD.split("@")
    rate, budget = (float(x) for x in rest.split("/"))
    held = scale_run(int(size), rate, budget, False)
    print(f"  budget held: {held['busiest_10s_calls_per_s']} calls/s at most in any 10 s under a budget of {budget:g}/s "
          f"(bucket {rate:g}/s), {held['succeeded']} SUCCEEDED, {held['throttled']} throttled", flush=True)
    return {"runs": rows, "budget_held": held}


def bench_cli_wall(iam_url: str) -> dict:
    iam = boto3.client("iam", endpoint_url=iam_url, region_name="us-east-1",
                       aws_access_key_id="AKIASEEDSEEDSEEDSEED", aws_secret_access_key="seed")
    walls = []
    for run in range(3):
        seed_user(iam, f"cliref{run}", **REFERENCE)
        started = time.perf_counter()
        result = subprocess.run([str(RELEASE / "offboard"), "--endpoint-url", iam_url, "--region", "us-east-1", "delete",
                                 "--user-name", f"cliref{run}", "--yes", "--output", "json"],
                                env={**BASE_ENV, "AWS_ACCESS_KEY_ID": "AKIAOPERATOROPERATOR"},
                                capture_output=True, text=True, stdin=subprocess.DEVNULL)
        walls.append((time.perf_counter() - started) * 1000)
        assert result.returncode == 0, result.stderr
    return summary(walls)


def markdown(results: dict) -> str:
    cold = results["cold_init_ms"]
    floor = cold["floor (lambda_runtime, no SDK)"]["p50"]
    lines = ["| function | cold init p50 (p95) | × floor | Python+boto3 p50 | Python ÷ Rust | first / warm p50 invoke | peak RSS | zip |",
             "|---|---|---|---|---|---|---|---|"]
    for stage in FUNCTIONS:
        rust, python = cold[stage]["rust"], cold[stage]["python_boto3"]
        inv = results["invocations"][stage]
        lines.append(f"| {stage} | {rust['p50']:.2f} ms ({rust['p95']:.2f}) | {rust['times_floor']:.2f} | {python['p50']:.0f} ms | "
                     f"{python['p50'] / rust['p50']:.0f}× | {inv['first_ms']:.1f} / {inv['warm_ms']['p50']:.1f} ms | "
                     f"{inv['peak_rss_mib']} MiB | {results['package_sizes'][stage]['zip_mib']} MiB |")
    lines.append(f"\nFloor (bare lambda_runtime binary): cold init p50 {floor:.2f} ms. "
                 + "Python+boto3 peak RSS: " + ", ".join(
                     f"{s} {results['invocations'][s]['python_boto3_peak_rss_mib']} MiB" for s in ("GetUsername", "GetKeysCertificatesMfaAndCredentials")))
    sm = results["state_machine"]
    lines.append(f"\nReference offboarding (every credential type at its limit): {sm['iam_calls']['observed']['total']} IAM calls "
                 f"(lower bound {sm['iam_calls']['lower_bound_total']}); wall time p50 {sm['state_machine_wall_ms']['p50']:.0f} ms "
                 f"through the state machine, {results['cli_wall_ms']['p50']:.0f} ms through `offboard delete`. "
                 f"Id lookup among 5,000 users: {sm['id_lookup_5000_users_list_calls']} ListUsers calls.")
    if "scale" in results:
        lines.append("\n| offboardings | started | bucket = budget | StageConcurrency | SUCCEEDED | left behind | IAM calls served ÷ needed "
                     "(goal ≤ 1.10) | wall ÷ ideal (goal ≤ 1.25) | throttled ÷ served (goal ≤ 0.5) |\n|---|---|---|---|---|---|---|---|---|")
        for row in results["scale"]["runs"]:
            lines.append(f"| {row['offboardings']} | {row['mode']} | {row['bucket_rate_per_s']:g}/s | {row['stage_concurrency']} | {row['succeeded']} | "
                         f"{row['left_behind']} | {row['iam_calls_served']} ÷ {row['iam_calls_needed']} = {row['served_over_needed']} | "
                         f"{row['seconds']} s ÷ {row['ideal_seconds']} s = {row['wall_over_ideal']} | "
                         f"{row['throttled']} ÷ {row['iam_calls_served']} = {row['throttled_over_served']} |")
        held = results["scale"]["budget_held"]
        lines.append(f"\nBudget held: {held['offboardings']} offboardings started at once with a budget of "
                     f"{held['budget_per_s']:g} calls/s on a bucket of {held['bucket_rate_per_s']:g}/s: at most "
                     f"{held['busiest_10s_calls_per_s']} IAM calls/s in any 10 s, {held['succeeded']} SUCCEEDED, "
                     f"{held['throttled']} throttled, {held['seconds']} s (ideal {held['ideal_seconds']} s).")
    return "\n".join(lines) + "\n"


def main() -> int:
    # The benchmark measures the deploy-grade release binaries (the local
    # stack's LambdaHost reads this when it starts).
    os.environ["OFFBOARD_BIN_DIR"] = str(RELEASE)
    from server import start

    server = start(0)
    iam = boto3.client("iam", endpoint_url=server.url, region_name="us-east-1",
                       aws_access_key_id="AKIASEEDSEEDSEEDSEED", aws_secret_access_key="seed")
    seed_user(iam, "bench", virtual_devices=1, passkeys=1, hardware_tokens=1)
    print(f"machine: {os.cpu_count()} cores; cold-init runs {RUNS}, warm invocations {WARM}", flush=True)
    results = {"machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]}}
    results["package_sizes"] = bench_package_sizes()
    results["cold_init_ms"] = bench_cold_init(server.url)
    results["invocations"] = bench_invocations(server.url)
    results["cli_wall_ms"] = bench_cli_wall(server.url)
    server.stop()
    results["state_machine"] = bench_through_state_machine()
    results["scale"] = bench_scale()
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "latest.md").write_text(markdown(results))
    print("\n" + markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
