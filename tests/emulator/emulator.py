"""The local IAM/STS/Step Functions emulator: moto, made strict where stock
moto is lenient, with fault injection and a per-action call log.

Real AWS is the reference (docs/DESIGN.md). Every behaviour below carries, beside
its code, the source it follows: an AWS API reference / user guide page, the
botocore IAM model, or a real AWS response. Short names used in the comments:

- [API]      IAM API Reference, https://docs.aws.amazon.com/IAM/latest/APIReference/
             (the same text is in botocore's model, botocore/data/iam/2010-05-08/service-2.json,
             https://github.com/boto/botocore, commit 0e6e2404b85dc336dd2889814e089bde7d1a4c55)
- [UG]       IAM User Guide, https://docs.aws.amazon.com/IAM/latest/UserGuide/
             (markdown source: https://github.com/awsdocs/iam-user-guide, doc_source/)
- [LS-x]     a response recorded against real AWS by LocalStack's AWS-validated snapshot
             tests (each test is marked ``@markers.aws.validated``; the snapshot file holds
             the real response, identifiers redacted), commit
             b04c14cef11671f07f1d6d5a451f0d766600cf1a of https://github.com/localstack/localstack:
             LS-USERS tests/aws/services/iam/test_iam_users.snapshot.json,
             LS-IAM   tests/aws/services/iam/test_iam.snapshot.json,
             LS-MFA   tests/aws/services/iam/test_iam_mfa.snapshot.json,
             LS-ROLES tests/aws/services/iam/test_iam_roles.snapshot.json
- [DESIGN]   a real response quoted in docs/DESIGN.md ("Real AWS is the reference")

Extensions over moto 5.2.5:
- user ids of IAM's form: ``AIDA`` + 17 upper-case letters/digits;
- CreateUser refuses a name that differs only in case from an existing user
  (EntityAlreadyExists), with IAM's message;
- user tag keys compare without case: TagUser with ``department`` replaces
  ``Department`` (one tag, the new spelling), UntagUser matches any case;
- service-specific credentials (Create/List/Delete/Update, Marker/MaxItems,
  any service name including ``bedrock.amazonaws.com``, 2 per service);
- DeleteUser refuses with DeleteConflict while any of the nine dependency
  kinds remain (login profile, access keys, signing certificates, SSH keys,
  service-specific credentials, MFA devices, inline policies, attached
  policies, group memberships), with IAM's message for each;
- DeleteVirtualMFADevice on an assigned device is a DeleteConflict;
  NoSuchEntity messages of DeactivateMFADevice / DeleteVirtualMFADevice are IAM's;
- virtual MFA device tags (TagMFADevice, UntagMFADevice, ListMFADeviceTags;
  stock moto has none), gone with the device;
- ListUsers honours Marker/MaxItems (stock moto returns one page) and, like
  IAM, returns neither Tags nor PermissionsBoundary;
- user permissions boundaries (Put/DeleteUserPermissionsBoundary, in GetUser).
  (GetUser returning the user's Tags is stock moto 5.2.5 behaviour and real.)

Not emulated (no source found, so stock moto behaviour is kept): resolving
``UserName`` case-insensitively in GetUser and the other UserName-taking
calls (``GetUser(UserName="ALICE")`` for user ``alice`` is NoSuchEntity here).

Control endpoint (JSON over HTTP on the same port; omitted keys reset to off):
- ``POST /_offboard/faults`` ``{"ThrottleRate": 0.3, "ServerErrorRate": 0.1,
  "LatencyMs": 20, "RequestsPerSecond": 10, "MfaRequiredForDeactivate": true,
  "PolicyDenyActions": ["DeleteAccessKey"], "Services": ["iam"], "Seed": 7}``
  - ``ThrottleRate`` / ``RequestsPerSecond``: 400 ``Throttling`` "Rate exceeded";
  - ``ServerErrorRate``: 503 ``ServiceUnavailable``;
  - ``MfaRequiredForDeactivate``: DeactivateMFADevice answers 403 ``AccessDenied``
    with IAM's MFA message, ``To complete this action, please ensure that you are
    authenticated with an MFA device that is enabled for this user.``;
  - ``PolicyDenyActions``: each listed action answers 403 ``AccessDenied`` in
    IAM's generic explicit-deny format, ``User: <caller ARN> is not authorized to
    perform: iam:<Action> on resource: <resource ARN> with an explicit deny in an
    identity-based policy`` (caller: the IAM user owning the request's access key,
    else ``arn:aws:iam::123456789012:user/ops``; resource: from the request's
    parameters, see ``DENY_RESOURCE``). MfaRequiredForDeactivate wins when both apply.
  An unknown action in PolicyDenyActions is refused (400 from the endpoint).
- STS ``AssumeRole`` of a role that does not exist answers 403 ``AccessDenied``
  as real STS does (stock moto issues credentials for any role ARN).
- ``GET /_offboard/calls`` the call log: one entry per AWS call, ``{"Service",
  "Action", "AccessKeyId", "Account" (the account the key acts in: an assumed
  role's key acts in the role's account), "Time", "Injected" (the injected error code or null),
  "Params" (the request's form parameters, first value of each, without Action
  and Version; a DynamoDB call's JSON body)}``, and for a DynamoDB call also
  ``"Status"`` (HTTP status) and ``"Response"`` (its JSON answer);
  ``DELETE /_offboard/calls`` clears it.
"""

from __future__ import annotations

