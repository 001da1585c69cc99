"""The local IAM/STS/Step Functions emulator: moto, made strict where stock
moto is lenient, with fault injection and a per-action call log.

Extensions over moto (each one mirrors documented IAM behaviour):
- user ids of IAM's form: ``AIDA`` + 17 upper-case letters/digits;
- service-specific credentials (Create/List/Delete/Update, Marker/MaxItems,
  any service name including ``bedrock.amazonaws.com``, 2 per service);
- DeleteUser refuses with DeleteConflict while any of the nine dependency
  kinds remain (login profile, access keys, signing certificates, SSH keys,
  service-specific credentials, MFA devices, inline policies, attached
  policies, group memberships);
- DeleteVirtualMFADevice on an assigned device is a DeleteConflict;
- ListUsers honours Marker/MaxItems (stock moto returns one page);
- user permissions boundaries (Put/DeleteUserPermissionsBoundary, in GetUser);
- optionally, DeactivateMFADevice denied for want of MFA (AccessDenied).

Control endpoint (JSON over HTTP on the same port):
- ``POST /_offboard/faults`` ``{"ThrottleRate": 0.3, "ServerErrorRate": 0.1,
  "LatencyMs": 20, "RequestsPerSecond": 10, "MfaRequiredForDeactivate": true,
  "Services": ["iam"], "Seed": 7}`` (omitted keys reset to off);
- ``GET /_offboard/calls`` the call log, ``DELETE /_offboard/calls`` clears it.
"""

from __future__ import annotations

import io
import json
import random
import string
import threading
import time
import urllib.parse
from dataclasses import dataclass, field

from moto.core.responses import ActionResult, EmptyResult
from moto.iam import models as iam_models
from moto.iam.exceptions import DeleteConflictException, LimitExceededException, NotFoundException
from moto.iam.responses import IamResponse
from moto.core.utils import utcnow

CONTROL_PREFIX = "/_offboard/"
SERVICE_CREDENTIALS_PER_SERVICE = 2


def iam_user_id() -> str:
    return "AIDA" + "".join(random.choices(string.ascii_uppercase + string.digits, k=17))


# --- strict IAM ------------------------------------------------------------

_original_user_init = iam_models.User.__init__


def _user_init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
    _original_user_init(self, *args, **kwargs)
    self.id = iam_user_id()
    self.service_specific_credentials = []
    self.permissions_boundary = None


def _put_user_permissions_boundary(self):  # type: ignore[no-untyped-def]
    user = self.backend.get_user(self._get_param("UserName"))
    user.permissions_boundary = {
        "PermissionsBoundaryType": "Policy",
        "PermissionsBoundaryArn": self._get_param("PermissionsBoundary"),
    }
    return EmptyResult()


def _delete_user_permissions_boundary(self):  # type: ignore[no-untyped-def]
    self.backend.get_user(self._get_param("UserName")).permissions_boundary = None
    return EmptyResult()


def _list_users_paginated(self):  # type: ignore[no-untyped-def]
    """Stock moto returns every user in one untruncated page."""
    users = list(self.backend.list_users(self._get_param("PathPrefix"), None, None))
    start = int(self._get_param("Marker") or 0)
    size = int(self._get_param("MaxItems") or 100)
    result: dict = {"Users": users[start : start + size], "IsTruncated": start + size < len(users)}
    if result["IsTruncated"]:
        result["Marker"] = str(start + size)
    return ActionResult(result)


def _delete_conflict(message: str) -> DeleteConflictException:
    return DeleteConflictException(message)


def _strict_delete_user(self, user_name: str) -> None:  # type: ignore[no-untyped-def]
    user = self.get_user(user_name)
    dependencies = [
        (user.password is not None, "must delete login profile first"),
        (bool(user.access_keys), "must delete access keys first"),
        (bool(user.signing_certificates), "must delete signing certificates first"),
        (bool(user.ssh_public_keys), "must delete SSH public keys first"),
        (bool(getattr(user, "service_specific_credentials", [])), "must delete service specific credentials first"),
        (bool(user.mfa_devices), "must delete MFA device first"),
        (bool(user.policies), "must delete policies first"),
        (bool(user.managed_policies), "must detach all policies first"),
        (any(user in group.users for group in self.groups.values()), "must remove users from group first"),
    ]
    for blocked, why in dependencies:
        if blocked:
            raise _delete_conflict(f"Cannot delete entity, {why}.")
    self.tagger.delete_all_tags_for_resource(user.arn)
    del self.users[user_name]


_original_delete_virtual_mfa_device = iam_models.IAMBackend.delete_virtual_mfa_device


