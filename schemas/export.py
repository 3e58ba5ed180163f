"""JSON Schemas (draft 2020-12) that accept exactly what ``classify`` accepts, bar the clock.

One schema per event type and one for all of them (``oneOf`` on ``event_type``). Each field
rule mirrors schemas/events.py; the two rules JSON Schema cannot state exactly are written
in the descriptions: the timestamp window depends on the time an event is read, and an
amount's ``multipleOf: 0.01`` must be evaluated in decimal arithmetic, as the specification
defines it (a validator that divides binary floats refuses amounts such as 0.07).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from leadflow.schemas.classify import MAX_MESSAGE_BYTES
from leadflow.schemas.events import EVENT_MODELS, MAX_AMOUNT, SCORE_MAX, SCORE_MIN
from leadflow.schemas.vocabulary import topic_kind_of

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
COMBINED_FILE = "leadflow-event.schema.json"
# `$` alone also matches before a final newline in some regex engines; (?!\n) rules that out.
END = r"$(?!\n)"
NO_NUL = r"^[^\u0000]*$"
AMOUNT_PATTERN = r"^[0-9]{1,13}(?:\.[0-9]{1,2})?" + END
CURRENCY_PATTERN = r"^[A-Z]{3}" + END
_YEAR = r"[2-9][0-9]{3}"  # 2000-9999: the lower bound of the timestamp window, by date
_LEAP_YEAR = r"(?:[2-9][0-9](?:0[48]|[2468][048]|[13579][26])|(?:[2468][048]|[3579][26])00)"
_MONTH_DAY = (
    r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    r"|02-(?:0[1-9]|1[0-9]|2[0-8]))"
)
_TIME = r"[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?"
_OFFSET = r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
TIMESTAMP_PATTERN = rf"^(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29){_TIME}{_OFFSET}" + END

TIMESTAMP_RULE = (
    "The pipeline accepts an instant from 2000-01-01T00:00:00Z up to 24 hours after the "
    "moment it reads the event, and dead-letters any other as timestamp_out_of_range. "
    "JSON Schema cannot state a bound relative to now, so this schema checks only the "
    "lower bound, on the timestamp's own date (2000-01-01 or later): within one day of "
    "that boundary, a non-zero offset can put the instant on the other side of it."
)
AMOUNT_RULE = (
    "A decimal from 0 to 9999999999999.99 with at most 2 decimal places: a JSON number, "
    'or a string of plain digits such as "1250.00". multipleOf 0.01 is meant exactly: '
    "evaluate it in decimal arithmetic (a validator dividing binary floats refuses 0.07; "
    "send such amounts as strings if yours does). The pipeline reads a JSON number as a "
    "double, so a number of more than 17 significant digits is rounded before it is checked."
)

# Each field: its description and one example value.
FIELD_DOCS: dict[str, tuple[str, Any]] = {
    "event_id": ("Unique per event; a repeated event_id is a duplicate.", "evt-2026-0001"),
    "event_type": ("The type of the event; it decides the other fields.", "lead.created"),
    "lead_id": ("The lead the event belongs to: the join key.", "L-1001"),
    "occurred_at": (
        "When the event happened: RFC 3339 with seconds, at most 9 fraction digits and "
        "an offset (Z or +HH:MM); stored in UTC. " + TIMESTAMP_RULE,
        "2026-03-02T09:30:00Z",
    ),
    "source_system": ("The system that emitted the event.", "hubspot"),
    "schema_version": ("The event schema version: only 1 is supported.", 1),
    "source": ("The channel the lead came from.", "paid_search"),
    "campaign_id": ("The marketing campaign.", "CMP-spring"),
    "email": ("The lead's e-mail address.", "ada@example.com"),
    "company": ("The lead's company.", "Example Ltd"),
    "country": ("The lead's country.", "DE"),
    "channel": ("The channel of the touch or contact.", "email"),
    "score": (
        f"The lead score: an integer from {SCORE_MIN} to {SCORE_MAX} (10.0 counts as 10).",
        42,
    ),
    "owner_id": ("The sales owner.", "rep-7"),
    "reason": ("Why the lead was rejected or the deal lost.", "no_budget"),
    "opportunity_id": ("The sales opportunity.", "OPP-77"),
    "amount": ("The opportunity or deal amount. " + AMOUNT_RULE, "1250.00"),
    "currency": ("ISO 4217 currency code: 3 upper-case letters.", "EUR"),
}


def _string(min_length: int, max_length: int) -> dict[str, Any]:
    return {"type": "string", "minLength": min_length, "maxLength": max_length, "pattern": NO_NUL}


def _rule(name: str, required: bool) -> dict[str, Any]:
    """The value rule of one field, as schemas/events.py validates it."""
    if name in ("event_id", "lead_id"):
        return _string(1, 128)
    if name == "occurred_at":
        return {"type": "string", "format": "date-time", "pattern": TIMESTAMP_PATTERN}
    if name == "schema_version":
        return {"enum": [1, None], "default": 1}
    if name == "score":
        kind = "integer" if required else ["integer", "null"]
        return {"type": kind, "minimum": SCORE_MIN, "maximum": SCORE_MAX}
    if name == "amount":
        number = {"type": "number", "minimum": 0, "maximum": float(MAX_AMOUNT), "multipleOf": 0.01}
        return {"anyOf": [number, {"type": "string", "pattern": AMOUNT_PATTERN}]}
    if name == "currency":
        return {"type": "string", "pattern": CURRENCY_PATTERN}
    if required:
        return _string(1, 256)
    # Optional text: absent, null or "" all mean no value.
    return {"type": ["string", "null"], "maxLength": 256, "pattern": NO_NUL}


def _property(event_type: str, name: str, required: bool) -> dict[str, Any]:
    description, example = FIELD_DOCS[name]
    if name == "event_type":
        return {"const": event_type, "description": description, "examples": [event_type]}
    shown = description if required else description + " Optional."
    return _rule(name, required) | {"description": shown, "examples": [example]}


def _example(event_type: str, required: list[str]) -> dict[str, Any]:
    return {name: _property(event_type, name, True)["examples"][0] for name in required}


def event_schema(event_type: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one event type."""
    fields = EVENT_MODELS[event_type].model_fields
    required = [name for name, info in fields.items() if info.is_required()]
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": f"urn:leadflow:event:{event_type}:1",
        "title": event_type,
        "description": (
            f"leadflow {event_type} event, schema_version 1, published on the "
            f"{topic_kind_of(event_type)} topic as one UTF-8 JSON object of at most "
            f"{MAX_MESSAGE_BYTES} bytes. Fields not listed are ignored."
        ),
        "type": "object",
        "required": required,
        "properties": {name: _property(event_type, name, name in required) for name in fields},
        "additionalProperties": True,
        "examples": [_example(event_type, required)],
    }