import http
import io
import json
import random
import string
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from xml.sax.saxutils import escape

from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.responses import ActionResult, EmptyResult
from moto.core.utils import utcnow
from moto.iam import models as iam_models
from moto.iam.exceptions import (
    DeleteConflictException,
    EntityAlreadyExists,
    LimitExceededException,
    NotFoundException,
)
from moto.iam.responses import IamResponse

CONTROL_PREFIX = "/_offboard/"

# [API] CreateServiceSpecificCredential: "You can have a maximum of two sets of
# service-specific credentials for each supported service per user."
# [UG] id_credentials_bedrock.html: an IAM user can have at most two Amazon Bedrock
# long-term API keys.
SERVICE_CREDENTIALS_PER_SERVICE = 2

# The caller named in a policy denial when the request's access key belongs to no
# emulated IAM user (the Lambda hosts use synthetic keys). The fixed "ops" user is
# the caller of the real denial quoted in [DESIGN].
FALLBACK_CALLER = f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:user/ops"

# [DESIGN] real response: DeactivateMFADevice when the caller must be MFA-authenticated.
MFA_REQUIRED_MESSAGE = (
    "To complete this action, please ensure that you are authenticated with an MFA device "
    "that is enabled for this user."
)


def iam_user_id() -> str:
    # [UG] reference_identifiers.html#identifiers-prefixes: "AIDA | IAM user"; its
    # examples (AIDAJQABLZS4A3QDU576Q, AIDACKCEVSQ6C2EXAMPLE) are AIDA + 17 upper-case
    # letters/digits. [API] User.UserId: idType, pattern [\w]+, 16-128 characters.
    return "AIDA" + "".join(random.choices(string.ascii_uppercase + string.digits, k=17))


# --- strict IAM ------------------------------------------------------------

_original_user_init = iam_models.User.__init__
_original_create_user = iam_models.IAMBackend.create_user
_original_delete_virtual_mfa_device = iam_models.IAMBackend.delete_virtual_mfa_device
_original_deactivate_mfa_device = iam_models.IAMBackend.deactivate_mfa_device


def _user_init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
    _original_user_init(self, *args, **kwargs)
    self.id = iam_user_id()
    self.service_specific_credentials = []
    self.permissions_boundary = None


def _strict_create_user(self, region_name, user_name, path="/", tags=None):  # type: ignore[no-untyped-def]
    # [API] CreateUser, UserName: "IAM user, group, role, and policy names must be unique
    # within the account. Names are not distinguished by case. For example, you cannot
    # create resources named both "MyResource" and "myresource"." [UG] id_users_create.md:
    # "Names must be unique within an account. They are not distinguished by case. For
    # example, you cannot create two users named TESTUSER and testuser." The error is
    # EntityAlreadyExists, HTTP 409 ([API] error shapes); message verbatim from [LS-USERS]
    # create-duplicate-user-error, "User with name <name> already exists." (also in a real
    # CLI traceback, https://github.com/ucopacme/aws-orgs/issues/12). Stock moto says
    # "User <name> already exists" and lets ALICE and alice coexist. Which spelling real
    # IAM puts in the message when only the case differs is not documented: the
    # requested one is used.
    if any(existing.lower() == user_name.lower() for existing in self.users):
        raise EntityAlreadyExists(f"User with name {user_name} already exists.")
    # Tags passed to CreateUser follow the user tag rules (below); a key given twice in
    # different case is IAM's InvalidInput "Duplicate tag keys found. Please note that Tag
    # keys are case insensitive." ([LS-ROLES] create-role-duplicate-tags-different-case,
    # recorded for CreateRole; [UG] id_tags.md gives users and roles the same key rule).
    # moto's own validator raises exactly that.
    self._tag_verification(tags or [])
    return _original_create_user(self, region_name, user_name, path, tags)


def _case_insensitive_tag_user(self, name, tags):  # type: ignore[no-untyped-def]
    # [UG] id_tags.md, "Case sensitivity": "Tag key values for IAM users and roles are not
    # case sensitive, but case is preserved. This means that you cannot have separate
    # Department and department tag keys. If you have tagged a user with the
    # Department=finance tag and you add the department=hr tag, it replaces the first
    # tag. A second tag is not added." The surviving spelling is the new one: [LS-ROLES]
    # list-role-tags-after-casing-update, TagRole Somekey after somekey leaves only
    # {"Key": "Somekey", "Value": "updatedvalue"} (recorded for a role; same rule).
    # [API] TagUser: "If a tag with the same key name already exists, then that tag is
    # overwritten with the new value." Stock moto keeps both keys.
    user = self.get_user(name)
    self._tag_verification(tags)
    existing = self.tagger.tags.setdefault(user.arn, {})
    for tag in tags:
        for key in [key for key in existing if key.lower() == tag["Key"].lower() and key != tag["Key"]]:
            del existing[key]
    self.tagger.tag_resource(user.arn, tags)


def _case_insensitive_untag_user(self, name, tag_keys):  # type: ignore[no-untyped-def]
    # [UG] id_tags.md: user tag keys "are not case sensitive" (quoted above), so an
    # UntagUser key names the tag whatever its spelling. No captured real response
    # for UntagUser in another case was found; this follows the documented rule.
    user = self.get_user(name)
    wanted = {key.lower() for key in tag_keys}
    actual = [key for key in self.tagger.tags.get(user.arn, {}) if key.lower() in wanted]
    self.tagger.untag_resource_using_names(user.arn, actual)


