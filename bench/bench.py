"""`make bench`: what an operator pays for, measured on this machine, side by
side with a Python + boto3 handler and a bare lambda_runtime binary (the
floor). Ratios measured in one run are what count; absolute numbers on a
2-core machine are noisy, so medians and spreads are reported.

Every function acts only for the pending step of a running execution of this
deployment's state machines (crates/core/src/workflow.rs): a direct invoke is
refused (NotFromWorkflow). Invocation latency, RSS and calls per stage are
therefore measured through real executions on the local stack, from the
executions' histories and the functions' own logs, which also give the
admission check's share of each step (``check_ms``).

Writes bench/results/latest.json and bench/results/latest.md.
Environment: BENCH_RUNS (cold-init runs, default 20), BENCH_WARM (offboardings
run one at a time through the state machine, default 20), BENCH_QUARANTINED
(offboardings with a grace period, the only ones to run QuarantineUser,
default 3), BENCH_BATCHES (batch executions of 2 users, the only ones to run
OffboardBatch, default 2), BENCH_SCALE (scale runs "<offboardings>@<IAM
bucket rate>", default "200@10,1000@50", each started independently and as a
batch, the deployment's IAM budget set to the bucket rate), BENCH_BUDGET_HELD
("<offboardings>@<bucket rate>/<budget>", default "50@10/5"), BENCH_ORG_ACCOUNTS (an
org-wide dry run over that many accounts, run only when set; BENCH_ORG_USER_EVERY,
default 10: one account in that many holds the user; BENCH_ORG_CONCURRENCY, default
10: the deployment's AccountConcurrency).

`bench/bench.py tls` measures zip sizes, cold init and the first AWS call over
HTTPS (TLS handshake included) of target/release, beside the build in
BENCH_BASELINE_BIN_DIR when set, and writes bench/results/tls.json. `make bench`
fails when a function's zip is over its budget (lambda_host.ZIP_BUDGET_BYTES).

`bench/bench.py org` runs the org-wide row alone (BENCH_ORG_ACCOUNTS, default 100),
with the binaries of OFFBOARD_BIN_DIR if set, and writes bench/results/org.json."""

from __future__ import annotations

import datetime
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "emulator"))

import boto3  # noqa: E402

from lambda_host import FUNCTIONS, STATE_MACHINE_ARNS, ZIP_BUDGET_BYTES, access_key_for, function_arn  # noqa: E402
from seed import leftovers, seed_user  # noqa: E402

RELEASE = ROOT / "target" / "release"
RUNS = int(os.environ.get("BENCH_RUNS", "20"))
#: Offboardings run one at a time through the state machine (warm steps).
WARM = int(os.environ.get("BENCH_WARM", "20"))
#: Offboardings with a grace period (QuarantineUser's steps), one at a time.
QUARANTINED = int(os.environ.get("BENCH_QUARANTINED", "3"))
#: Batch executions of BATCH_SIZE users each (OffboardBatch's steps).
BATCHES = int(os.environ.get("BENCH_BATCHES", "2"))
BATCH_SIZE = 2
#: The user each workflow-measured offboarding removes: seed_user's defaults
#: (two access keys, an SSH key, a certificate, two service credentials, a
#: group, an inline and an attached policy) and one MFA device of each kind.
WORKFLOW_USER = dict(virtual_devices=1, passkeys=1, hardware_tokens=1)
#: Scale runs, "<offboardings>@<IAM bucket rate>", each run in every mode of
#: BENCH_SCALE_MODES; the deployment's budget is the bucket rate.
SCALE = [tuple(float(x) for x in run.split("@")) for run in os.environ.get("BENCH_SCALE", "200@10,1000@50").split(",") if run]
#: Which of the two ways each scale run is made ("independent,batch").
SCALE_MODES = os.environ.get("BENCH_SCALE_MODES", "independent,batch").split(",")
#: The budget-held run: "<offboardings>@<bucket rate>/<budget>".
BUDGET_HELD = os.environ.get("BENCH_BUDGET_HELD", "50@10/5")
#: An org-wide dry run over this many accounts (0: not run).
ORG_ACCOUNTS = int(os.environ.get("BENCH_ORG_ACCOUNTS", "0"))
#: One account in this many holds the user (Planned there, NotPresent elsewhere).
ORG_USER_EVERY = int(os.environ.get("BENCH_ORG_USER_EVERY", "10"))
#: The deployment's AccountConcurrency for that run (the template's default).
ORG_CONCURRENCY = int(os.environ.get("BENCH_ORG_CONCURRENCY", "10"))
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
#: A function refuses to start without its deployment's state machines
#: (OFFBOARD_STATE_MACHINE_ARNS, crates/core/src/workflow.rs); init only
#: checks their form, so the local stack's ARNs serve the cold-init probe.
GUARD_ENV = {"OFFBOARD_STATE_MACHINE_ARNS": ",".join(STATE_MACHINE_ARNS)}
#: The admission check's log line (workflow.rs, WorkflowGuard::admit).
ADMITTED = "invocation admitted: its execution is at this step"
#: The emulator's call log names a call's service by its SigV4 signing name:
#: Step Functions signs as "states".
SFN_SERVICE = "states"


def probe_env(endpoint: str) -> dict[str, str]:
    """The environment of a cold-init probe: the function's configuration as
    the template sets it, every AWS endpoint on ``endpoint``."""
    return {**BASE_ENV, "AWS_ENDPOINT_URL_IAM": endpoint, "AWS_ENDPOINT_URL_STS": endpoint,
            "AWS_ENDPOINT_URL_SFN": endpoint, **GUARD_ENV}


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"p50": round(statistics.median(ordered), 3), "p95": round(percentile(ordered, 0.95), 3),
            "min": round(ordered[0], 3), "max": round(ordered[-1], 3), "n": len(ordered)}


