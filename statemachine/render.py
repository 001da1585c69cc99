#!/usr/bin/env python3
"""Render the state machines' YAML sources to the JSON that SAM deploys.

Each statemachine/src/<name>.asl.yaml becomes statemachine/<name>.asl.json.
The YAML is where the definitions are written: anchors hold each retrier list
and catcher once (top-level keys beginning with "x-" only hold anchors and are
dropped here), and `#` comments explain the states. The JSON stays committed
because it is what SAM deploys: SAM uploads a DefinitionUri file as it is, and
a definition read that way does not expand YAML aliases.

The JSON is written deterministically (two-space indent, keys in the source's
order, one trailing newline), so rendering unchanged sources changes nothing.

    python3 statemachine/render.py            # write every JSON
    python3 statemachine/render.py --check    # exit 1 naming each JSON that differs from its render

Needs PyYAML only (safe_load): .venv has it, as cfn-lint and parliament depend on it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "src"
HELPER_PREFIX = "x-"


def target_of(source: Path) -> Path:
    """statemachine/src/<name>.asl.yaml -> statemachine/<name>.asl.json"""
    return HERE / (source.name.removesuffix(".asl.yaml") + ".asl.json")


def sources() -> list[Path]:
    return sorted(SOURCES.glob("*.asl.yaml"))


def check_json_only(value, where: str) -> None:
    """Refuse what YAML can load but JSON would change silently: a key that is
    not a string (an unquoted `on`, `null` or `1`), a date, a set."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where}: key {key!r} is not a string; quote it")
            check_json_only(item, f"{where}/{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_json_only(item, f"{where}/{index}")
    elif value is not None and not isinstance(value, (str, bool, int, float)):
        raise ValueError(f"{where}: {value!r} ({type(value).__name__}) has no JSON form; quote it")


def render(source: Path) -> str:
    document = yaml.safe_load(source.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise ValueError(f"{source}: not a mapping")
    definition = {key: value for key, value in document.items() if not str(key).startswith(HELPER_PREFIX)}
    check_json_only(definition, source.name)
    return json.dumps(definition, indent=2, ensure_ascii=False) + "\n"


def relative(path: Path) -> str:
    try:
        return str(path.relative_to(HERE.parent))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a committed JSON differs from its render")
    args = parser.parse_args(argv)
    found = sources()
    if not found:
        print(f"no {relative(SOURCES)}/*.asl.yaml", file=sys.stderr)
        return 1
    stale = []
    for source in found:
        target, rendered = target_of(source), render(source)
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if args.check:
            if current != rendered:
                stale.append(target)
                print(f"{relative(target)} differs from its render of {relative(source)}: "
                      "edit the YAML, then run `make asl`", file=sys.stderr)
        elif current != rendered:
            target.write_text(rendered, encoding="utf-8")
            print(f"rendered {relative(source)} -> {relative(target)}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
