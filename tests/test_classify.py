"""The dead-letter classifier on a corpus of bad messages, and on good ones."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from leadflow.schemas.classify import DeadLetter, Rejection, classify, payload_text
from leadflow.schemas.events import BaseEvent, DealWon, LeadCreated

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def event(event_type: str = "lead.created", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": "e-1",
        "event_type": event_type,
        "lead_id": "L-1",
        "occurred_at": "2026-03-02T09:00:00Z",
    }
    base.update(
        {
            "lead.created": {"source": "paid_search"},
            "lead.touch": {"campaign_id": "C-1"},
            "lead.scored": {"score": 10},
            "lead.assigned": {"owner_id": "rep-1"},
            "lead.rejected": {"reason": "bad_fit"},
            "opportunity.created": {"opportunity_id": "O-1", "amount": "10.00", "currency": "EUR"},
            "deal.won": {"opportunity_id": "O-1", "amount": "10.00", "currency": "EUR"},
            "deal.lost": {"opportunity_id": "O-1"},
        }.get(event_type, {})
    )
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def enc(value: Any) -> bytes:
    return json.dumps(value).encode()


GOOD = event()
SALE = event("deal.won")

# (label, raw bytes, topic kind, expected reason)
CORPUS: list[tuple[str, bytes | None, str, str]] = [
    ("truncated json", enc(GOOD)[:-5], "marketing", "invalid_json"),
    ("empty bytes", b"", "marketing", "invalid_json"),
    ("tombstone", None, "marketing", "invalid_json"),
    ("non-utf8", b"\xff\xfe\x00garbage", "marketing", "invalid_json"),
    (
        "latin-1 inside json",
        enc(GOOD).replace(b"paid_search", b"paid_s\xe9arch"),
        "marketing",
        "invalid_json",
    ),
    ("plain text", b"hello world", "marketing", "invalid_json"),
    ("trailing comma", b'{"event_id": "e",}', "marketing", "invalid_json"),
    ("lone surrogate", enc(GOOD).replace(b'"L-1"', b'"\\ud800"'), "marketing", "invalid_json"),
    ("array", b"[1, 2]", "marketing", "invalid_event"),
    ("null", b"null", "marketing", "invalid_event"),
    ("number", b"42", "marketing", "invalid_event"),
    ("string", b'"lead.created"', "marketing", "invalid_event"),
    ("missing event_type", enc(event(event_type=...)), "marketing", "invalid_event"),
    ("unknown type", enc(event("lead.exploded")), "marketing", "unknown_event_type"),
    ("type not a string", enc(event(event_type=5)), "marketing", "unknown_event_type"),
    ("empty event id", enc(event(event_id="")), "marketing", "invalid_event"),
    ("empty lead id", enc(event(lead_id="")), "marketing", "invalid_event"),
    ("lead id too long", enc(event(lead_id="x" * 129)), "marketing", "invalid_event"),
    ("numeric lead id", enc(event(lead_id=12)), "marketing", "invalid_event"),
    ("null lead id", enc(event(lead_id=None)), "marketing", "invalid_event"),
    ("NUL in id", enc(event(event_id="a\u0000b")), "marketing", "invalid_event"),
    (
        "naive timestamp",
        enc(event(occurred_at="2026-03-02T09:00:00")),
        "marketing",
        "invalid_event",
    ),
    ("date only", enc(event(occurred_at="2026-03-02")), "marketing", "invalid_event"),
    ("epoch number", enc(event(occurred_at=1767225600)), "marketing", "invalid_event"),
    ("garbage time", enc(event(occurred_at="yesterday")), "marketing", "invalid_event"),
    ("missing time", enc(event(occurred_at=...)), "marketing", "invalid_event"),
    (
        "before 2000",
        enc(event(occurred_at="1999-12-31T23:59:59Z")),
        "marketing",
        "timestamp_out_of_range",
    ),
    (
        "far future",
        enc(event(occurred_at="2026-06-03T00:00:01Z")),
        "marketing",
        "timestamp_out_of_range",
    ),
    (
        "year 9999",
        enc(event(occurred_at="9999-01-01T00:00:00+00:00")),
        "marketing",
        "timestamp_out_of_range",
    ),
    ("missing source", enc(event(source=...)), "marketing", "invalid_event"),
    (
        "touch without campaign",
        enc(event("lead.touch", campaign_id=...)),
        "marketing",
        "invalid_event",
    ),
    ("score as string", enc(event("lead.scored", score="10")), "marketing", "invalid_event"),
    ("score as float", enc(event("lead.scored", score=10.5)), "marketing", "invalid_event"),
    ("negative amount", enc(event("deal.won", amount="-1.00")), "sales", "invalid_event"),
    ("amount NaN", enc(event("deal.won", amount="NaN")), "sales", "invalid_event"),
    ("amount three places", enc(event("deal.won", amount="1.005")), "sales", "invalid_event"),
    ("amount not a number", enc(event("deal.won", amount="ten")), "sales", "invalid_event"),
    ("lower-case currency", enc(event("deal.won", currency="eur")), "sales", "invalid_event"),
    ("four-letter currency", enc(event("deal.won", currency="EURO")), "sales", "invalid_event"),
    ("missing currency", enc(event("opportunity.created", currency=...)), "sales", "invalid_event"),
    ("assigned without owner", enc(event("lead.assigned", owner_id=...)), "sales", "invalid_event"),
    ("rejected without reason", enc(event("lead.rejected", reason=None)), "sales", "invalid_event"),
    ("sales type on marketing", enc(SALE), "marketing", "wrong_topic"),
    ("marketing type on sales", enc(GOOD), "sales", "wrong_topic"),
    (
        "invalid sales type on marketing",
        enc(event("deal.won", amount=...)),
        "marketing",
        "wrong_topic",
    ),
    ("schema_version 2", enc(event(schema_version=2)), "marketing", "unsupported_schema_version"),
    (
        "schema_version 2, other fields v2-shaped",
        enc(event(schema_version=2, source=...)),
        "marketing",
        "unsupported_schema_version",
    ),
    ("schema_version 0", enc(event(schema_version=0)), "marketing", "unsupported_schema_version"),
    ("schema_version as string", enc(event(schema_version="one")), "marketing", "invalid_event"),
    ("oversized", b'{"pad": "' + b"x" * (1024 * 1024) + b'"}', "marketing", "invalid_event"),
]


def test_the_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 30


@pytest.mark.parametrize(("label", "raw", "topic", "reason"), CORPUS, ids=[c[0] for c in CORPUS])
def test_bad_message_gets_its_reason(
    label: str, raw: bytes | None, topic: str, reason: str
) -> None:
    verdict = classify(raw, topic, NOW)
    assert isinstance(verdict, Rejection), f"{label} was accepted"
    assert verdict.reason == reason, verdict.error
    assert verdict.error and "\n" not in verdict.error


def test_good_event_with_nulls_and_extras_is_accepted() -> None:
    value = event(campaign_id=None, email=None, unknown_field={"a": 1}, schema_version=None)
    verdict = classify(enc(value), "marketing", NOW)
    assert isinstance(verdict, LeadCreated)
    assert verdict.campaign_id is None and verdict.source == "paid_search"


def test_offsets_are_converted_and_amounts_are_exact() -> None:
    raw = enc(event("deal.won", occurred_at="2026-03-02T11:00:00+02:00", amount=1234.56))
    verdict = classify(raw, "sales", NOW)
    assert isinstance(verdict, DealWon)
    assert verdict.occurred_at == datetime(2026, 3, 2, 9, tzinfo=UTC)
    assert verdict.amount == Decimal("1234.56")


def test_every_event_type_has_a_valid_form() -> None:
    from leadflow.schemas.vocabulary import EVENT_TYPES, topic_kind_of

    for event_type in EVENT_TYPES:
        verdict = classify(enc(event(event_type)), topic_kind_of(event_type), NOW)
        assert isinstance(verdict, BaseEvent), (event_type, verdict)


def test_dead_letter_payload_is_cut_and_storable() -> None:
    raw = b"\x00\xff" + b"y" * (70 * 1024)
    letter = DeadLetter.of(raw, Rejection("invalid_json", "x"), "t", 1, 2, NOW)
    assert len(letter.payload.encode()) <= 64 * 1024 + 8
    assert "\x00" not in letter.payload
    assert payload_text(None) == ""
