"""The state machines are written once, as YAML (statemachine/src/*.asl.yaml),
and statemachine/render.py renders them to the JSON that SAM deploys
(statemachine/*.asl.json). Each committed JSON must be exactly its render: a
hand edit of the JSON, or a YAML edit not rendered (`make asl`), fails here."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
STATEMACHINE = ROOT / "statemachine"
RENDER = STATEMACHINE / "render.py"
MACHINES = ["offboard", "offboard-batch"]


def renderer():
    spec = importlib.util.spec_from_file_location("asl_render", RENDER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def source(name: str) -> Path:
    return STATEMACHINE / "src" / f"{name}.asl.yaml"


def committed(name: str) -> Path:
    return STATEMACHINE / f"{name}.asl.json"


def all_states(states: dict):
    for name, state in states.items():
        yield name, state
        if state["Type"] == "Map":
            yield from all_states(state["ItemProcessor"]["States"])


def test_every_source_has_its_committed_definition_and_no_definition_lacks_a_source():
    assert sorted(path.name for path in renderer().sources()) == sorted(f"{name}.asl.yaml" for name in MACHINES)
    assert sorted(path.name for path in STATEMACHINE.glob("*.asl.json")) == sorted(f"{name}.asl.json" for name in MACHINES)


@pytest.mark.parametrize("name", MACHINES)
def test_each_committed_definition_is_its_sources_render(name):
    assert committed(name).read_text(encoding="utf-8") == renderer().render(source(name)), (
        f"statemachine/{name}.asl.json is not the render of statemachine/src/{name}.asl.yaml: "
        "edit the YAML, never the JSON, and run `make asl`")
    assert not [key for key in json.loads(committed(name).read_text()) if key.startswith("x-")], "helper keys dropped"


def test_check_names_a_hand_edited_definition_and_a_source_not_rendered(tmp_path):
    copy = tmp_path / "statemachine"
    shutil.copytree(STATEMACHINE, copy, ignore=shutil.ignore_patterns("__pycache__"))

    def run(*args):
        return subprocess.run([sys.executable, str(copy / "render.py"), *args], capture_output=True, text=True)

    assert run("--check").returncode == 0
    definition = copy / "offboard.asl.json"
    definition.write_text(definition.read_text().replace('"MaxAttempts": 3,', '"MaxAttempts": 4,', 1))
    result = run("--check")
    assert result.returncode == 1 and "statemachine/offboard.asl.json" in result.stderr, result.stderr
    assert "offboard-batch.asl.json" not in result.stderr
    assert run().returncode == 0 and run("--check").returncode == 0, "a render restores it"
    yaml_source = copy / "src" / "offboard-batch.asl.yaml"
    yaml_source.write_text(yaml_source.read_text().replace("MaxAttempts: 3", "MaxAttempts: 4", 1))
    result = run("--check")
    assert result.returncode == 1 and "statemachine/offboard-batch.asl.json" in result.stderr, result.stderr
    assert "statemachine/offboard.asl.json" not in result.stderr


@pytest.mark.parametrize("name", MACHINES)
def test_each_shared_retrier_list_and_catcher_is_written_once(name):
    """Every Lambda task's retriers (and, in the offboarding machine, every
    record and event task's retriers and each shared catcher) are one YAML
    anchor, used by alias: safe_load gives the very same object everywhere."""
    document = yaml.safe_load(source(name).read_text(encoding="utf-8"))
    states = dict(all_states(document["States"]))
    lambda_tasks = [s for s in states.values() if s["Type"] == "Task" and s["Resource"].startswith("${")]
    assert lambda_tasks and all(s["Retry"] is document["x-lambda-retry"] for s in lambda_tasks)
    if name != "offboard":
        return
    sdk_tasks = [s for s in states.values() if s.get("Resource") in
                 ("arn:aws:states:::aws-sdk:s3:putObject", "arn:aws:states:::aws-sdk:s3:listObjectsV2",
                  "arn:aws:states:::events:putEvents")]
    assert len(sdk_tasks) == 11 and all(s["Retry"] is document["x-sdk-retry"] for s in sdk_tasks)
    shared = list(document["x-catch"].values())
    catchers = [c for s in states.values() for c in s.get("Catch", [])]
    for catcher in catchers:
        assert catcher not in shared or any(catcher is c for c in shared), f"a copy of a shared catcher: {catcher}"
    assert all(any(c is catcher for c in catchers) for catcher in shared), "every shared catcher is used"
