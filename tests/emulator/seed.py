"""Seeds users on the emulator with every credential type IAM has.

Shapes follow real IAM (sources beside each); the seeding itself takes one
shortcut real IAM does not allow, noted at ``enable_mfa_device`` below.
[API] = IAM API Reference, https://docs.aws.amazon.com/IAM/latest/APIReference/
(same text in botocore's botocore/data/iam/2010-05-08/service-2.json).
"""

from __future__ import annotations

import datetime
import json

ACCOUNT = "123456789012"


def self_signed_certificate(common_name: str) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def ssh_public_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def passkey_serial(user_name: str, n: int = 1, account: str = ACCOUNT) -> str:
    # A passkey / FIDO security key is listed by its ARN, arn:aws:iam::<account>:u2f/user/<user>/<name>-<id>:
    # IAM User Guide, "Use ListMfaDevices with a CLI"
    # (https://docs.aws.amazon.com/IAM/latest/UserGuide/example_iam_ListMfaDevices_section.html):
    # "SerialNumber": "arn:aws:iam::123456789012:u2f/user/Bob/fidosecuritykey1-7XNL7NFNLZ123456789EXAMPLE";
    # [API] GetMFADevice: "For this API, we only accept FIDO security key ARNs." Real ids seen in the wild are
    # 26 upper-case base32 characters ("...:u2f/user/<user>/<user>-passkey-NSSQURFMVVHQLMHYNZQJFH4EHM");
    # the id here is a fixed 26-letter one.
    return f"arn:aws:iam::{account}:u2f/user/{user_name}/passkey-{n}-ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def hardware_serial(n: int = 1) -> str:
    # A hardware TOTP token is listed by its plain serial number: same IAM User Guide example,
    # "SerialNumber": "GAKT12345678" (also docs/DESIGN.md's example serial).
    return f"GAKT{n:08d}"