def _put_user_permissions_boundary(self):  # type: ignore[no-untyped-def]
    # [API] PutUserPermissionsBoundary / GetUser: User.PermissionsBoundary is an
    # AttachedPermissionsBoundary. PermissionsBoundaryType "can only have a value of
    # Policy" ([API] AttachedPermissionsBoundary); real responses carry "Policy"
    # ([LS-ROLES] get-role-with-boundary), although botocore's enum says
    # "PermissionsBoundaryPolicy".
    user = self.backend.get_user(self._get_param("UserName"))
    user.permissions_boundary = {
        "PermissionsBoundaryType": "Policy",
        "PermissionsBoundaryArn": self._get_param("PermissionsBoundary"),
    }
    return EmptyResult()


_original_create_user_response = IamResponse.create_user


def _create_user_with_boundary(self):  # type: ignore[no-untyped-def]
    # [API] CreateUser: "PermissionsBoundary - The ARN of the managed policy that
    # is used to set the permissions boundary for the user"; stock moto drops it.
    # Stored as PutUserPermissionsBoundary stores it (above).
    result = _original_create_user_response(self)
    boundary = self._get_param("PermissionsBoundary")
    if boundary:
        self.backend.get_user(self._get_param("UserName")).permissions_boundary = {
            "PermissionsBoundaryType": "Policy",
            "PermissionsBoundaryArn": boundary,
        }
    return result


def _delete_user_permissions_boundary(self):  # type: ignore[no-untyped-def]
    # [API] DeleteUserPermissionsBoundary: removes the boundary; the user keeps the rest.
    self.backend.get_user(self._get_param("UserName")).permissions_boundary = None
    return EmptyResult()


def _listed_user(user) -> dict:  # type: ignore[no-untyped-def]
    # [API] ListUsers: "IAM resource-listing operations return a subset of the available
    # attributes for the resource. This operation does not return the following
    # attributes, even though they are an attribute of the returned object:
    # PermissionsBoundary, Tags. To view all of the information for a user, see GetUser."
    listed = {"Path": user.path, "UserName": user.name, "UserId": user.id, "Arn": user.arn,
              "CreateDate": user.create_date}
    if user.password_last_used is not None:
        listed["PasswordLastUsed"] = user.password_last_used
    return listed


def _list_users_paginated(self):  # type: ignore[no-untyped-def]
    """Stock moto returns every user in one untruncated page."""
    # [API] ListUsers: "You can paginate the results using the MaxItems and Marker
    # parameters." MaxItems: "If you do not include this parameter, the number of items
    # defaults to 100." IsTruncated/Marker: "When IsTruncated is true, this element is
    # present and contains the value to use for the Marker parameter in a subsequent
    # pagination request." The Marker's content is opaque in IAM; here it is an index.
    users = list(self.backend.list_users(self._get_param("PathPrefix"), None, None))
    start = int(self._get_param("Marker") or 0)
    size = int(self._get_param("MaxItems") or 100)
    page = [_listed_user(user) for user in users[start : start + size]]
    result: dict = {"Users": page, "IsTruncated": start + size < len(users)}
    if result["IsTruncated"]:
        result["Marker"] = str(start + size)
    return ActionResult(result)


def _delete_conflict(message: str) -> DeleteConflictException:
    # [API] DeleteConflict: HTTP 409, Type Sender ("senderFault": true in botocore's model).
    return DeleteConflictException(message)


def _strict_delete_user(self, user_name: str) -> None:  # type: ignore[no-untyped-def]
    # [API] DeleteUser: "when you delete a user programmatically, you must delete the
    # items attached to the user manually, or the deletion fails. [...] Before attempting
    # to delete a user, remove the following items: Password (DeleteLoginProfile), Access
    # keys (DeleteAccessKey), Signing certificate (DeleteSigningCertificate), SSH public key
    # (DeleteSSHPublicKey), Git credentials (DeleteServiceSpecificCredential), Multi-factor
    # authentication (MFA) device (DeactivateMFADevice, DeleteVirtualMFADevice), Inline
    # policies (DeleteUserPolicy), Attached managed policies (DetachUserPolicy), Group
    # memberships (RemoveUserFromGroup)". Permissions boundary and tags are not in the list.
    # Each message is IAM's, from a real response:
    user = self.get_user(user_name)
    dependencies = [
        # https://github.com/cloud-custodian/cloud-custodian/issues/1663 (DeleteUser traceback),
        # https://github.com/rebuy-de/aws-nuke/pull/169 ("status code: 409")
        (user.password is not None, "Cannot delete entity, must delete login profile first."),
        # https://github.com/aws-controllers-k8s/community/issues/2229 ("status code: 409")
        (bool(user.access_keys), "Cannot delete entity, must delete access keys first."),
        # https://github.com/rebuy-de/aws-nuke/issues/671 (aws CLI, DeleteUser with a signing certificate)
        (bool(user.signing_certificates), "Cannot delete entity, must delete certificates first."),
        # https://github.com/rebuy-de/aws-nuke/issues/470 (user with CodeCommit SSH keys)
        (bool(user.ssh_public_keys), "Cannot delete entity, must remove referenced objects first."),
        # [LS-IAM] delete-user-existing-credential (user with a codecommit credential)
        (bool(getattr(user, "service_specific_credentials", [])),
         "Cannot delete entity, must remove referenced objects first."),
        # https://github.com/rebuy-de/aws-nuke/issues/281, https://github.com/aws/aws-cdk/issues/16511
        (bool(user.mfa_devices), "Cannot delete entity, must delete MFA device first."),
        # [LS-USERS] delete-user-with-inline-policy-error
        (bool(user.policies), "Cannot delete entity, must delete policies first."),
        # [LS-USERS] delete-user-with-attached-policy-error
        (bool(user.managed_policies), "Cannot delete entity, must detach all policies first."),
        # https://github.com/mozilla-services/userplex/issues/17 ("failed to delete aws user")
        (any(user in group.users for group in self.groups.values()),
         "Cannot delete entity, must remove users from group first."),
    ]
    # Which message real IAM gives when several kinds remain is not documented; the
    # first blocking kind in the [API] list order is reported.
    for blocked, message in dependencies:
        if blocked:
            raise _delete_conflict(message)
    self.tagger.delete_all_tags_for_resource(user.arn)
    del self.users[user_name]