def _strict_delete_virtual_mfa_device(self, serial_number: str) -> None:  # type: ignore[no-untyped-def]
    device = self.virtual_mfa_devices.get(serial_number)
    if device is not None and device.user is not None:
        raise _delete_conflict("MFA VirtualDevice in use. Must deactivate first.")
    if device is None:
        raise NotFoundException(f"VirtualMFADevice with serial number {serial_number} doesn't exist.")
    _original_delete_virtual_mfa_device(self, serial_number)


def _credential_id() -> str:
    return "ACCA" + "".join(random.choices(string.ascii_uppercase + string.digits, k=17))


def _create_service_specific_credential(self):  # type: ignore[no-untyped-def]
    user = self.backend.get_user(self._get_param("UserName"))
    service = self._get_param("ServiceName")
    same_service = [c for c in user.service_specific_credentials if c["ServiceName"] == service]
    if len(same_service) >= SERVICE_CREDENTIALS_PER_SERVICE:
        raise LimitExceededException(
            f"Cannot exceed quota for ServiceSpecificCredentialsPerUserPerService: {SERVICE_CREDENTIALS_PER_SERVICE}"
        )
    credential = {
        "CreateDate": utcnow(),
        "ServiceName": service,
        "ServiceSpecificCredentialId": _credential_id(),
        "UserName": user.name,
        "Status": "Active",
    }
    secret = "".join(random.choices(string.ascii_letters + string.digits, k=40))
    if service == "bedrock.amazonaws.com":
        credential["ServiceCredentialAlias"] = f"BedrockAPIKey-{credential['ServiceSpecificCredentialId'][-4:]}-at-{user.account_id}"
        credential["ServiceUserName"] = credential["ServiceCredentialAlias"]
        shown = {"ServiceCredentialSecret": secret}
    else:
        credential["ServiceUserName"] = f"{user.name}-at-{user.account_id}"
        shown = {"ServicePassword": secret}
    user.service_specific_credentials.append(credential)
    return ActionResult({"ServiceSpecificCredential": {**credential, **shown}})


def _list_service_specific_credentials(self):  # type: ignore[no-untyped-def]
    user = self.backend.get_user(self._get_param("UserName"))
    service = self._get_param("ServiceName")
    matching = [c for c in user.service_specific_credentials if service in (None, c["ServiceName"])]
    start = int(self._get_param("Marker") or 0)
    size = int(self._get_param("MaxItems") or 100)
    page = matching[start : start + size]
    result: dict = {"ServiceSpecificCredentials": page, "IsTruncated": start + size < len(matching)}
    if result["IsTruncated"]:
        result["Marker"] = str(start + size)
    return ActionResult(result)


def _find_credential(self):  # type: ignore[no-untyped-def]
    user = self.backend.get_user(self._get_param("UserName"))
    wanted = self._get_param("ServiceSpecificCredentialId")
    for credential in user.service_specific_credentials:
        if credential["ServiceSpecificCredentialId"] == wanted:
            return user, credential
    raise NotFoundException(f"No such credential {wanted}")


def _delete_service_specific_credential(self):  # type: ignore[no-untyped-def]
    user, credential = _find_credential(self)
    user.service_specific_credentials.remove(credential)
    return EmptyResult()


def _update_service_specific_credential(self):  # type: ignore[no-untyped-def]
    _, credential = _find_credential(self)
    credential["Status"] = self._get_param("Status")
    return EmptyResult()


def extend_moto() -> None:
    """Applies the strict-IAM extensions (idempotent)."""
    if getattr(iam_models, "_offboard_extended", False):
        return
    iam_models.User.__init__ = _user_init
    iam_models.IAMBackend.delete_user = _strict_delete_user
    iam_models.IAMBackend.delete_virtual_mfa_device = _strict_delete_virtual_mfa_device
    IamResponse.create_service_specific_credential = _create_service_specific_credential
    IamResponse.list_service_specific_credentials = _list_service_specific_credentials
    IamResponse.delete_service_specific_credential = _delete_service_specific_credential
    IamResponse.update_service_specific_credential = _update_service_specific_credential
    IamResponse.put_user_permissions_boundary = _put_user_permissions_boundary
    IamResponse.delete_user_permissions_boundary = _delete_user_permissions_boundary
    IamResponse.list_users = _list_users_paginated
    iam_models._offboard_extended = True


# --- faults and call log ----------------------------------------------------


@dataclass
class Faults:
    throttle_rate: float = 0.0
    server_error_rate: float = 0.0
    latency_ms: float = 0.0
    requests_per_second: float = 0.0
    mfa_required_for_deactivate: bool = False
    services: tuple = ("iam",)
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    @classmethod
    def from_json(cls, body: dict) -> "Faults":
        return cls(
            throttle_rate=float(body.get("ThrottleRate", 0)),
            server_error_rate=float(body.get("ServerErrorRate", 0)),
            latency_ms=float(body.get("LatencyMs", 0)),
            requests_per_second=float(body.get("RequestsPerSecond", 0)),
            mfa_required_for_deactivate=bool(body.get("MfaRequiredForDeactivate", False)),
            services=tuple(body.get("Services", ["iam"])),
            rng=random.Random(body.get("Seed", 0)),
        )


