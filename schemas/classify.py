"""Raw message bytes plus the topic kind in; a valid event or a dead-letter verdict out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from leadflow.schemas.events import EVENT_ADAPTER, BaseEvent
from leadflow.schemas.vocabulary import topic_kind_of

MAX_MESSAGE_BYTES = 1024 * 1024
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_TOLERANCE = timedelta(hours=24)


class Undecodable(bytes):
    """A consumed value standing for a record batch that could not be decoded.

    Its bytes are the readable ``error``, kept as the dead letter's payload; no producer can
    send one, since only the consumer's decoding guard (a patch of the fetcher) makes it.
    """

    error: str

    def __new__(cls, error: str) -> Undecodable:
        value = super().__new__(cls, error.encode())
        value.error = error
        return value


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message goes to the dead letters: a contract reason code and a readable sentence."""

    reason: str
    error: str


def classify(
    raw: bytes | None, topic_kind: str, now: datetime | None = None
) -> BaseEvent | Rejection:
    """Decide one message's fate; never raises on any input."""
    if isinstance(raw, Undecodable):
        return Rejection("invalid_json", raw.error)
    if raw is None or raw == b"":
        return Rejection("invalid_json", "the message has no value (empty or tombstone)")
    if len(raw) > MAX_MESSAGE_BYTES:
        return Rejection(
            "invalid_event",
            f"the message is {len(raw)} bytes, over the {MAX_MESSAGE_BYTES}-byte limit",
        )
    try:
        event: BaseEvent = EVENT_ADAPTER.validate_json(raw)
    except ValidationError as exc:
        return _explain(exc, topic_kind)
    except Exception as exc:
        return Rejection("invalid_event", f"the message could not be validated: {exc}")
    return _check_accepted(event, topic_kind, now or datetime.now(UTC))


def _check_accepted(event: BaseEvent, topic_kind: str, now: datetime) -> BaseEvent | Rejection:
    event_type: str = event.event_type  # type: ignore[attr-defined]
    expected = topic_kind_of(event_type)
    if expected != topic_kind:
        return _wrong_topic(event_type, topic_kind)
    if event.occurred_at < EARLIEST or event.occurred_at > now + FUTURE_TOLERANCE:
        return Rejection(
            "timestamp_out_of_range",
            f"occurred_at {event.occurred_at.isoformat()} is before 2000-01-01 "
            "or more than 24 hours in the future",
        )
    return event


def _wrong_topic(event_type: str, topic_kind: str) -> Rejection:
    return Rejection(
        "wrong_topic",
        f"{event_type} is a {topic_kind_of(event_type)} event "
        f"but arrived on the {topic_kind} topic",
    )


def _explain(exc: ValidationError, topic_kind: str) -> Rejection:
    errors = exc.errors(include_url=False)
    first = errors[0]
    kind = first["type"]
    if kind == "json_invalid":
        detail = first.get("ctx", {}).get("error", "malformed JSON")
        return Rejection("invalid_json", f"the message is not UTF-8 JSON: {detail}")
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return Rejection(
            "invalid_event", f"expected a JSON object, got {_json_kind(first.get('input'))}"
        )
    if kind == "union_tag_not_found":
        return Rejection("invalid_event", "the field event_type is missing")
    if kind == "union_tag_invalid":
        tag = first.get("ctx", {}).get("tag", "?")
        return Rejection("unknown_event_type", f"unknown event_type {tag}")
    event_type = str(first["loc"][0])
    if topic_kind_of(event_type) != topic_kind:
        return _wrong_topic(event_type, topic_kind)
    for err in errors:
        value = err.get("input")
        if err["loc"][1:] == ("schema_version",) and isinstance(value, int) and value is not True:
            return Rejection(
                "unsupported_schema_version", f"schema_version {value} is not supported (only 1)"
            )
    return Rejection("invalid_event", f"{event_type}: " + "; ".join(_describe(e) for e in errors))


def _describe(err: Any) -> str:
    field = ".".join(str(part) for part in err["loc"][1:]) or "event"
    message = err["msg"]
    if err["type"] == "missing":
        return f"{field} is required"
    return f"{field}: {message} (got {_short(err.get('input'))})"


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return type(value).__name__


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


PAYLOAD_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One rejected message as the ``dead_letters`` table and topic hold it (contract, 4)."""

    topic: str
    partition: int
    offset: int
    reason: str
    error: str
    payload: str
    received_at: datetime

    @classmethod
    def of(
        cls,
        raw: bytes | None,
        rejection: Rejection,
        topic: str,
        partition: int,
        offset: int,
        received_at: datetime,
    ) -> DeadLetter:
        return cls(
            topic,
            partition,
            offset,
            rejection.reason,
            rejection.error,
            payload_text(raw),
            received_at,
        )


def payload_text(raw: bytes | None) -> str:
    """The raw message as text, cut at 64 KiB, with bytes no SQL text column can hold replaced."""
    if raw is None:
        return ""
    return raw[:PAYLOAD_LIMIT].decode("utf-8", errors="replace").replace("\x00", "\ufffd")