def seed_user(
    iam,
    name: str,
    *,
    path: str = "/",
    access_keys: int = 2,
    ssh_keys: int = 1,
    certificates: int = 1,
    services: tuple[str, ...] = ("codecommit.amazonaws.com", "bedrock.amazonaws.com"),
    credentials_per_service: int = 1,
    virtual_devices: int = 1,
    passkeys: int = 1,
    hardware_tokens: int = 1,
    groups: int = 1,
    inline_policies: int = 1,
    attached_policies: int = 1,
    tags: dict[str, str] | None = None,
    boundary: bool = True,
    login_profile: bool = True,
) -> dict:
    """Creates ``name`` holding the given number of each item; returns what it made."""
    # [API] CreateUser accepts Path and Tags; GetUser returns both (the emulator compares
    # user names and tag keys without case, as IAM does: see emulator.py).
    created = iam.create_user(
        UserName=name,
        Path=path,
        Tags=[{"Key": k, "Value": v} for k, v in (tags or {"team": "payments", "cost-center": "42"}).items()],
    )
    made: dict = {"UserName": name}
    # The account the client acts in (a member account's client seeds there).
    account = created["User"]["Arn"].split(":")[4]
    if boundary:
        arn = ensure_policy(iam, "OffboardDemoBoundary", account)
        iam.put_user_permissions_boundary(UserName=name, PermissionsBoundary=arn)
        made["Boundary"] = arn
    if login_profile:
        iam.create_login_profile(UserName=name, Password="Correct-Horse-Battery-9", PasswordResetRequired=False)
    made["AccessKeys"] = [iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"] for _ in range(access_keys)]
    made["SSHPublicKeys"] = [
        iam.upload_ssh_public_key(UserName=name, SSHPublicKeyBody=ssh_public_key())["SSHPublicKey"]["SSHPublicKeyId"]
        for _ in range(ssh_keys)
    ]
    made["Certificates"] = [
        iam.upload_signing_certificate(UserName=name, CertificateBody=self_signed_certificate(f"{name}-{i}"))[
            "Certificate"
        ]["CertificateId"]
        for i in range(certificates)
    ]
    # Default services: CodeCommit (Git credentials) and Amazon Bedrock (long-term API keys), both
    # service-specific credentials ([API] CreateServiceSpecificCredential; IAM User Guide
    # id_credentials_bedrock.html); at most 2 per service per user, so credentials_per_service <= 2.
    made["ServiceCredentials"] = [
        iam.create_service_specific_credential(UserName=name, ServiceName=service)["ServiceSpecificCredential"][
            "ServiceSpecificCredentialId"
        ]
        for service in services
        for _ in range(credentials_per_service)
    ]
    serials = []
    # [API] CreateVirtualMFADevice / DeleteVirtualMFADevice: "For virtual MFA devices, the serial number
    # is the same as the ARN" (arn:aws:iam::<account>:mfa/<name>).
    for i in range(virtual_devices):
        device = iam.create_virtual_mfa_device(VirtualMFADeviceName=f"{name}-phone-{i}")["VirtualMFADevice"]
        serials.append(device["SerialNumber"])
    serials += [passkey_serial(name, i + 1, account) for i in range(passkeys)]
    serials += [hardware_serial(i + 1) for i in range(hardware_tokens)]
    # SEEDING SHORTCUT, not real IAM behaviour: real EnableMFADevice takes two TOTP codes and serves
    # virtual and hardware TOTP devices; a passkey / security key is registered in the console (WebAuthn),
    # not through this API. moto accepts any serial and codes, which is how the seed attaches all three
    # kinds. What tests rely on is the result, the devices ListMFADevices then returns, which is real.
    for serial in serials:
        iam.enable_mfa_device(UserName=name, SerialNumber=serial, AuthenticationCode1="123456", AuthenticationCode2="654321")
    made["MFADevices"] = serials
    made["Groups"] = []
    for i in range(groups):
        group = f"offboard-demo-group-{i}"
        try:
            iam.create_group(GroupName=group)
        except iam.exceptions.EntityAlreadyExistsException:
            pass
        iam.add_user_to_group(GroupName=group, UserName=name)
        made["Groups"].append(group)
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::reports/*"}],
    }
    made["InlinePolicies"] = []
    for i in range(inline_policies):
        iam.put_user_policy(UserName=name, PolicyName=f"reports-read-{i}", PolicyDocument=json.dumps(document))
        made["InlinePolicies"].append(f"reports-read-{i}")
    made["AttachedPolicies"] = []
    for i in range(attached_policies):
        arn = ensure_policy(iam, f"offboard-demo-managed-{i}", account)
        iam.attach_user_policy(UserName=name, PolicyArn=arn)
        made["AttachedPolicies"].append(arn)
    return made


def ensure_policy(iam, name: str, account: str = ACCOUNT) -> str:
    arn = f"arn:aws:iam::{account}:policy/{name}"
    try:
        iam.get_policy(PolicyArn=arn)
    except iam.exceptions.NoSuchEntityException:
        document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"}]}
        iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(document))
    return arn


def leftovers(iam, name: str) -> dict:
    """What still refers to the user (empty when offboarding is complete)."""
    found: dict = {}
    try:
        iam.get_user(UserName=name)
        found["User"] = name
    except iam.exceptions.NoSuchEntityException:
        pass
    # [API] ListVirtualMFADevices: "If you do not specify an AssignmentStatus, the operation defaults to
    # Any, which lists both assigned and unassigned virtual MFA devices"; paginated (Marker/MaxItems).
    virtual = [
        d["SerialNumber"]
        for page in iam.get_paginator("list_virtual_mfa_devices").paginate()
        for d in page["VirtualMFADevices"]
        if f":mfa/{name}-phone-" in d["SerialNumber"]
    ]
    if virtual:
        found["VirtualMFADevices"] = virtual
    return found