def _strict_delete_virtual_mfa_device(self, serial_number: str) -> None:  # type: ignore[no-untyped-def]
    device = self.virtual_mfa_devices.get(serial_number)
    if device is not None and device.user is not None:
        # [API] DeleteVirtualMFADevice: "You must deactivate a user's virtual MFA device
        # before you can delete it." and its DeleteConflict error (HTTP 409): "attempted to
        # delete a resource that has attached subordinate entities". NO real message text
        # was found: the message below is the API reference's sentence, not a captured
        # response. Tests must rely on the code only.
        raise _delete_conflict("You must deactivate a user's virtual MFA device before you can delete it.")
    if device is None:
        # [LS-MFA] delete-nonexistent-error: NoSuchEntity (404), "MFA Device with serial
        # number <serial> does not exist." (stock moto: "VirtualMFADevice ... doesn't exist.")
        raise NotFoundException(f"MFA Device with serial number {serial_number} does not exist.")
    _original_delete_virtual_mfa_device(self, serial_number)
    self.tagger.delete_all_tags_for_resource(serial_number)


#: botocore's IAM model: tagListType has "max": 50 (a request's Tags); the
#: emulator applies the same number to a device's tags in all. [API] lists
#: LimitExceeded among TagMFADevice's errors; its message was NOT captured.
TAGS_PER_RESOURCE = 50


def _virtual_device(self):  # type: ignore[no-untyped-def]
    # [API] TagMFADevice / UntagMFADevice / ListMFADeviceTags act on "the IAM virtual MFA
    # device [...] For virtual MFA devices, the serial number is the same as the ARN" and list
    # NoSuchEntity among their errors; a passkey's or hardware token's serial is no virtual
    # device. The message is the one [LS-MFA] records for DeactivateMFADevice on an unknown
    # serial: NO captured TagMFADevice message was found. Tests must rely on the code only.
    serial = self._get_param("SerialNumber")
    if serial not in self.backend.virtual_mfa_devices:
        raise NotFoundException(f"MFA Device with serial number {serial} does not exist.")
    return serial


def _tag_mfa_device(self):  # type: ignore[no-untyped-def]
    # [API] TagMFADevice: "If a tag with the same key name already exists, then that tag is
    # overwritten with the new value."; LimitExceeded beyond the per-resource maximum.
    serial = _virtual_device(self)
    tags = self._get_param("Tags", [])
    self.backend._tag_verification(tags)  # moto's own key/value checks for user and role tags
    keys = {tag["Key"] for tag in self.backend.tagger.list_tags_for_resource(serial)["Tags"]}
    if len(keys | {tag["Key"] for tag in tags}) > TAGS_PER_RESOURCE:
        raise LimitExceededException(f"The number of tags has reached the maximum limit of {TAGS_PER_RESOURCE}.")
    self.backend.tagger.tag_resource(serial, tags)
    return EmptyResult()


def _untag_mfa_device(self):  # type: ignore[no-untyped-def]
    serial = _virtual_device(self)
    self.backend.tagger.untag_resource_using_names(serial, self._get_param("TagKeys", []))
    return EmptyResult()


def _list_mfa_device_tags(self):  # type: ignore[no-untyped-def]
    # [API] ListMFADeviceTags: "If no tags are attached to the specified resource, the
    # response contains an empty list." At most 50 tags fit the default page of 100.
    serial = _virtual_device(self)
    return ActionResult({"Tags": self.backend.tagger.list_tags_for_resource(serial)["Tags"], "IsTruncated": False})


def _strict_deactivate_mfa_device(self, user_name: str, serial_number: str) -> None:  # type: ignore[no-untyped-def]
    # [LS-MFA] deactivate-nonexistent-mfa-error: NoSuchEntity (404), "MFA Device with
    # serial number <serial> does not exist." (stock moto: "Device <serial> not found").
    # An unknown user stays moto's "The user with name <name> cannot be found."
    # ([LS-MFA] deactivate-mfa-nonexistent-user-error, same text).
    user = self.get_user(user_name)
    if serial_number not in user.mfa_devices:
        raise NotFoundException(f"MFA Device with serial number {serial_number} does not exist.")
    _original_deactivate_mfa_device(self, user_name, serial_number)


def _credential_id() -> str:
    # [UG] reference_identifiers.html#identifiers-prefixes: "ACCA | Context-specific
    # credential". AWS CLI examples show ids of ACCA + 17 upper-case letters/digits:
    # ACCAQFODXMPL4YFHP7DZE, ACCAQFOXMPL6VW57M7AJP (aws/aws-cli
    # awscli/examples/iam/list-service-specific-credentials.rst). [API] pattern [\w]+, 20-128 characters.
    return "ACCA" + "".join(random.choices(string.ascii_uppercase + string.digits, k=17))