class TokenBucket:
    def __init__(self, rate: float):
        self.rate, self.tokens, self.stamp = rate, rate, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def _query_error(status: int, code: str, message: str) -> tuple[int, str]:
    kind = "Receiver" if status >= 500 else "Sender"
    body = (
        '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
        f"<Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error>"
        "<RequestId>emulator</RequestId></ErrorResponse>"
    )
    return status, body


class EmulatorApp:
    """WSGI middleware in front of moto's app: logs every AWS call with its
    action and caller access key id, injects faults, serves the control API."""

    def __init__(self, app):  # type: ignore[no-untyped-def]
        self.app = app
        self.lock = threading.Lock()
        self.calls: list[dict] = []
        self.faults = Faults()
        self.bucket: TokenBucket | None = None
        self.hooks: list[tuple[str, object]] = []

    def on_next(self, action: str, callback) -> None:  # type: ignore[no-untyped-def]
        """Runs ``callback()`` once, just before the next ``action`` call is served."""
        with self.lock:
            self.hooks.append((action, callback))

    def set_faults(self, settings: dict) -> None:
        """Replaces the fault settings (omitted keys are off) and the token bucket."""
        with self.lock:
            self.faults = Faults.from_json(settings)
            rate = self.faults.requests_per_second
            self.bucket = TokenBucket(rate) if rate else None

    def run_hooks(self, action: str) -> None:
        with self.lock:
            due = [hook for hook in self.hooks if hook[0] == action]
            self.hooks = [hook for hook in self.hooks if hook[0] != action]
        for _, callback in due:
            callback()

    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        path = environ.get("PATH_INFO", "")
        if path.startswith(CONTROL_PREFIX):
            return self.control(environ, start_response, path[len(CONTROL_PREFIX) :])
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        service, access_key, action = self.describe(environ, body)
        injected = self.inject(service, action)
        with self.lock:
            self.calls.append(
                {"Service": service, "Action": action, "AccessKeyId": access_key, "Time": time.time(),
                 "Injected": injected[1][:40] if injected else None}
            )
        if not injected:
            self.run_hooks(action)
        if injected:
            status, text = injected
            start_response(f"{status} Injected", [("Content-Type", "text/xml"), ("Content-Length", str(len(text)))])
            return [text.encode()]
        return self.app(environ, start_response)

    @staticmethod
    def describe(environ, body: bytes) -> tuple[str, str, str]:  # type: ignore[no-untyped-def]
        auth = environ.get("HTTP_AUTHORIZATION", "")
        access_key, service = "", ""
        if "Credential=" in auth:
            scope = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/")
            access_key, service = scope[0], scope[3] if len(scope) > 3 else ""
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target:
            action = target.rsplit(".", 1)[-1]
        else:
            form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
            action = form.get("Action", [""])[0]
        return service, access_key, action

    def inject(self, service: str, action: str) -> tuple[int, str] | None:
        faults = self.faults
        if service not in faults.services:
            return None
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000.0)
        with self.lock:
            if self.bucket is not None and not self.bucket.take():
                return _query_error(400, "Throttling", "Rate exceeded")
            roll = faults.rng.random()
        if roll < faults.throttle_rate:
            return _query_error(400, "Throttling", "Rate exceeded")
        if roll < faults.throttle_rate + faults.server_error_rate:
            return _query_error(503, "ServiceUnavailable", "Service is unavailable, try again")
        if faults.mfa_required_for_deactivate and action == "DeactivateMFADevice":
            return _query_error(
                403,
                "AccessDenied",
                "User is not authorized to perform: iam:DeactivateMFADevice with an explicit deny in an "
                "identity-based policy: MFA authentication required (aws:MultiFactorAuthPresent is false)",
            )
        return None

    def control(self, environ, start_response, what: str):  # type: ignore[no-untyped-def]
        method = environ["REQUEST_METHOD"]
        if what == "faults" and method == "POST":
            self.set_faults(json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)) or b"{}"))
            payload: object = {"ok": True}
        elif what == "calls" and method == "DELETE":
            with self.lock:
                self.calls.clear()
            payload = {"ok": True}
        elif what == "calls":
            with self.lock:
                payload = list(self.calls)
        else:
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b'{"error": "unknown control path"}']
        text = json.dumps(payload).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(text)))])
        return [text]