def spread(values: list[float]) -> dict:
    """Median, p90 and max: how a per-step cost is distributed."""
    ordered = sorted(values)
    return {"p50": round(statistics.median(ordered), 3), "p90": round(percentile(ordered, 0.90), 3),
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
        with tempfile.TemporaryFile() as stderr:
            started = time.perf_counter()
            process = subprocess.Popen(command, env={**env, "AWS_LAMBDA_RUNTIME_API": stub.api},
                                       stdout=subprocess.DEVNULL, stderr=stderr)
            try:
                # A binary that refuses to start (a bad configuration) exits
                # before its first /next: said at once, with its reason.
                deadline = time.monotonic() + 30
                while not stub.arrived.wait(0.05):
                    if process.poll() is not None or time.monotonic() > deadline:
                        stderr.seek(0)
                        raise RuntimeError(f"{command} never asked for an invocation (exit status {process.poll()}): "
                                           f"{stderr.read().decode(errors='replace')[-2000:]}")
                samples.append((stub.at - started) * 1000)
            finally:
                process.kill()
                process.wait()
                stub.server.shutdown()
    return samples


def bench_cold_init(iam_url: str) -> dict:
    env = probe_env(iam_url)
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


# --- 1b. the first AWS call, TLS handshake included -----------------------

#: Binaries built before a change (BENCH_BASELINE_BIN_DIR), measured side by
#: side with target/release by `bench/bench.py tls`.
BASELINE = Path(os.environ["BENCH_BASELINE_BIN_DIR"]) if os.environ.get("BENCH_BASELINE_BIN_DIR") else None


def tls_context(directory: Path):
    """A server certificate for 127.0.0.1 issued by a CA made here, both RSA
    2048 as the certificates of AWS endpoints are (Amazon RSA 2048 M0x). A
    function trusts the CA through OFFBOARD_TRUST_NATIVE_ROOTS and
    SSL_CERT_FILE, which rustls-native-certs reads instead of the system store."""
    import ssl

    ca_key, ca, key, csr, cert, ext = (directory / name for name in
                                       ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem", "ext.cnf"))
    openssl = functools.partial(subprocess.run, check=True, capture_output=True)
    openssl(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=bench root",
             "-keyout", ca_key, "-out", ca])
    openssl(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", csr])
    ext.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    openssl(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "1",
             "-extfile", ext, "-out", cert])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context, ca


class Invocations:
    """A Runtime API stub handing out ``payloads`` one after the other; notes
    when the process first asks for one (cold init), and how long each took
    from the moment it was handed out to its answer."""

    def __init__(self, stage: str, payloads: list[dict]):
        self.first_next = threading.Event()
        self.done = threading.Event()
        self.started_at = self.first_next_at = 0.0
        self.latencies_ms: list[float] = []
        self.answers: list[tuple[str, dict]] = []
        stub, handed_out, pending = self, [0.0], list(payloads)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                if not stub.first_next.is_set():
                    stub.first_next_at = time.perf_counter()
                    stub.first_next.set()
                if not pending:
                    stub.done.wait(30)
                    self.send_response(410)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps(pending.pop(0)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Lambda-Runtime-Aws-Request-Id", str(uuid.uuid4()))
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 60_000))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn", function_arn(stage))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                handed_out[0] = time.perf_counter()

            def do_POST(self):  # noqa: N802
                answered = time.perf_counter()
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                stub.latencies_ms.append((answered - handed_out[0]) * 1000)
                stub.answers.append((self.path.rsplit("/", 1)[-1], json.loads(body or b"{}")))
                if not pending:
                    stub.done.set()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.api = f"127.0.0.1:{self.server.server_address[1]}"