def _create_service_specific_credential(self):  # type: ignore[no-untyped-def]
    user = self.backend.get_user(self._get_param("UserName"))
    service = self._get_param("ServiceName")
    same_service = [c for c in user.service_specific_credentials if c["ServiceName"] == service]
    if len(same_service) >= SERVICE_CREDENTIALS_PER_SERVICE:
        # [API] CreateServiceSpecificCredential errors: LimitExceeded, HTTP 409. IAM's quota
        # messages read "Cannot exceed quota for <QuotaName>: <n>" ([LS-USERS]
        # create-third-access-key-error "Cannot exceed quota for AccessKeysPerUser: 2";
        # [LS-IAM] "... CertificatesPerUser: 2"). The quota NAME for service-specific
        # credentials was NOT found in any source: "ServiceSpecificCredentialsPerUserPerService"
        # is a placeholder. Tests must rely on the code only.
        raise LimitExceededException(
            f"Cannot exceed quota for ServiceSpecificCredentialsPerUserPerService: {SERVICE_CREDENTIALS_PER_SERVICE}"
        )
    # Real IAM answers an unsupported ServiceName with NoSuchEntity "No such service <name>
    # is supported for Service Specific Credentials" ([LS-IAM]); the emulator accepts any
    # name (lenient; the supported list is not documented in one place).
    credential = {
        "CreateDate": utcnow(),
        "ServiceName": service,
        "ServiceSpecificCredentialId": _credential_id(),
        "UserName": user.name,
        "Status": "Active",  # [LS-IAM] create-service-specific-credential-response: Active
    }
    secret = "".join(random.choices(string.ascii_letters + string.digits, k=40))
    if service == "bedrock.amazonaws.com":
        # [API] ServiceSpecificCredential: for Bedrock API keys, ServiceCredentialAlias is
        # "the public portion of the credential that includes the IAM user name and a suffix
        # containing version and creation information" and ServiceCredentialSecret "the
        # secret portion [...] returned only when the credential is created". The exact
        # suffix is not documented: the emulator uses the ServiceUserName form below.
        credential["ServiceCredentialAlias"] = f"{user.name}-at-{user.account_id}"
        credential["ServiceUserName"] = credential["ServiceCredentialAlias"]
        shown = {"ServiceCredentialSecret": secret}
    else:
        # [API] ServiceUserName: "generated by combining the IAM user's name combined with
        # the ID number of the Amazon Web Services account, as in jane-at-123456789012";
        # [LS-IAM] "<user-name>-at-111111111111" with a ServicePassword. A second credential
        # for the same service gets "+1": AWS CLI example list-service-specific-credentials
        # ("developer-at-123456789012" and "developer+1-at-123456789012", aws/aws-cli
        # awscli/examples/iam/list-service-specific-credentials.rst).
        base = f"{user.name}-at-{user.account_id}"
        taken = any(c.get("ServiceUserName") == base for c in same_service)
        credential["ServiceUserName"] = f"{user.name}+1-at-{user.account_id}" if taken else base
        shown = {"ServicePassword": secret}
    user.service_specific_credentials.append(credential)
    return ActionResult({"ServiceSpecificCredential": {**credential, **shown}})


def _list_service_specific_credentials(self):  # type: ignore[no-untyped-def]
    # [API] ListServiceSpecificCredentials: ServiceName "Filters the returned results to
    # only those for the specified Amazon Web Services service. If not specified, then
    # Amazon Web Services returns service-specific credentials for all services."; the
    # request has Marker/MaxItems and the response Marker/IsTruncated. The metadata never
    # includes the password or secret ([API] ServiceSpecificCredentialMetadata).
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
    # [LS-IAM] update/reset/delete-wrong-id: NoSuchEntity (404), "No such credential <id> exists"
    raise NotFoundException(f"No such credential {wanted} exists")


def _delete_service_specific_credential(self):  # type: ignore[no-untyped-def]
    # [API] DeleteServiceSpecificCredential; [LS-IAM] delete-service-specific-credentials-response
    user, credential = _find_credential(self)
    user.service_specific_credentials.remove(credential)
    return EmptyResult()


def _update_service_specific_credential(self):  # type: ignore[no-untyped-def]
    # [API] UpdateServiceSpecificCredential: Status Active | Inactive;
    # [LS-IAM] list-service-specific-credentials-response-after-update shows Inactive.
    _, credential = _find_credential(self)
    credential["Status"] = self._get_param("Status")
    return EmptyResult()


#: moto's copy of the AWS managed policies (moto/iam/aws_managed_policies.py),
#: parsed once per process: (name, default version, path, document, created,
#: updated) each.
_AWS_MANAGED_POLICIES: list[tuple] | None = None


