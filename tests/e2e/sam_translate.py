"""infra/template.yaml as CloudFormation deploys it: translated by the AWS SAM
translator (PyPI aws-sam-translator, the library `sam deploy` and the
CloudFormation AWS::Serverless transform run), offline.

cfn-lint 1.x no longer translates SAM templates (it validates them against
SAM's schema), so this does what cfn-lint 0.x did before linting one
(cfnlint/template/transforms/_sam.py in cfn-lint 0.x): local CodeUri and
DefinitionUri replaced by placeholder S3 locations, an empty managed policy
map (the template names no managed policy: nothing to look up in IAM), and a
placeholder region and account for the pseudo parameters."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"
REGION = "us-east-1"
ACCOUNT = "123456789012"
PLACEHOLDER_BUCKET = "placeholder-artifacts"


def with_placeholder_artifacts(template: dict) -> dict:
    """`sam build`/`sam package` replace local paths by S3 locations before
    the transform; the translator accepts only those."""
    template = copy.deepcopy(template)
    for logical_id, resource in template.get("Resources", {}).items():
        properties = resource.get("Properties", {})
        if resource.get("Type") == "AWS::Serverless::Function" and isinstance(properties.get("CodeUri"), str):
            properties["CodeUri"] = f"s3://{PLACEHOLDER_BUCKET}/{logical_id}.zip"
        if resource.get("Type") == "AWS::Serverless::StateMachine" and isinstance(properties.get("DefinitionUri"), str):
            properties["DefinitionUri"] = {"Bucket": PLACEHOLDER_BUCKET, "Key": f"{logical_id}.asl.json"}
    return template


def translated(template: dict | None = None) -> dict:
    """The template after the AWS::Serverless-2016-10-31 transform."""
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    if template is None:
        template, matches = decode(str(TEMPLATE))
        assert not matches, matches
    saved = {k: os.environ.get(k) for k in ("AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    # The translator reads the region (ArnGenerator, AWS::Region) from a boto3
    # session; placeholder credentials so that nothing is ever looked up.
    os.environ.update({"AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "placeholder",
                       "AWS_SECRET_ACCESS_KEY": "placeholder"})
    try:
        session = boto3.session.Session(region_name=REGION)
        translator = Translator(managed_policy_map={}, sam_parser=Parser(), boto_session=session)
        output = translator.translate(sam_template=json.loads(json.dumps(with_placeholder_artifacts(template))),
                                      parameter_values={"AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
                                                        "AWS::Partition": "aws"},
                                      get_managed_policy_map=lambda: {})
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return json.loads(json.dumps(output))
