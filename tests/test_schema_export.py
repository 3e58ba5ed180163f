"""The exported JSON Schemas accept the README's examples and reject incomplete messages."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from leadflow.schemas.classify import classify
from leadflow.schemas.events import BaseEvent
from leadflow.schemas.vocabulary import EVENT_TYPES, topic_kind_of

README = Path(__file__).parent.parent / "README.md"


def readme_examples() -> list[dict[str, Any]]:
    blocks = re.findall(r"```json\n(.*?)```", README.read_text(), flags=re.S)
    examples = [json.loads(block) for block in blocks]
    return [e for e in examples if isinstance(e, dict) and "event_type" in e]


@pytest.fixture(scope="module")
def schema_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("schemas")
    done = subprocess.run(
        [sys.executable, "-m", "leadflow", "schemas", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return out


def load(schema_dir: Path, event_type: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((schema_dir / f"{event_type}.schema.json").read_text())
    return schema


def test_readme_has_one_example_of_each_type() -> None:
    assert sorted(e["event_type"] for e in readme_examples()) == sorted(EVENT_TYPES)


@pytest.mark.parametrize("example", readme_examples(), ids=lambda e: e["event_type"])
def test_schema_accepts_readme_example_and_so_does_the_pipeline(
    schema_dir: Path, example: dict[str, Any]
) -> None:
    schema = load(schema_dir, example["event_type"])
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(example, schema)
    verdict = classify(json.dumps(example).encode(), topic_kind_of(example["event_type"]))
    assert isinstance(verdict, BaseEvent), verdict


@pytest.mark.parametrize("example", readme_examples(), ids=lambda e: e["event_type"])
def test_schema_rejects_a_missing_required_field(schema_dir: Path, example: dict[str, Any]) -> None:
    schema = load(schema_dir, example["event_type"])
    for field in schema["required"]:
        broken = {k: v for k, v in example.items() if k != field}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)


def test_schema_rejects_bad_amount_and_currency(schema_dir: Path) -> None:
    schema = load(schema_dir, "deal.won")
    won = next(e for e in readme_examples() if e["event_type"] == "deal.won")
    for bad in ({"amount": "-1"}, {"amount": "1.234"}, {"amount": -5}, {"currency": "eur"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**won, **bad}, schema)