def _init_aws_policies_parsed_once(self):  # type: ignore[no-untyped-def]
    """moto's IAMBackend._init_aws_policies (moto 5.2.5, moto/iam/models.py)
    with the same policies, but the data parsed once per process: moto
    json.loads the whole set and json.dumps every document again for each
    account it first sees and for each account a mock's reset rebuilds,
    about a tenth of the end-to-end suite's CPU (py-spy). Each account still
    gets its own AWSManagedPolicy objects (their attachment counts are per
    account), built as moto's AWSManagedPolicy.from_data builds them."""
    global _AWS_MANAGED_POLICIES
    if not iam_models.load_iam_aws_managed_policies():
        return []
    if _AWS_MANAGED_POLICIES is None:
        _AWS_MANAGED_POLICIES = [
            (name, data.get("DefaultVersionId"), data.get("Path"), json.dumps(data.get("Document")),
             datetime.fromisoformat(data["CreateDate"]), datetime.fromisoformat(data["UpdateDate"]))
            for name, data in json.loads(iam_models.aws_managed_policies_data).items()
        ]
    return [
        iam_models.AWSManagedPolicy(name, account_id=self.account_id, region=self.region_name,
                                    default_version_id=version, path=path, document=document,
                                    create_date=created, update_date=updated)
        for name, version, path, document, created, updated in _AWS_MANAGED_POLICIES
    ]


def extend_moto() -> None:
    """Applies the strict-IAM extensions (idempotent)."""
    if getattr(iam_models, "_offboard_extended", False):
        return
    iam_models.User.__init__ = _user_init
    iam_models.IAMBackend.create_user = _strict_create_user
    iam_models.IAMBackend.tag_user = _case_insensitive_tag_user
    iam_models.IAMBackend.untag_user = _case_insensitive_untag_user
    iam_models.IAMBackend.delete_user = _strict_delete_user
    iam_models.IAMBackend.delete_virtual_mfa_device = _strict_delete_virtual_mfa_device
    iam_models.IAMBackend.deactivate_mfa_device = _strict_deactivate_mfa_device
    IamResponse.create_service_specific_credential = _create_service_specific_credential
    IamResponse.list_service_specific_credentials = _list_service_specific_credentials
    IamResponse.delete_service_specific_credential = _delete_service_specific_credential
    IamResponse.update_service_specific_credential = _update_service_specific_credential
    IamResponse.create_user = _create_user_with_boundary
    IamResponse.put_user_permissions_boundary = _put_user_permissions_boundary
    IamResponse.delete_user_permissions_boundary = _delete_user_permissions_boundary
    IamResponse.list_users = _list_users_paginated
    IamResponse.tag_mfa_device = _tag_mfa_device
    IamResponse.untag_mfa_device = _untag_mfa_device
    IamResponse.list_mfa_device_tags = _list_mfa_device_tags
    iam_models.IAMBackend._init_aws_policies = _init_aws_policies_parsed_once
    iam_models._offboard_extended = True


# --- policy denials: which resource an action acts on ------------------------

# The resource type each denied action names in IAM's message, per the Service
# Authorization Reference, "Actions, resources, and condition keys for AWS Identity and
# Access Management (IAM)"
# (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsidentityandaccessmanagementiam.html),
# as the project's infra/template.yaml already scopes them (user/*, mfa/*, group/*).
# DeactivateMFADevice -> user: [DESIGN] real denial names "on resource:
# arn:aws:iam::123456789012:user/alice". DeleteVirtualMFADevice -> mfa: [API] "For virtual
# MFA devices, the serial number is the same as the ARN." The per-action rows of the
# reference could not be read in the stored copies; actions without resource-level
# permissions (ListUsers: Resource "*") are not offered.
DENY_RESOURCE = {
    **{action: "user" for action in (
        "GetUser", "GetLoginProfile", "ListAccessKeys", "ListMFADevices", "ListSSHPublicKeys",
        "ListServiceSpecificCredentials", "ListSigningCertificates", "GetUserPolicy",
        "ListAttachedUserPolicies", "ListGroupsForUser", "ListUserPolicies", "DeactivateMFADevice",
        "DeleteAccessKey", "DeleteLoginProfile", "DeleteSSHPublicKey", "DeleteServiceSpecificCredential",
        "DeleteSigningCertificate", "DeleteUserPolicy", "DetachUserPolicy", "DeleteUser",
        # The quarantine's calls act on the user too (Service Authorization
        # Reference, IAM: resource type "user" for each).
        "UpdateAccessKey", "UpdateSSHPublicKey", "UpdateSigningCertificate", "UpdateServiceSpecificCredential",
        "AttachUserPolicy", "TagUser", "UntagUser",
    )},
    "DeleteVirtualMFADevice": "mfa",
    "TagMFADevice": "mfa",
    "ListMFADeviceTags": "mfa",
    "RemoveUserFromGroup": "group",
}


def _iam_backend():  # type: ignore[no-untyped-def]
    return iam_models.iam_backends[DEFAULT_ACCOUNT_ID]["aws"]


def _caller_arn(access_key: str) -> str:
    user = _iam_backend().get_user_from_access_key_id(access_key) if access_key else None
    return user.arn if user is not None else FALLBACK_CALLER


def _resource_arn(action: str, params: dict) -> str:
    # [UG] reference_identifiers.html#identifiers-arns: arn:aws:iam::123456789012:user/JohnDoe,
    # ...:user/division_abc/subdivision_xyz/JaneDoe (the path is part of the ARN).
    backend = _iam_backend()
    kind = DENY_RESOURCE[action]
    if kind == "mfa":
        return params.get("SerialNumber", "")
    if kind == "group":
        name = params.get("GroupName", "")
        group = backend.groups.get(name)
        return group.arn if group is not None else f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:group/{name}"
    name = params.get("UserName", "")
    user = backend.users.get(name)
    return user.arn if user is not None else f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:user/{name}"


