"""JSON Schema files of every event type, for producers to validate against."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from leadflow.schemas.events import EVENT_MODELS
from leadflow.schemas.vocabulary import topic_kind_of

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
AMOUNT_PATTERN = r"^[0-9]{1,13}(\.[0-9]{1,2})?$"


def event_schema(event_type: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one event type."""
    model = EVENT_MODELS[event_type]
    schema = model.model_json_schema(mode="validation")
    if "amount" in schema["properties"]:
        schema["properties"]["amount"]["anyOf"] = [
            {"type": "number", "minimum": 0},
            {"type": "string", "pattern": AMOUNT_PATTERN},
        ]
    schema["$schema"] = SCHEMA_DIALECT
    schema["$id"] = f"urn:leadflow:event:{event_type}:1"
    schema["title"] = event_type
    schema["description"] = (
        f"leadflow {event_type} event, schema_version 1, "
        f"published on the {topic_kind_of(event_type)} topic."
    )
    return schema


def write_schemas(directory: Path) -> list[Path]:
    """Write ``<event_type>.schema.json`` for every event type into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for event_type in EVENT_MODELS:
        path = directory / f"{event_type}.schema.json"
        path.write_text(json.dumps(event_schema(event_type), indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
