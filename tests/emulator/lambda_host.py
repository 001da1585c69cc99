"""Runs the eight release binaries as Lambda functions on 127.0.0.1.

Each function gets its own Lambda Runtime API endpoint (the one a real
function polls: GET .../invocation/next, POST .../response|error), served
here, and one or more instance processes of the real binary polling it, with
the function's own access key id so the emulator's call log shows which
function made which call. In front sits the Lambda Invoke API
(POST /2015-03-31/functions/{name}/invocations), which Step Functions'
interpreter reaches through AWS_ENDPOINT_URL_LAMBDA; a function error comes
back as 200 with X-Amz-Function-Error, as from Lambda itself.

``LambdaHost.inject_errors(stage, ["Lambda.Unknown", ...])`` makes the next
invocations of one function answer with those function errors, one each, in
order, without running the binary: the way to exercise the state machine's
Lambda-service retriers (see ``inject_errors``). ``LambdaHost.hold(stage)``
keeps that function's invocations waiting until ``release(stage)``: a test
acts between a step being invoked and its function running (see ``hold``).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[2]
#: The binaries the local stack runs: the fast `local` profile by default
#: (`make build`); `make bench` points this at target/release.
BIN_DIR = Path(os.environ.get("OFFBOARD_BIN_DIR", ROOT / "target" / "local"))
ACCOUNT = "123456789012"
REGION = "us-east-1"
RUNTIME_PREFIX = "/2018-06-01/runtime/"
#: The local stack's two state machines (tests/emulator/stack.py names them
#: offboard and offboard-batch): the executions the functions act for.
STATE_MACHINE_ARNS = (f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:offboard",
                      f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:offboard-batch")


class Server(ThreadingHTTPServer):
    # The default listen backlog of 5 resets connections when hundreds of
    # invocations arrive at once (seen in the 200-offboarding benchmark).
    request_queue_size = 1024
    daemon_threads = True

#: Stage name -> release binary name.
FUNCTIONS = {
    "GetUsername": "get-username",
    "GetKeysCertificatesMfaAndCredentials": "get-keys-certificates-mfa-and-credentials",
    "GetGroupsAndPolicies": "get-groups-and-policies",
    "DeleteKeysCertificatesMfaAndCredentials": "delete-keys-certificates-mfa-and-credentials",
    "DeleteGroupsAndPolicies": "delete-groups-and-policies",
    "DeleteIAMUserAndVerify": "delete-iam-user-and-verify",
    "QuarantineUser": "quarantine-user",
    # The batch state machine's function: no IAM call; S3 reads only (the
    # user list, the Distributed Map's report), served by the same emulator.
    "OffboardBatch": "offboard-batch",
}
#: Each function's deploy zip (its release binary as `bootstrap`, deflated at
#: the default level) at most: 3.0 MB for the IAM stage functions; 3.5 MB for
#: the batch function, which alone links the S3 client (user lists, the Map's
#: report). Checked by `make test` (tests/e2e/test_deploy_artifacts.py) for the
#: functions it builds, by `make bench` for all.
ZIP_BUDGET_BYTES = {**{binary: 3_000_000 for binary in FUNCTIONS.values()}, "offboard-batch": 3_500_000}


def access_key_for(stage: str) -> str:
    """A stable, distinct access key id per function (20 characters, AKIA...)."""
    digest = "".join(c for c in stage.upper() if c.isalpha())
    return ("AKIA" + digest + "X" * 16)[:20]


def function_arn(stage: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:offboard-{stage}"


@dataclass
class Invocation:
    request_id: str
    payload: bytes
    taken: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    body: bytes = b""
    error: bool = False


class Function:
    """One function: its Runtime API endpoint and its instance processes.
    Like Lambda, it starts another instance when every one is busy (up to
    ``max_concurrency``, beyond which Invoke answers 429), and its timeout
    counts from the moment an instance takes the invocation."""

    def __init__(self, stage: str, command: list[str], env: dict[str, str], instances: int, log_dir: Path,
                 max_concurrency: int = 1000, timeout_seconds: float = 60.0, idle_seconds: float | None = None):
        self.stage, self.command, self.env, self.instances = stage, command, env, instances
        self.max_concurrency, self.timeout_seconds, self.idle_seconds = max_concurrency, timeout_seconds, idle_seconds
        self.outstanding = 0
        #: Instances running (started and not retired).
        self.live = 0
        self.pending: "queue.Queue[Invocation]" = queue.Queue()
        self.in_flight: dict[str, Invocation] = {}
        self.lock = threading.Lock()
        self.processes: list[subprocess.Popen] = []
        self.log_dir = log_dir
        self.server = Server(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.runtime_api = f"127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> None:
        for index in range(self.instances):
            self.spawn(index)
        self.live = self.instances

    def spawn(self, index: int) -> None:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "AWS_LAMBDA_RUNTIME_API": self.runtime_api,
            "AWS_LAMBDA_FUNCTION_NAME": f"offboard-{self.stage}",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/offboard-{self.stage}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"local/{index}",
            "AWS_LAMBDA_LOG_FORMAT": "JSON",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": access_key_for(self.stage),
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_EC2_METADATA_DISABLED": "true",
            **self.env,
        }
        self.processes = [process for process in self.processes if process.poll() is None]
        with open(self.log_dir / f"{self.stage}.{index % 64}.log", "ab") as log:
            self.processes.append(subprocess.Popen(self.command, env=env, stdout=log, stderr=log))

    def invoke(self, payload: bytes) -> Invocation | None:
        """Runs one invocation; None when the concurrency limit is reached."""
        with self.lock:
            if self.outstanding >= self.max_concurrency:
                return None
            self.outstanding += 1
            if self.outstanding > self.live:
                self.spawn(self.live)
                self.live += 1
        invocation = Invocation(str(uuid.uuid4()), payload)
        self.pending.put(invocation)
        invocation.taken.wait()
        if not invocation.done.wait(self.timeout_seconds):
            invocation.error = True
            invocation.body = json.dumps({"errorType": "Sandbox.Timedout",
                                          "errorMessage": f"Task timed out after {self.timeout_seconds:.2f} seconds"}).encode()
        return invocation

    def finished(self) -> None:
        with self.lock:
            self.outstanding -= 1

    def retire_idle_instance(self) -> bool:
        """Like Lambda scaling in: an instance idle for ``idle_seconds`` goes
        away (its /next connection is closed, so the runtime exits), unless
        it is one of the ``instances`` kept warm or still needed."""
        with self.lock:
            if self.live > max(self.instances, self.outstanding):
                self.live -= 1
                return True
            return False

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
        self.server.shutdown()

    def _handler(self):
        function = self

        class RuntimeApi(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # noqa: D401 - quiet
                pass

            def reply(self, status: int, body: bytes = b"{}", headers: dict | None = None) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):  # noqa: N802
                if not self.path.startswith(RUNTIME_PREFIX + "invocation/next"):
                    return self.reply(404)
                while True:
                    try:
                        invocation = function.pending.get(timeout=function.idle_seconds)
                        break
                    except queue.Empty:
                        if function.retire_idle_instance():
                            self.close_connection = True
                            return
                with function.lock:
                    function.in_flight[invocation.request_id] = invocation
                invocation.taken.set()
                deadline = int((time.time() + function.timeout_seconds) * 1000)
                self.reply(200, invocation.payload, {
                    "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(deadline),
                    "Lambda-Runtime-Invoked-Function-Arn": function_arn(function.stage),
                    "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
                })

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = self.path[len(RUNTIME_PREFIX):].split("/")
                if parts[:1] == ["invocation"] and len(parts) == 3 and parts[2] in ("response", "error"):
                    with function.lock:
                        invocation = function.in_flight.pop(parts[1], None)
                    if invocation is None:
                        return self.reply(400, b'{"errorMessage": "unknown request id"}')
                    function.finished()  # the instance is free again, even after a timeout
                    if not invocation.done.is_set():
                        invocation.body, invocation.error = body, parts[2] == "error"
                        invocation.done.set()
                    return self.reply(202)
                self.reply(202 if parts[:2] == ["init", "error"] else 404)

        return RuntimeApi


class LambdaHost:
    """The eight functions plus the Lambda Invoke API in front of them."""

    def __init__(self, iam_endpoint: str, *, instances: int = 1, env: dict[str, str] | None = None,
                 bin_dir: Path | None = None, log_dir: Path | None = None,
                 credentials: dict[str, tuple[str, str]] | None = None, max_concurrency: int = 1000,
                 timeout_seconds: float = 60.0, idle_seconds: float | None = None):
        bin_dir = bin_dir or Path(os.environ.get("OFFBOARD_BIN_DIR", BIN_DIR))
        self.log_dir = log_dir or (ROOT / "target" / "lambda-logs")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # moto's server answers S3 too (it routes a request by the service in
        # its SigV4 credential scope), from the same in-process backend the
        # interpreter's ResultWriter writes to; the core's S3 client uses
        # path-style addressing when AWS_ENDPOINT_URL(_S3) is set.
        # Step Functions too: each function confirms, before any IAM call, that
        # a running execution of this deployment's state machines
        # (OFFBOARD_STATE_MACHINE_ARNS, as the template sets it) invoked it.
        base_env = {"AWS_ENDPOINT_URL_IAM": iam_endpoint, "AWS_ENDPOINT_URL_STS": iam_endpoint,
                    "AWS_ENDPOINT_URL_S3": iam_endpoint, "AWS_ENDPOINT_URL_DYNAMODB": iam_endpoint,
                    "AWS_ENDPOINT_URL_ORGANIZATIONS": iam_endpoint, "AWS_ENDPOINT_URL_SFN": iam_endpoint,
                    "OFFBOARD_STATE_MACHINE_ARNS": ",".join(STATE_MACHINE_ARNS), **(env or {})}
        self.functions: dict[str, Function] = {}
        for stage, binary in FUNCTIONS.items():
            function_env = dict(base_env)
            if credentials and stage in credentials:
                function_env["AWS_ACCESS_KEY_ID"], function_env["AWS_SECRET_ACCESS_KEY"] = credentials[stage]
            self.functions[stage] = Function(stage, [str(bin_dir / binary)], function_env, instances, self.log_dir,
                                             max_concurrency=max_concurrency, timeout_seconds=timeout_seconds,
                                             idle_seconds=idle_seconds)
        self.invocations: list[tuple[str, bool]] = []
        self.injection_lock = threading.Lock()
        self.pending_errors: dict[str, deque[str]] = {}
        #: (stage, errorType) of every injected error answered, in order.
        self.injected: list[tuple[str, str]] = []
        #: Held functions: their invocations wait for the event (see ``hold``).
        self.gates: dict[str, threading.Event] = {}
        #: Invocations that have waited at a function's gate, by stage.
        self.held: dict[str, int] = {}
        self.server = Server(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "LambdaHost":
        for function in self.functions.values():
            function.start()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stops the Invoke API, then the eight functions side by side: each
        server's shutdown() waits for its serve_forever loop's next poll
        (socketserver's poll_interval, 0.5 s), which one after another took
        about 4 s of every stack's teardown and of every restart_lambdas."""
        self.server.shutdown()
        with ThreadPoolExecutor(len(self.functions)) as pool:
            # list(): a function that fails to stop raises here, as before.
            list(pool.map(Function.stop, self.functions.values()))

    def arns(self) -> dict[str, str]:
        return {f"{stage}FunctionArn": function_arn(stage) for stage in FUNCTIONS}

    def inject_errors(self, stage: str, error_types: list[str]) -> None:
        """The next ``len(error_types)`` invocations of ``stage`` answer, in
        order, with a function error of each type (200 + X-Amz-Function-Error,
        body ``{"errorType", "errorMessage"}``) without reaching the binary.

        Real Step Functions names Lambda's own failures ``Lambda.<Exception>``
        (``Lambda.ServiceException``, ``Lambda.ClientExecutionTimeoutException``
        ...) and reports a function timeout or out-of-memory as
        ``Lambda.Unknown`` (AWS Step Functions Developer Guide, "Handle Lambda
        service exceptions",
        https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html,
        and "Handling errors in Step Functions workflows",
        https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html).
        An injected name reaches the retriers as a function error's
        ``errorType``, which the interpreter passes through unchanged; a real
        Invoke API failure of this host (its 429 when a function's concurrency
        is used up) is named ``Lambda.<code>`` (sfn_integration.py,
        ``_lambda_task_error``)."""
        if stage not in self.functions:
            raise KeyError(f"no function {stage}; one of {sorted(self.functions)}")
        with self.injection_lock:
            self.pending_errors.setdefault(stage, deque()).extend(error_types)

    def clear_injected_errors(self) -> None:
        """Drops errors not yet answered and forgets the answered ones."""
        with self.injection_lock:
            self.pending_errors.clear()
            self.injected.clear()

    def hold(self, stage: str) -> None:
        """Invocations of ``stage`` from now on wait before they reach its
        binary (or an injected error), until ``release(stage)``;
        ``held[stage]`` counts those that arrived. No claim about Lambda:
        an invocation's function may start any time after Step Functions
        invokes it (a cold start, a throttled invoke retried), and a held
        invocation only makes that time one the test chooses, to act while
        the step waits (rewrite what the step is about to read, say)."""
        if stage not in self.functions:
            raise KeyError(f"no function {stage}; one of {sorted(self.functions)}")
        with self.injection_lock:
            self.gates.setdefault(stage, threading.Event())

    def release(self, stage: str) -> None:
        """Lets the held invocations of ``stage`` go on, and later ones through."""
        with self.injection_lock:
            gate = self.gates.pop(stage, None)
        if gate is not None:
            gate.set()

    def _wait_at_gate(self, stage: str) -> None:
        with self.injection_lock:
            gate = self.gates.get(stage)
            if gate is not None:
                self.held[stage] = self.held.get(stage, 0) + 1
        if gate is not None:
            gate.wait(timeout=300)

    def _take_injected_error(self, stage: str) -> str | None:
        with self.injection_lock:
            queued = self.pending_errors.get(stage)
            if not queued:
                return None
            error_type = queued.popleft()
            self.injected.append((stage, error_type))
            return error_type

    def function_for(self, name: str) -> Function | None:
        stage = name.rsplit(":function:", 1)[-1].split(":")[0].removeprefix("offboard-")
        return self.functions.get(stage)

    def _handler(self):
        host = self

        class InvokeApi(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = self.path.split("?")[0].split("/")
                # /2015-03-31/functions/{name}/invocations
                function = host.function_for(unquote(parts[3])) if len(parts) == 5 else None
                if function is None or parts[4] != "invocations":
                    payload = json.dumps({"Type": "User", "message": f"Function not found: {self.path}"}).encode()
                    self.send_response(404)
                    self.send_header("x-amzn-ErrorType", "ResourceNotFoundException")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                host._wait_at_gate(function.stage)
                injected = host._take_injected_error(function.stage)
                if injected is not None:
                    payload = json.dumps({"errorType": injected,
                                          "errorMessage": f"{injected} injected by the local Lambda host "
                                                          f"into offboard-{function.stage}"}).encode()
                    host.invocations.append((function.stage, True))
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("X-Amz-Executed-Version", "$LATEST")
                    self.send_header("X-Amz-Function-Error", "Unhandled")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                invocation = function.invoke(body or b"{}")
                if invocation is None:
                    payload = json.dumps({"Type": "User", "message": "Rate Exceeded.", "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"}).encode()
                    self.send_response(429)
                    self.send_header("x-amzn-ErrorType", "TooManyRequestsException")
                    # Every Lambda API answer carries its request id (botocore's lambda model
                    # and ResponseMetadata.RequestId read it from this header); Step
                    # Functions quotes it in the failure's cause.
                    self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                host.invocations.append((function.stage, invocation.error))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Amz-Executed-Version", "$LATEST")
                if invocation.error:
                    self.send_header("X-Amz-Function-Error", "Unhandled")
                self.send_header("Content-Length", str(len(invocation.body)))
                self.end_headers()
                self.wfile.write(invocation.body)

        return InvokeApi