def policy_deny_message(action: str, params: dict, access_key: str) -> str:
    # [UG] troubleshoot_access-denied.html: "Most access denied error messages appear in the
    # format User user is not authorized to perform action on resource because context [...]
    # When a policy explicitly denies access because the policy contains a Deny statement,
    # then AWS includes the phrase with an explicit deny in a type policy". Verbatim shape
    # from [DESIGN]'s real response: "User: arn:aws:iam::123456789012:user/ops is not
    # authorized to perform: iam:DeactivateMFADevice on resource:
    # arn:aws:iam::123456789012:user/alice with an explicit deny in an identity-based policy"
    return (
        f"User: {_caller_arn(access_key)} is not authorized to perform: iam:{action} on resource: "
        f"{_resource_arn(action, params)} with an explicit deny in an identity-based policy"
    )


# --- faults and call log ----------------------------------------------------


@dataclass
class Faults:
    throttle_rate: float = 0.0
    server_error_rate: float = 0.0
    latency_ms: float = 0.0
    requests_per_second: float = 0.0
    mfa_required_for_deactivate: bool = False
    policy_deny_actions: tuple = ()
    services: tuple = ("iam",)
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    @classmethod
    def from_json(cls, body: dict) -> "Faults":
        deny = tuple(body.get("PolicyDenyActions", []))
        unknown = [action for action in deny if action not in DENY_RESOURCE]
        if unknown:
            raise ValueError(f"PolicyDenyActions: no resource mapping for {unknown}; known: {sorted(DENY_RESOURCE)}")
        return cls(
            throttle_rate=float(body.get("ThrottleRate", 0)),
            server_error_rate=float(body.get("ServerErrorRate", 0)),
            latency_ms=float(body.get("LatencyMs", 0)),
            requests_per_second=float(body.get("RequestsPerSecond", 0)),
            mfa_required_for_deactivate=bool(body.get("MfaRequiredForDeactivate", False)),
            policy_deny_actions=deny,
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


def _query_error(status: int, code: str, message: str,
                 namespace: str = "https://iam.amazonaws.com/doc/2010-05-08/") -> tuple[int, str, str]:
    # IAM's query-protocol error body, verbatim shape of a real IAM response
    # (https://github.com/nccgroup/Scout2/issues/17, "400 Bad Request"):
    # <ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error>
    # <Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>
    # <RequestId>b70a15bc-...</RequestId></ErrorResponse>
    # Type: Sender for client faults, Receiver for server faults (botocore's model marks
    # client errors "senderFault": true; ServiceFailure, HTTP 500, has none).
    kind = "Receiver" if status >= 500 else "Sender"
    body = (
        f'<ErrorResponse xmlns="{namespace}">'
        f"<Error><Type>{kind}</Type><Code>{code}</Code><Message>{escape(message)}</Message></Error>"
        f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    )
    return status, code, body


def _throttling() -> tuple[int, str, str]:
    # Real IAM throttling: HTTP 400, Code Throttling, Message "Rate exceeded"
    # (https://github.com/nccgroup/Scout2/issues/17 full XML; "Throttling: Rate exceeded
    # status code: 400" in https://github.com/gruntwork-io/cloud-nuke/issues/371).
    # botocore retries it as throttling: botocore/data/_retry.json
    # {"service_error_code": "Throttling", "http_status_code": 400}.
    return _query_error(400, "Throttling", "Rate exceeded")


def _service_unavailable() -> tuple[int, str, str]:
    # Common Errors (e.g. https://docs.aws.amazon.com/emr/latest/APIReference/CommonErrors.html,
    # the shared "errors common to the API actions of all AWS services" page, also linked
    # from each IAM action's Errors section): "ServiceUnavailable: The request has failed
    # due to a temporary failure of the server. HTTP Status Code: 503". No captured IAM
    # 503 body was found: the message is that documented sentence, not a real response.
    return _query_error(503, "ServiceUnavailable", "The request has failed due to a temporary failure of the server.")


def _access_denied(message: str) -> tuple[int, str, str]:
    # IAM's AccessDenied: HTTP 403, Type Sender ([LS-USERS] get-last-used-nonexistent-key-error:
    # {"Code": "AccessDenied", "Type": "Sender"}, HTTPStatusCode 403).
    return _query_error(403, "AccessDenied", message)


def _account_of(access_key: str) -> str:
    """The account a request acts in: moto maps an access key (an assumed
    role's temporary one included) to the account whose IAM holds it."""
    return iam_models.get_account_id_from(access_key) if access_key else DEFAULT_ACCOUNT_ID


def _missing_role_denial(params: dict, access_key: str) -> tuple[int, str, str] | None:
    """AssumeRole of a role that does not exist: real STS answers AccessDenied
    (HTTP 403), never NoSuchEntity, so an absent role looks like one that does
    not trust the caller. Stock moto issues credentials for any role ARN ("the
    role does not need to exist", moto/sts/models.py assume_role; by design,
    getmoto/moto#6793, where the maintainers note real AWS denies it; LocalStack
    localstack/localstack#8730: "AWS just throws AccessDenied"). Message in the
    shape of real STS denials ("User: <caller> is not authorized to perform:
    sts:AssumeRole on resource: <role arn>", status 403: uswitch/kiam#33,
    Netflix/security_monkey#77). Trust policies are not evaluated here: the
    target template's trust is checked by tests/e2e/test_target_account.py."""
    role_arn = params.get("RoleArn", "")
    parts = role_arn.split(":", 5)
    if len(parts) == 6 and parts[5].startswith("role/"):
        account, name = parts[4], parts[5].rsplit("/", 1)[-1]
        backend = iam_models.iam_backends[account]["aws"]
        if any(role.name == name for role in list(backend.roles.values())):
            return None
    caller = _caller_arn(access_key)
    return _query_error(403, "AccessDenied",
                        f"User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
                        namespace="https://sts.amazonaws.com/doc/2011-06-15/")


class EmulatorApp:
    """WSGI middleware in front of moto's app: logs every AWS call with its
    action, caller access key id and parameters, injects faults, serves the
    control API."""

    def __init__(self, app):  # type: ignore[no-untyped-def]
        self.app = app
        self.lock = threading.Lock()
        # DynamoDB applies each UpdateItem atomically: an ADD is an atomic
        # counter and a condition is checked and written as one step ("Use
        # atomic counter operations in DynamoDB", Amazon DynamoDB Developer
        # Guide, example_dynamodb_Scenario_AtomicCounterOperations_section;
        # "Condition expressions", conditional writes). moto reads and writes
        # the item without a lock, so two threads could both ADD onto the
        # same value (the IAM budget test saw two callers given one slot):
        # the emulator serves DynamoDB calls one at a time.
        self.dynamodb_lock = threading.Lock()
        self.calls: list[dict] = []
        self.faults = Faults()
        self.bucket: TokenBucket | None = None
        self.hooks: list[tuple[str, object]] = []

    def on_next(self, action: str, callback) -> None:  # type: ignore[no-untyped-def]
        """Runs ``callback()`` once, just before the next ``action`` call is served."""
        with self.lock:
            self.hooks.append((action, callback))

    def set_faults(self, settings: dict) -> None:
        """Replaces the fault settings (omitted keys are off) and the token bucket.
        Raises ValueError for a PolicyDenyActions entry without a resource mapping."""
        faults = Faults.from_json(settings)
        with self.lock:
            self.faults = faults
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
        service, access_key, action, params = self.describe(environ, body)
        injected = self.inject(service, action, params, access_key)
        if not injected and service == "sts" and action == "AssumeRole":
            injected = _missing_role_denial(params, access_key)
        entry = {"Service": service, "Action": action, "AccessKeyId": access_key, "Account": _account_of(access_key),
                 "Time": time.time(), "Injected": injected[1] if injected else None, "Params": params}
        with self.lock:
            self.calls.append(entry)
        if not injected:
            self.run_hooks(action)
        if injected:
            status, _, text = injected
            data = text.encode()
            start_response(f"{status} {http.HTTPStatus(status).phrase}",
                           [("Content-Type", "text/xml"), ("Content-Length", str(len(data)))])
            return [data]
        if service == "dynamodb":
            return self.logging_response(entry, environ, start_response)
        return self.app(environ, start_response)

    def logging_response(self, entry: dict, environ, start_response) -> list[bytes]:  # type: ignore[no-untyped-def]
        """Serves a DynamoDB call and adds its HTTP status and JSON answer to
        its log entry (the IAM budget's schedule is in those answers)."""
        def start(status: str, headers, exc_info=None):  # type: ignore[no-untyped-def]
            entry["Status"] = int(status.split(" ", 1)[0])
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        with self.dynamodb_lock:
            chunks = list(self.app(environ, start))
        try:
            entry["Response"] = json.loads(b"".join(chunks) or b"{}")
        except ValueError:
            entry["Response"] = None
        return chunks

    @staticmethod
    def describe(environ, body: bytes) -> tuple[str, str, str, dict]:  # type: ignore[no-untyped-def]
        auth = environ.get("HTTP_AUTHORIZATION", "")
        access_key, service = "", ""
        if "Credential=" in auth:
            scope = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/")
            access_key, service = scope[0], scope[3] if len(scope) > 3 else ""
        params: dict = {}
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target:
            action = target.rsplit(".", 1)[-1]
            if service in ("dynamodb", "states"):
                try:
                    params = json.loads(body or b"{}")
                except ValueError:
                    params = {}
        else:
            form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            action = form.get("Action", [""])[0]
            if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
                params = {key: values[0] for key, values in form.items() if key not in ("Action", "Version")}
        return service, access_key, action, params

    def inject(self, service: str, action: str, params: dict | None = None,
               access_key: str = "") -> tuple[int, str, str] | None:
        """The injected (status, code, body) for this call, or None to serve it."""
        faults = self.faults
        if service not in faults.services:
            return None
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000.0)
        with self.lock:
            if self.bucket is not None and not self.bucket.take():
                return _throttling()
            roll = faults.rng.random()
        if roll < faults.throttle_rate:
            return _throttling()
        if roll < faults.throttle_rate + faults.server_error_rate:
            return _service_unavailable()
        if faults.mfa_required_for_deactivate and action == "DeactivateMFADevice":
            return _access_denied(MFA_REQUIRED_MESSAGE)
        if action in faults.policy_deny_actions:
            return _access_denied(policy_deny_message(action, params or {}, access_key))
        return None

    def control(self, environ, start_response, what: str):  # type: ignore[no-untyped-def]
        method = environ["REQUEST_METHOD"]
        status = "200 OK"
        if what == "faults" and method == "POST":
            try:
                self.set_faults(json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)) or b"{}"))
                payload: object = {"ok": True}
            except ValueError as error:
                status, payload = "400 Bad Request", {"error": str(error)}
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
        text = json.dumps(payload, default=str).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(text)))])
        return [text]