def combined_schema() -> dict[str, Any]:
    """One schema for every event type: ``oneOf`` the types, told apart by ``event_type``."""
    definitions = {}
    for event_type in EVENT_MODELS:
        schema = event_schema(event_type)
        del schema["$schema"], schema["$id"]
        definitions[event_type] = schema
    refs = {event_type: f"#/$defs/{event_type}" for event_type in EVENT_MODELS}
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": "urn:leadflow:event:1",
        "title": "leadflow event",
        "description": (
            "Any leadflow event, schema_version 1: event_type chooses the one schema in "
            "$defs that applies. The discriminator keyword is for OpenAPI tools; JSON "
            "Schema validators ignore it and use oneOf."
        ),
        "type": "object",
        "required": ["event_type"],
        "properties": {"event_type": {"enum": list(EVENT_MODELS)}},
        "oneOf": [{"$ref": ref} for ref in refs.values()],
        "discriminator": {"propertyName": "event_type", "mapping": refs},
        "$defs": definitions,
    }


def write_schemas(directory: Path) -> list[Path]:
    """Write ``<event_type>.schema.json`` for every type and the combined schema."""
    directory.mkdir(parents=True, exist_ok=True)
    documents = {f"{t}.schema.json": event_schema(t) for t in EVENT_MODELS}
    documents[COMBINED_FILE] = combined_schema()
    written = []
    for name, schema in documents.items():
        path = directory / name
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