def first_calls(binary: Path, stage: str, env: dict[str, str]) -> tuple[float, float, float]:
    """Cold init, the first invocation and the second of a fresh process.
    Each invocation names an execution that does not exist, so the workflow
    check's DescribeExecution (with GetExecutionHistory beside it) is the
    function's first AWS call and the answer is NotFromWorkflow: the first
    pays the TLS handshake, the second reuses the connection."""
    machine = STATE_MACHINE_ARNS[0]
    payloads = [{"ExecutionId": machine.replace(":stateMachine:", ":execution:") + f":bench-{uuid.uuid4()}"}
                for _ in range(2)]
    stub = Invocations(stage, payloads)
    started = time.perf_counter()
    process = subprocess.Popen([str(binary)], env={**env, "AWS_LAMBDA_RUNTIME_API": stub.api},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if not stub.done.wait(30):
            process.kill()
            raise RuntimeError(f"{binary} answered {len(stub.answers)} of 2 invocations: "
                               f"{process.communicate()[1].decode(errors='replace')[-2000:]}")
    finally:
        process.kill()
        process.wait()
        stub.server.shutdown()
    for kind, answer in stub.answers:
        # What was measured is the refusal after a real DescribeExecution.
        if kind != "error" or answer.get("errorType") != "NotFromWorkflow":
            raise RuntimeError(f"{binary}: expected a NotFromWorkflow refusal, got {kind} {answer}")
    return (stub.first_next_at - started) * 1000, stub.latencies_ms[0], stub.latencies_ms[1]


def bench_first_call(runs: int) -> dict:
    """Per function and per build (target/release, and BENCH_BASELINE_BIN_DIR
    when set), alternating builds run by run: cold init, the first AWS call
    over HTTPS (TLS handshake included) and the second on the same connection."""
    from server import start

    builds = {"release": RELEASE, **({"baseline": BASELINE} if BASELINE else {})}
    with tempfile.TemporaryDirectory() as directory:
        context, ca = tls_context(Path(directory))
        server = start(0, ssl_context=context)
        env = {**probe_env(server.url), "OFFBOARD_TRUST_NATIVE_ROOTS": "true", "SSL_CERT_FILE": str(ca)}
        results = {}
        try:
            for stage, binary in FUNCTIONS.items():
                samples = {build: ([], [], []) for build in builds}
                for _ in range(runs):
                    for build, directory_of in builds.items():
                        for into, value in zip(samples[build], first_calls(directory_of / binary, stage, env)):
                            into.append(value)
                results[stage] = {build: {"cold_init_ms": summary(init), "first_call_ms": summary(first),
                                          "second_call_ms": summary(second)}
                                  for build, (init, first, second) in samples.items()}
                line = "   ".join(f"{build}: init {row['cold_init_ms']['p50']:.1f} first {row['first_call_ms']['p50']:.1f} "
                                   f"second {row['second_call_ms']['p50']:.1f} ms" for build, row in results[stage].items())
                print(f"  first call {stage:<42} {line}", flush=True)
        finally:
            server.stop()
    return {"builds": {build: str(path) for build, path in builds.items()}, "runs": runs, "functions": results}


# --- 2/3. step latency, admission check, peak RSS, through the workflow -----

def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def bench_stack(log_dir: Path | None = None, **kwargs):
    """The local stack (tests/emulator/stack.py), its functions logging to
    ``log_dir`` if given (rather than the shared target/lambda-logs)."""
    import stack as stack_module

    class BenchStack(stack_module.Stack):
        def start_lambdas(self):
            if log_dir is None:
                return super().start_lambdas()
            host = stack_module.LambdaHost
            stack_module.LambdaHost = functools.partial(host, log_dir=log_dir)
            try:
                return super().start_lambdas()
            finally:
                stack_module.LambdaHost = host

        def __exit__(self, *exc):
            # Each function's stop waits for its Runtime API server's
            # serve_forever poll (up to 0.5 s): eight in turn took 2.5-4 s of
            # every stack's exit. All at once here; the stack's own stop then
            # finds them stopped (Function.stop is idempotent).
            stopping = [threading.Thread(target=function.stop) for function in self.lambdas.functions.values()]
            for thread in stopping:
                thread.start()
            for thread in stopping:
                thread.join()
            return super().__exit__(*exc)

    return BenchStack(**kwargs)


def lambda_steps(history: list[dict]) -> list[dict]:
    """Each Lambda task of an execution that succeeded: its stage, when it
    was scheduled and the milliseconds from LambdaFunctionScheduled to
    LambdaFunctionSucceeded (the admission check, the stage's own work and
    the Lambda hop, as Step Functions sees the step)."""
    stage_of = {function_arn(stage): stage for stage in FUNCTIONS}
    by_id = {event["id"]: event for event in history}
    steps = []
    for event in history:
        if event["type"] != "LambdaFunctionSucceeded":
            continue
        started = by_id.get(event.get("previousEventId"))
        scheduled = by_id.get(started.get("previousEventId")) if started else None
        if not scheduled or scheduled["type"] != "LambdaFunctionScheduled":
            continue
        resource = scheduled["lambdaFunctionScheduledEventDetails"]["resource"]
        steps.append({"stage": stage_of.get(resource, resource), "at": scheduled["timestamp"],
                      "ms": (event["timestamp"] - scheduled["timestamp"]).total_seconds() * 1000})
    return steps


def function_log_invocations(log_dir: Path) -> list[dict]:
    """One entry per invocation the functions logged (target/lambda-logs
    layout: <Stage>.<instance>.log, JSON lines, the Lambda request id in the
    invoke span): its stage, and from the admission line its execution and
    ``check_ms``, from the stage's last line its ``duration_ms`` (the stage's
    own work, which starts after the admission)."""
    invocations: dict[str, dict] = {}
    for path in sorted(log_dir.glob("*.log")):
        stage = path.name.split(".", 1)[0]
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            fields = record.get("fields") or {}
            spans = record.get("spans") or [record.get("span") or {}]
            request = next((span["requestId"] for span in spans if span.get("requestId")), None)
            if request is None:
                continue
            entry = invocations.setdefault(request, {"stage": stage, "instance": path.name})
            if fields.get("message") == ADMITTED:
                entry["execution_arn"], entry["check_ms"] = fields.get("execution_arn"), fields.get("check_ms")
            elif fields.get("message") in ("stage succeeded", "stage failed"):
                entry["duration_ms"] = fields.get("duration_ms")
    return list(invocations.values())


def call_counts(calls: list[dict], offboardings: int) -> dict:
    """The functions' IAM and Step Functions calls, per offboarding."""
    stage_of = {access_key_for(stage): stage for stage in FUNCTIONS}
    ours = [call for call in calls if call["AccessKeyId"] in stage_of]

    def per(counter: Counter) -> dict:
        return {key: round(n / offboardings, 2) for key, n in sorted(counter.items())}

    iam = [call for call in ours if call["Service"] == "iam"]
    sfn = [call for call in ours if call["Service"] == SFN_SERVICE]
    return {"iam": round(len(iam) / offboardings, 2),
            "iam_by_stage": per(Counter(stage_of[call["AccessKeyId"]] for call in iam)),
            "step_functions": round(len(sfn) / offboardings, 2),
            "step_functions_by_action": per(Counter(call["Action"] for call in sfn)),
            "step_functions_by_stage": per(Counter(stage_of[call["AccessKeyId"]] for call in sfn))}


def utc_in(seconds: float) -> str:
    at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return at.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def bench_workflow(offboardings: int, quarantined: int = 1, batches: int = 1, batch_size: int = BATCH_SIZE,
                   grace_seconds: float = 2.0) -> dict:
    """Every function as the workflow runs it, on the local stack (one warm
    instance each, as many more as a Map's concurrency asks for):
    ``offboardings`` single offboardings one at a time, then ``quarantined``
    ones with a grace period of about ``grace_seconds`` (QuarantineUser's
    Quarantine and Check steps), then ``batches`` batch executions of
    ``batch_size`` users (OffboardBatch's steps; each child's functions also
    check that the batch runs). Per stage: each step's latency from the
    execution histories (first step, and warm ones: those of later
    executions), the admission check (``check_ms``) and the stage's own work
    (``duration_ms``) from the functions' logs, the peak RSS of its
    instances; per offboarding, the functions' IAM and Step Functions calls."""
    log_dir = Path(tempfile.mkdtemp(prefix="bench-lambda-logs-"))
    run = uuid.uuid4().hex[:6]
    phase_of: dict[str, str] = {}
    calls: dict[str, dict] = {}
    with bench_stack(log_dir, instances=1) as stack:
        singles = [f"wf{run}-{i}" for i in range(offboardings)]
        graced = [f"wfq{run}-{i}" for i in range(quarantined)]
        batched = [[f"wfb{run}-{b}-{i}" for i in range(batch_size)] for b in range(batches)]
        for name in [*singles, *graced, *(name for names in batched for name in names)]:
            seed_user(stack.iam, name, **WORKFLOW_USER)

        def finish(arn: str, phase: str) -> None:
            execution = stack.wait(arn)
            assert execution["status"] == "SUCCEEDED", (arn, execution.get("error"), execution.get("cause"))
            phase_of[arn] = phase

        stack.clear_calls()
        for name in singles:
            finish(stack.start({"UserName": name}, name=name), "single")
        calls["single"] = call_counts(stack.calls(), len(singles)) if singles else None
        stack.clear_calls()
        for name in graced:
            # DeleteAfter is to the second and must still be ahead when
            # GetUsername reads it: the wait is grace_seconds to a second more.
            finish(stack.start({"UserName": name, "DeleteAfter": utc_in(grace_seconds + 1)}, name=name), "quarantined")
        calls["quarantined"] = call_counts(stack.calls(), len(graced)) if graced else None
        if batched:
            batch_machine = stack.create_batch_state_machine()
            stack.clear_calls()
            for number, names in enumerate(batched):
                batch = stack.sfn.start_execution(stateMachineArn=batch_machine, name=f"wfb{run}-{number}",
                                                  input=json.dumps({"UserNames": names}))["executionArn"]
                finish(batch, "batch")
                children = [execution["executionArn"]
                            for page in stack.sfn.get_paginator("list_executions").paginate(stateMachineArn=stack.state_machine_arn)
                            for execution in page["executions"] if execution["executionArn"] not in phase_of]
                assert len(children) == len(names), children
                for child in children:
                    finish(child, "batch child")
            calls["batch child"] = call_counts(stack.calls(), batches * batch_size)
        rss = {stage: max((peak_rss_kib(process.pid) for process in function.processes if process.poll() is None),
                          default=0)
               for stage, function in stack.lambdas.functions.items()}
        steps = [{**step, "execution": arn, "phase": phase}
                 for arn, phase in phase_of.items() for step in lambda_steps(stack.history(arn))]
    logged = [entry for entry in function_log_invocations(log_dir) if entry.get("execution_arn") in phase_of]
    shutil.rmtree(log_dir, ignore_errors=True)  # kept when a run fails, for its logs

    stages = {}
    for stage in FUNCTIONS:
        ordered = sorted((step for step in steps if step["stage"] == stage), key=lambda step: step["at"])
        if not ordered:
            continue
        first = ordered[0]
        # Warm: the steps of later executions of the same kind (a Map's
        # fan-out in the first execution starts instances of their own; a
        # later step reads a longer history, a batch child's check makes a
        # third call); of one execution only (a quarantine's two steps), its
        # later steps.
        alike = [step for step in ordered[1:] if step["phase"] == first["phase"]]
        warm = [step["ms"] for step in alike if step["execution"] != first["execution"]] or \
               [step["ms"] for step in alike]
        admitted = [entry for entry in logged if entry["stage"] == stage]
        checks = [entry["check_ms"] for entry in admitted if entry.get("check_ms") is not None]
        work = [entry["duration_ms"] for entry in admitted if entry.get("duration_ms") is not None]
        all_steps = [step["ms"] for step in ordered]
        row = {"steps": len(ordered), "first_step_ms": round(first["ms"], 1),
               "warm_step_ms": summary(warm) if warm else None, "step_ms": spread(all_steps),
               "check_ms": spread(checks) if checks else None, "function_ms": spread(work) if work else None,
               "peak_rss_mib": round(rss[stage] / 1024, 2), "instances": len({entry["instance"] for entry in admitted})}
        if checks:
            row["check_over_step_p50"] = round(statistics.median(checks) / statistics.median(all_steps), 3)
            # A batch child's check also asks whether its batch runs: a third
            # call, after the first two.
            by_phase: dict[str, list] = {}
            for entry in admitted:
                if entry.get("check_ms") is not None:
                    by_phase.setdefault(phase_of[entry["execution_arn"]], []).append(entry["check_ms"])
            row["check_ms_by_execution"] = {phase: spread(values) for phase, values in sorted(by_phase.items())}
        stages[stage] = row
    # A batch's own steps (OffboardBatch) count towards its children, as its
    # calls do.
    counts = {"single": offboardings, "quarantined": quarantined, "batch child": batches * batch_size}
    per_phase = Counter("batch child" if step["phase"] == "batch" else step["phase"] for step in steps)
    steps_per_offboarding = {phase: round(per_phase[phase] / n, 2) for phase, n in counts.items() if n}
    for phase, made in calls.items():
        if made:
            # 1.0 unless a check did not find its step at the first read of
            # the history and read it again (250 ms, then 1 s, later).
            made["history_reads_per_step"] = round(
                made["step_functions_by_action"].get("GetExecutionHistory", 0) / steps_per_offboarding[phase], 3)
    return {"offboardings": counts, "user": WORKFLOW_USER, "steps_per_offboarding": steps_per_offboarding,
            "stages": stages, "calls_per_offboarding": {k: v for k, v in calls.items() if v}}


def python_rss(iam_url: str, stage: str) -> float:
    """Peak RSS of the Python + boto3 handler (bench/python_stage.py) over
    three direct invocations. It has no workflow guard (no Step Functions
    client, no admission check), so it does less than the Rust function
    measured through the workflow: of the Python comparisons only this one
    and cold init are kept, both in Python's favour if anything."""
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

def bench_package_sizes(binaries: Path | None = None) -> dict:
    """Each function's deploy zip as `make test` builds it (the default deflate
    level), against its budget (lambda_host.ZIP_BUDGET_BYTES); target/release
    unless ``binaries`` names another build (the floor only if it has one)."""
    binaries = binaries or RELEASE
    sizes = {}
    for stage, binary in {**FUNCTIONS, "floor": "bench-floor"}.items():
        if stage == "floor" and not (binaries / binary).exists():
            continue
        archive = Path(tempfile.mkdtemp()) / f"{binary}.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
            zipped.write(binaries / binary, "bootstrap")
        sizes[stage] = {"binary_bytes": (binaries / binary).stat().st_size, "zip_bytes": archive.stat().st_size,
                        "binary_mib": round((binaries / binary).stat().st_size / 2**20, 2),
                        "zip_mib": round(archive.stat().st_size / 2**20, 2)}
        if binary in ZIP_BUDGET_BYTES:
            sizes[stage]["within_budget"] = archive.stat().st_size <= ZIP_BUDGET_BYTES[binary]
    return sizes


def over_budget(sizes: dict) -> list[str]:
    return [f"{stage}: {row['zip_bytes']:,} bytes zipped, budget {ZIP_BUDGET_BYTES[FUNCTIONS[stage]]:,}"
            for stage, row in sizes.items() if row.get("within_budget") is False]


# --- 5/6/7. calls, wall time, scale through the state machine --------------

REFERENCE = dict(access_keys=2, ssh_keys=5, certificates=2,
                 services=("codecommit.amazonaws.com", "cassandra.amazonaws.com", "bedrock.amazonaws.com"),
                 credentials_per_service=2, virtual_devices=3, passkeys=3, hardware_tokens=2,
                 groups=10, inline_policies=5, attached_policies=20)


def has_deny_all(made: dict) -> bool:
    """Whether the user holds AWSDenyAll (a quarantine attaches it)."""
    return any(arn.split(":", 4)[-1] == "aws:policy/AWSDenyAll" for arn in made["AttachedPolicies"])


def lower_bound(made: dict) -> dict:
    virtual = sum(1 for s in made["MFADevices"] if ":mfa/" in s)
    items = (len(made["AccessKeys"]) + len(made["SSHPublicKeys"]) + len(made["Certificates"])
             + len(made["ServiceCredentials"]) + len(made["MFADevices"]) + len(made["Groups"])
             + len(made["InlinePolicies"]) + len(made["AttachedPolicies"]) + 1)  # + login profile
    return {
        "resolve (GetUser, which carries the tags)": 1,
        # Every mutating task confirms its target is still the user GetUsername
        # resolved before its first change: GetUser in the credentials,
        # permissions and deletion tasks, GetUser + ListMFADevices in each MFA
        # device's task.
        "re-check before each mutating task's first change": 3 + 2 * len(made["MFADevices"]),
        "list one page per type (6 credential + 3 permission lists)": 9,
        # DeleteGroupsAndPolicies removes nothing while a credential remains
        # (delete_groups_and_policies.rs, refuse_while_credentials_remain).
        "credentials listed again before any group or policy goes (6 lists)": 6,
        # ... and detaches AWSDenyAll last, once the groups and policies are
        # confirmed gone (removal.rs, delete_permissions).
        "groups and policies listed again before AWSDenyAll goes (3 lists, if held)": 3 if has_deny_all(made) else 0,
        "GetUserPolicy per inline policy (documents for the record)": len(made["InlinePolicies"]),
        "one mutation per item (+ DeleteVirtualMFADevice per virtual device)": items + virtual,
        # Marking it as taken from the user first (mfa.rs, TAKEN_FROM_TAG) is
        # what lets a retry delete a device its earlier attempt left unassigned.
        "TagMFADevice per virtual device": virtual,
        "DeleteUser + one GetUser to verify": 2,
    }


def bench_through_state_machine() -> dict:
    results: dict = {}
    with bench_stack(instances=4) as stack:
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
            sfn_calls = Counter(c["Action"] for c in stack.calls() if c["AccessKeyId"] in by_key and c["Service"] == SFN_SERVICE)
            steps = len(lambda_steps(stack.history(execution["executionArn"])))
            bound = lower_bound(made)
        results["reference_user"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in REFERENCE.items()}
        results["iam_calls"] = {"observed": calls_per_run, "lower_bound": bound, "lower_bound_total": sum(bound.values())}
        # The functions' admission checks: DescribeExecution and
        # GetExecutionHistory once per Lambda step.
        results["step_functions_calls"] = {"total": sum(sfn_calls.values()), "by_action": dict(sorted(sfn_calls.items())),
                                           "lambda_steps": steps}
        results["state_machine_wall_ms"] = summary(walls)
        print(f"  reference offboarding via the state machine: p50 {results['state_machine_wall_ms']['p50']:.0f} ms, "
              f"{calls_per_run['total']} IAM calls (lower bound {sum(bound.values()) }), "
              f"{sum(sfn_calls.values())} Step Functions calls for {steps} Lambda steps", flush=True)

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
    # The template's StageTimeoutSeconds default; idle instances go away as on
    # Lambda, so a thousand executions moving from stage to stage do not leave
    # a thousand processes behind each function. Each function's reserved
    # concurrency is the template's advice for StageConcurrency.
    concurrency = stage_concurrency(budget)
    with bench_stack(timeout_seconds=300, idle_seconds=10, iam_budget=budget, max_concurrency=concurrency) as stack:
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
        sfn = [c for c in stack.calls() if c["Service"] == SFN_SERVICE]
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
                # The admission checks' calls (not throttled by the emulator;
                # Step Functions' own quotas are per account and Region).
                "step_functions_calls_per_offboarding": round(len(sfn) / size, 2),
                "busiest_10s_describe_execution_per_s": busiest_window(
                    [c["Time"] for c in sfn if c["Action"] == "DescribeExecution"], 10.0) / 10.0 if sfn else 0.0,
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


def state_entered(history: list[dict]) -> int:
    """The state transitions of one execution: its *StateEntered events."""
    return sum(1 for event in history if event["type"].endswith("StateEntered"))


def largest_state(history: list[dict]) -> int:
    """The largest state input or output in a history, in bytes (UTF-8)."""
    sizes = [len(details[field].encode()) for event in history for key, details in event.items()
             if key in ("stateEnteredEventDetails", "stateExitedEventDetails") for field in ("input", "output")
             if field in details]
    return max(sizes, default=0)


def bench_org(accounts: int) -> dict:
    """One org-wide dry run over ``accounts`` member accounts on the local stack
    (moto keeps IAM per account; each account gets the target roles,
    infra/target-account.yaml's, through Stack.deploy_target_roles), the user in
    one account of every ORG_USER_EVERY (Planned there, NotPresent elsewhere),
    at the deployment's AccountConcurrency (a dry run has no grace period).
    Reports the wall time from StartExecution to the summary, the state
    transitions per account (state-entered events of the parent, of the Map
    Run's child workflow executions and of the children), the largest state
    input or output in the parent's history, and the summary's counts.

    moto keeps no history of a Map Run's child workflow executions (their
    events go to a fresh EventManager:
    moto/stepfunctions/parser/asl/component/state/exec/state_map/iteration/distributed_iteration_component.py,
    ``_eval_body``); on Step Functions each has its own (developer guide, "Map
    workflow state": "Each child workflow execution has its own, separate
    execution history"). Each enters the item processor's states once, as no
    state there retries or loops unless throttled: they are counted from the
    definition, one run per report entry."""
    import stack as stack_module

    ids = [f"{700000000000 + n:012d}" for n in range(accounts)]
    holders = set(ids[::ORG_USER_EVERY])
    env = {"OFFBOARD_TARGET_ROLE_NAME": stack_module.TARGET_ROLE_NAME,
           "OFFBOARD_ACCOUNT_CONCURRENCY": str(ORG_CONCURRENCY)}
    # A dry run quarantines nobody: no account needs AWSDenyAll, and moto would
    # load every AWS managed policy into each of the thousand accounts.
    with bench_stack(env=env, timeout_seconds=300, idle_seconds=10, aws_managed_policies=False) as stack:
        prepared = time.perf_counter()
        for account in ids:
            stack.deploy_target_roles(account)
        for account in holders:
            seed_user(stack.iam_in(account), "orgbench", **SCALE_USER)
        print(f"  org: {accounts} accounts prepared in {time.perf_counter() - prepared:.0f} s", flush=True)
        name = f"org{accounts}"
        stack.clear_calls()
        started = time.perf_counter()
        parent = stack.start({"UserName": "orgbench", "Accounts": ids, "DryRun": True}, name=name)
        execution = stack.wait(parent, timeout=7200)
        wall = time.perf_counter() - started
        assert execution["status"] == "SUCCEEDED", (execution.get("error"), execution.get("cause"))
        summary = json.loads(execution["output"])
        parent_history = stack.history(parent)
        children = [e["executionArn"] for page in stack.sfn.get_paginator("list_executions").paginate(
                    stateMachineArn=stack.state_machine_arn) for e in page["executions"] if e["name"].endswith(f"-{name}")]
        child_transitions = sum(state_entered(stack.history(arn)) for arn in children)
        bucket, key = summary["ReportUri"].removeprefix("s3://").split("/", 1)
        manifest = json.loads(stack.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        items = sum(len(json.loads(stack.s3.get_object(Bucket=bucket, Key=f["Key"])["Body"].read()))
                    for files in manifest["ResultFiles"].values() for f in files)
        item_states = len(json.loads(stack_module.DEFINITION.read_text())["States"]["OffboardEachAccount"]
                          ["ItemProcessor"]["States"])
        transitions = {"parent": state_entered(parent_history), "map_run_children": items * item_states,
                       "children": child_transitions}
        sfn_calls = [c for c in stack.calls() if c["Service"] == SFN_SERVICE]
        return {"accounts": accounts, "holding_the_user": len(holders), "account_concurrency": ORG_CONCURRENCY,
                "wall_seconds": round(wall, 1), "accounts_per_second": round(accounts / wall, 2),
                "children": len(children), "report_entries": items,
                "summary": {k: summary[k] for k in ("Total", "Offboarded", "Planned", "Restored", "NotPresent", "Failed")},
                "transitions": transitions,
                "transitions_per_account": round(sum(transitions.values()) / accounts, 2),
                "parent_transitions": transitions["parent"],
                "peak_state_bytes": largest_state(parent_history),
                "peak_state_kib_of_256": round(largest_state(parent_history) / 1024, 1),
                "guard_step_functions_calls_per_account": round(len(sfn_calls) / accounts, 2)}


def org_markdown(row: dict) -> str:
    return ("| accounts (holding the user) | AccountConcurrency | wall | accounts/s | transitions per account "
            "(parent + map run + children) | peak state in the parent | Step Functions calls per account (checks) |\n"
            "|---|---|---|---|---|---|---|\n"
            f"| {row['accounts']} ({row['holding_the_user']}) | {row['account_concurrency']} | {row['wall_seconds']} s | "
            f"{row['accounts_per_second']} | {row['transitions_per_account']} ({row['transitions']['parent']} + "
            f"{row['transitions']['map_run_children']} + {row['transitions']['children']}) | "
            f"{row['peak_state_bytes']} bytes ({row['peak_state_kib_of_256']} KiB of 256) | "
            f"{row['guard_step_functions_calls_per_account']} |\n")


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
    flow = results["workflow"]
    lines = ["| function | cold init p50 (p95) | × floor | Python+boto3 p50 | Python ÷ Rust | first / warm p50 step | peak RSS | zip |",
             "|---|---|---|---|---|---|---|---|"]
    for stage in FUNCTIONS:
        rust, python = cold[stage]["rust"], cold[stage]["python_boto3"]
        row = flow["stages"].get(stage)
        warm = f"{row['warm_step_ms']['p50']:.1f}" if row and row["warm_step_ms"] else "–"
        step = f"{row['first_step_ms']:.1f} / {warm} ms" if row else "–"
        lines.append(f"| {stage} | {rust['p50']:.2f} ms ({rust['p95']:.2f}) | {rust['times_floor']:.2f} | {python['p50']:.0f} ms | "
                     f"{python['p50'] / rust['p50']:.0f}× | {step} | "
                     f"{row['peak_rss_mib'] if row else '–'} MiB | {results['package_sizes'][stage]['zip_mib']} MiB |")
    lines.append(f"\nFloor (bare lambda_runtime binary): cold init p50 {floor:.2f} ms. A step is a Lambda task of a real "
                 "execution on the local stack, LambdaFunctionScheduled to LambdaFunctionSucceeded in its history (a direct "
                 "invoke is refused: NotFromWorkflow); peak RSS is the function's, over those steps. Python+boto3 (an "
                 "unguarded handler: no Step Functions client, no admission check; cold init and three direct "
                 "invocations) peak RSS: " + ", ".join(
                     f"{s} {mib} MiB" for s, mib in results["python_boto3_peak_rss_mib"].items()))
    lines.append("\nThe admission check (crates/core/src/workflow.rs: DescribeExecution and GetExecutionHistory at once, "
                 "then the parent's DescribeExecution for a batch child), per stage, from the functions' logs (`check_ms`, "
                 "whole milliseconds), beside each step and the stage's own work (`duration_ms`, after the check):\n")
    lines.append("| function | steps | step p50 (p90) | stage's own work p50 | check p50 / p90 / max | check ÷ step (p50) |")
    lines.append("|---|---|---|---|---|---|")
    for stage, row in flow["stages"].items():
        check, work, step = row["check_ms"], row["function_ms"], row["step_ms"]
        checked = f"{check['p50']:.0f} / {check['p90']:.0f} / {check['max']:.0f} ms" if check else "–"
        worked = f"{work['p50']:.0f} ms" if work else "–"
        lines.append(f"| {stage} | {row['steps']} | {step['p50']:.1f} ms ({step['p90']:.1f}) | {worked} | {checked} | "
                     f"{row.get('check_over_step_p50', '–')} |")
    per = flow["calls_per_offboarding"]
    lines.append("\nStep Functions calls per offboarding, made by the functions' checks: " + "; ".join(
        f"{phase} {made['step_functions']:g} for {flow['steps_per_offboarding'][phase]:g} Lambda steps ("
        + ", ".join(f"{action} {n:g}" for action, n in made["step_functions_by_action"].items())
        + f"; history reads per step {made['history_reads_per_step']:g}), IAM {made['iam']:g}"
        for phase, made in per.items()) + ". A batch's own steps count towards its children.")
    sm = results["state_machine"]
    lines.append(f"\nReference offboarding (every credential type at its limit): {sm['iam_calls']['observed']['total']} IAM calls "
                 f"(lower bound {sm['iam_calls']['lower_bound_total']}) and {sm['step_functions_calls']['total']} Step Functions "
                 f"calls ({sm['step_functions_calls']['lambda_steps']} Lambda steps); wall time p50 {sm['state_machine_wall_ms']['p50']:.0f} ms "
                 f"through the state machine, {results['cli_wall_ms']['p50']:.0f} ms through `offboard delete`. "
                 f"Id lookup among 5,000 users: {sm['id_lookup_5000_users_list_calls']} ListUsers calls.")
    if "scale" in results:
        lines.append("\n| offboardings | started | bucket = budget | StageConcurrency | SUCCEEDED | left behind | IAM calls served ÷ needed "
                     "(goal ≤ 1.10) | wall ÷ ideal (goal ≤ 1.25) | throttled ÷ served (goal ≤ 0.5) | Step Functions calls per "
                     "offboarding (busiest 10 s of DescribeExecution) |\n|---|---|---|---|---|---|---|---|---|---|")
        for row in results["scale"]["runs"]:
            lines.append(f"| {row['offboardings']} | {row['mode']} | {row['bucket_rate_per_s']:g}/s | {row['stage_concurrency']} | {row['succeeded']} | "
                         f"{row['left_behind']} | {row['iam_calls_served']} ÷ {row['iam_calls_needed']} = {row['served_over_needed']} | "
                         f"{row['seconds']} s ÷ {row['ideal_seconds']} s = {row['wall_over_ideal']} | "
                         f"{row['throttled']} ÷ {row['iam_calls_served']} = {row['throttled_over_served']} | "
                         f"{row['step_functions_calls_per_offboarding']:g} ({row['busiest_10s_describe_execution_per_s']:g}/s) |")
        lines.append("\nThe emulator does not throttle Step Functions. Its API quotas are per account and Region, shared with "
                     "everything else there (AWS Step Functions Developer Guide, Quotas, API action throttling: "
                     "DescribeExecution refills 15/s, 10/s outside us-east-1, us-west-2 and eu-west-1; GetExecutionHistory "
                     "20/s); above them a function's check is Throttled and its step retried.")
        held = results["scale"]["budget_held"]
        lines.append(f"\nBudget held: {held['offboardings']} offboardings started at once with a budget of "
                     f"{held['budget_per_s']:g} calls/s on a bucket of {held['bucket_rate_per_s']:g}/s: at most "
                     f"{held['busiest_10s_calls_per_s']} IAM calls/s in any 10 s, {held['succeeded']} SUCCEEDED, "
                     f"{held['throttled']} throttled, {held['seconds']} s (ideal {held['ideal_seconds']} s).")
    if "org" in results:
        lines.append("\nOrg-wide dry run (one execution, a Distributed Map of child executions):\n")
        lines.append(org_markdown(results["org"]))
    return "\n".join(lines) + "\n"


def main_org() -> int:
    """The org-wide row alone."""
    os.environ.setdefault("OFFBOARD_BIN_DIR", str(RELEASE))
    row = bench_org(ORG_ACCOUNTS or 100)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    binaries = Path(os.environ["OFFBOARD_BIN_DIR"]).resolve()
    binaries = binaries.relative_to(ROOT) if binaries.is_relative_to(ROOT) else binaries
    (out / "org.json").write_text(json.dumps({**row, "binaries": str(binaries),
                                              "machine": {"cores": os.cpu_count()}}, indent=2) + "\n")
    print("\n" + org_markdown(row))
    return 0


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
    results["first_call"] = bench_first_call(max(5, RUNS // 2))
    results["python_boto3_peak_rss_mib"] = {stage: python_rss(server.url, stage)
                                            for stage in ("GetUsername", "GetKeysCertificatesMfaAndCredentials")}
    results["cli_wall_ms"] = bench_cli_wall(server.url)
    server.stop()
    results["workflow"] = bench_workflow(WARM, QUARANTINED, BATCHES)
    for stage, row in results["workflow"]["stages"].items():
        warm = row["warm_step_ms"]["p50"] if row["warm_step_ms"] else float("nan")
        check = row["check_ms"] or {"p50": float("nan"), "p90": float("nan"), "max": float("nan")}
        print(f"  step {stage:<45} first {row['first_step_ms']:6.1f} ms  warm p50 {warm:6.1f} ms  check p50/p90/max "
              f"{check['p50']:.0f}/{check['p90']:.0f}/{check['max']:.0f} ms  RSS {row['peak_rss_mib']} MiB", flush=True)
    results["state_machine"] = bench_through_state_machine()
    results["scale"] = bench_scale()
    if ORG_ACCOUNTS:
        results["org"] = bench_org(ORG_ACCOUNTS)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "latest.md").write_text(markdown(results))
    print("\n" + markdown(results))
    return budget_verdict(results["package_sizes"])


def budget_verdict(sizes: dict) -> int:
    """`make bench` fails when a function's zip is over its budget."""
    for line in over_budget(sizes):
        print(f"OVER THE ZIP BUDGET: {line}", file=sys.stderr)
    return 1 if over_budget(sizes) else 0


def main_tls() -> int:
    """Sizes, cold init and the first AWS call over HTTPS of target/release,
    beside BENCH_BASELINE_BIN_DIR's build when set; writes bench/results/tls.json."""
    results = {"machine": {"cores": os.cpu_count()},
               "package_sizes": {"release": bench_package_sizes(),
                                 **({"baseline": bench_package_sizes(BASELINE)} if BASELINE else {})},
               "first_call": bench_first_call(RUNS)}
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "tls.json").write_text(json.dumps(results, indent=2) + "\n")
    print("\n" + tls_markdown(results))
    return budget_verdict(results["package_sizes"]["release"])


def tls_markdown(results: dict) -> str:
    builds = list(results["first_call"]["builds"])
    header = "| function | " + " | ".join(f"{b} zip | {b} cold init p50 | {b} first call p50 (p95) | {b} second call p50"
                                        for b in builds) + " |"
    lines = [header, "|" + "---|" * (1 + 4 * len(builds))]
    for stage, row in results["first_call"]["functions"].items():
        cells = []
        for build in builds:
            size = results["package_sizes"][build].get(stage, {})
            cells += [f"{size.get('zip_mib', float('nan')):.2f} MiB", f"{row[build]['cold_init_ms']['p50']:.1f} ms",
                      f"{row[build]['first_call_ms']['p50']:.1f} ({row[build]['first_call_ms']['p95']:.1f}) ms",
                      f"{row[build]['second_call_ms']['p50']:.1f} ms"]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    modes = {"org": main_org, "tls": main_tls}
    sys.exit(modes[sys.argv[1]]() if sys.argv[1:2] else main())
