"""The deploy artifacts (`make deploy-artifacts`, what `sam build` ships):
the release profile's binaries, linked for the provided.al2023 runtime.
`make test` builds the two the Makefile's DEPLOY_CHECK_BINS names (`make
deploy-check`) and checks those; the rules and lists are checked for all.

provided.al2023 has glibc 2.34 (Lambda runtimes page: "Amazon Linux 2023 ...
glibc 2.34"), so no function may need a newer symbol version; a host with a
newer glibc links newer symbols (e.g. GLIBC_2.38's __isoc23_strtol) unless the
build pins the target's glibc, which the Makefile's zigbuild does."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAMBDA_DIR = ROOT / "target" / "x86_64-unknown-linux-gnu" / "release"
FUNCTIONS = ["get-username", "get-keys-certificates-mfa-and-credentials", "get-groups-and-policies",
             "delete-keys-certificates-mfa-and-credentials", "delete-groups-and-policies", "delete-iam-user-and-verify",
             "quarantine-user", "offboard-batch"]
RUNTIME_GLIBC = (2, 34)
sys.path.insert(0, str(ROOT / "tests" / "emulator"))
from lambda_host import ZIP_BUDGET_BYTES  # noqa: E402

def glibc_versions(binary: Path) -> set[tuple[int, ...]]:
    symbols = subprocess.run(["objdump", "-T", str(binary)], capture_output=True, text=True, check=True).stdout
    return {tuple(int(part) for part in version.split(".")) for version in re.findall(r"GLIBC_(\d+(?:\.\d+)+)", symbols)}


def test_the_makefile_pins_the_runtimes_glibc():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^GLIBC := 2\.34$", makefile, re.M)
    assert "zigbuild --release --locked --target $(LAMBDA_TARGET).$(GLIBC)" in makefile


def makefile_list(name: str) -> list[str]:
    """A `NAME := a b \\ c` variable of the Makefile, continuation lines joined."""
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    return re.search(rf"^{name} := (.*)$", text, re.M)[1].split()


def test_every_template_function_is_built_and_shipped():
    """`sam build` calls build-<LogicalId> (BuildMethod: makefile) for each
    function of infra/template.yaml: each needs its rule, its binary in
    LAMBDA_BINS (deploy-artifacts) and in BINS (the local stack's build)."""
    from cfnlint.decode import decode

    template, matches = decode(str(ROOT / "infra" / "template.yaml"))
    assert not matches, matches
    functions = {k for k, v in template["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}
    assert all(template["Resources"][f]["Metadata"]["BuildMethod"] == "makefile" for f in functions)
    rules = dict(re.findall(r"^\$\(eval \$\(call lambda_build,(\w+),([\w-]+)\)\)$", (ROOT / "Makefile").read_text(), re.M))
    assert set(rules) == functions
    assert sorted(rules.values()) == sorted(FUNCTIONS) == sorted(makefile_list("LAMBDA_BINS"))
    assert set(FUNCTIONS) <= set(makefile_list("BINS"))
    # Each rule ships the binary the local stack runs for that stage.
    from lambda_host import FUNCTIONS as STAGE_BINARIES

    assert rules == {f"{stage}Function": binary for stage, binary in STAGE_BINARIES.items()}


def test_the_deploy_check_covers_the_largest_iam_function_and_the_s3_function():
    """QuarantineUser's zip is the largest of the seven IAM stage functions
    (2,864,029 bytes against GetUsername's 2,814,908, the next:
    bench/results/tls.json); `make bench` fails if another one outgrows the
    budget. The batch function is the only one with the S3 client."""
    checked = makefile_list("DEPLOY_CHECK_BINS")
    assert set(checked) <= set(FUNCTIONS) == set(ZIP_BUDGET_BYTES)
    assert set(checked) == {"quarantine-user", "offboard-batch"}


@pytest.mark.parametrize("function", makefile_list("DEPLOY_CHECK_BINS"))
def test_each_function_needs_at_most_the_runtimes_glibc_and_fits_the_zip_budget(function, tmp_path):
    binary = LAMBDA_DIR / function
    assert binary.exists(), "run `make deploy-check` (make test does)"
    versions = glibc_versions(binary)
    assert versions, "a dynamically linked glibc binary names its symbol versions"
    assert max(versions) <= RUNTIME_GLIBC, f"{function} needs GLIBC_{'.'.join(map(str, max(versions)))}"
    archive = tmp_path / "function.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.write(binary, "bootstrap")
    assert archive.stat().st_size <= ZIP_BUDGET_BYTES[function], f"{function}: {archive.stat().st_size} bytes zipped"
    assert "debug" not in subprocess.run(["readelf", "-S", str(binary)], capture_output=True, text=True).stdout, "stripped"

