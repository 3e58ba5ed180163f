"""Issue 18, item 4: the exported JSON Schemas accept exactly what the validator accepts.

Hypothesis builds events of every type, valid and near-valid field by field, and checks the
per-type schema, the combined schema and ``classify`` against each other. The schemas are
evaluated as the specification defines them: numbers as exact decimals (``multipleOf``) and
10.0 as an integer. The one rule handled apart is the documented timestamp window: the
schema checks the timestamp's own date from 2000-01-01, never the pipeline's now+24h.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from functools import cache
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadflow.schemas.classify import classify
from leadflow.schemas.events import EVENT_MODELS, BaseEvent
from leadflow.schemas.export import combined_schema, event_schema
from leadflow.schemas.vocabulary import topic_kind_of

NOW = datetime.now(UTC)


def _spec_integer(_checker: Any, instance: Any) -> bool:
    if isinstance(instance, bool):
        return False
    if isinstance(instance, int):
        return True
    return (
        isinstance(instance, Decimal)
        and instance.is_finite()
        and instance == instance.to_integral_value()
    )


ExactValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _spec_integer),
)


@cache
def validator_for(event_type: str | None) -> Any:
    schema = combined_schema() if event_type is None else event_schema(event_type)
    exact = json.loads(json.dumps(schema), parse_float=Decimal)
    ExactValidator.check_schema(exact)
    return ExactValidator(exact)


# -- values, valid and near-valid ------------------------------------------------------------

ODD = st.sampled_from([None, 0, 1, True, False, [], {}, "", " ", "\x00", 1.5])


def texts(max_size: int) -> st.SearchStrategy[Any]:
    edges = st.sampled_from(["x" * max_size, "x" * (max_size + 1), "é" * max_size, "a\x00b"])
    return st.one_of(st.text(max_size=12), edges, ODD)


def stamps() -> st.SearchStrategy[str]:
    def render(at: datetime, minutes: int, digits: int, sep: str, zulu: str, colon: bool) -> str:
        offset = timedelta(minutes=minutes)
        local = (at + offset).replace(tzinfo=None)
        text = local.strftime(f"%Y-%m-%d{sep}%H:%M:%S")
        if digits:
            text += "." + f"{local.microsecond:06d}1234"[:digits]
        if minutes == 0 and zulu:
            return text + zulu
        sign, whole = ("-" if minutes < 0 else "+"), abs(minutes)
        return text + f"{sign}{whole // 60:02d}{':' if colon else ''}{whole % 60:02d}"

    instants = st.one_of(
        st.datetimes(datetime(1999, 12, 30), datetime(2000, 1, 2)),
        st.datetimes(datetime(1990, 1, 1), datetime(2035, 1, 1)),
        st.datetimes(
            (NOW - timedelta(days=1)).replace(tzinfo=None),
            (NOW + timedelta(days=3)).replace(tzinfo=None),
        ),
    ).map(lambda d: d.replace(tzinfo=UTC))
    return st.builds(
        render,
        instants,
        st.one_of(st.just(0), st.integers(-24 * 60 + 1, 24 * 60 - 1)),
        st.sampled_from([0, 0, 3, 6, 9, 10]),
        st.sampled_from(["T", "T", "t", " ", "_"]),
        st.sampled_from(["Z", "z", ""]),
        st.sampled_from([True, True, True, False]),
    )


BAD_STAMPS = st.sampled_from(
    [
        "2026-02-29T00:00:00Z",
        "2024-02-29T00:00:00Z",
        "2000-02-29T00:00:00Z",
        "2100-02-29T00:00:00Z",
        "2400-02-29T10:00:00+01:00",
        "2026-04-31T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-00-10T00:00:00Z",
        "2026-01-00T00:00:00Z",
        "2026-01-01T24:00:00Z",
        "2026-01-01T23:60:00Z",
        "2026-01-01T23:59:60Z",
        "2026-01-01T00:00:00+24:00",
        "2026-01-01T00:00:00+01:60",
        "2026-01-01T00:00:00.Z",
        "2026-01-01T00:00Z",
        "2026-01-01T00:00:00",
        "2026-01-01T00:00:00Z\n",
        "2026-01-01",
        "1767225600",
    ]
)


def amounts() -> st.SearchStrategy[Any]:
    decimals = st.decimals(
        min_value=Decimal("-10"),
        max_value=Decimal("10000000000000.5"),
        places=3,
        allow_nan=False,
        allow_infinity=False,
    ) | st.decimals(min_value=0, max_value=Decimal("9999999999999.99"), places=2)
    edges = st.sampled_from(
        ["9999999999999.99", "10000000000000", "10000000000000.01", "0.001", "0.01", "0"]
    ).map(Decimal)
    decimals = decimals | edges
    odd = st.sampled_from(
        ["1e2", " 1", "+1", "-0", ".5", "5.", "1.500", "00000000000001", "NaN", "1_0", "1.5\n"]
    )
    return st.one_of(
        decimals.map(str),
        decimals.map(lambda d: float(d) if d % 1 else int(d)),
        st.floats(min_value=-1, max_value=1e16, allow_nan=False),
        odd,
        ODD,
    )


def scores() -> st.SearchStrategy[Any]:
    bound = st.sampled_from([-(2**31), 2**31 - 1, -(2**31) - 1, 2**31])
    ints = st.integers(-(2**32), 2**32) | bound
    return st.one_of(ints, ints.map(float), st.floats(allow_nan=False, allow_infinity=False), ODD)


def value_of(name: str) -> st.SearchStrategy[Any]:
    if name in ("event_id", "lead_id"):
        return texts(128)
    if name == "occurred_at":
        return st.one_of(stamps(), stamps(), BAD_STAMPS, ODD)
    if name == "schema_version":
        return st.sampled_from([1, 1.0, None, 2, 0, True, False, "1"])
    if name == "score":
        return scores()
    if name == "amount":
        return amounts()
    if name == "currency":
        return st.one_of(st.from_regex(r"[A-Z]{3}", fullmatch=True), st.text(max_size=4), ODD)
    return texts(256)


@st.composite
def events(draw: st.DrawFn) -> tuple[str | None, Any]:
    """(the event type the body claims, a JSON body): one type's fields, valid but for a few.

    Only an otherwise valid event shows a rule the schema and the validator disagree on,
    so at most two fields (or the type) are drawn from the near-valid values.
    """
    event_type = draw(st.sampled_from(sorted(EVENT_MODELS)))
    fields = EVENT_MODELS[event_type].model_fields
    names = [name for name in fields if name != "event_type"]
    odd = draw(st.sets(st.sampled_from(names), max_size=2))
    body: dict[str, Any] = {}
    for name in names:
        if fields[name].is_required() or draw(st.booleans()):
            body[name] = draw(value_of(name) if name in odd else valid_value(name))
        elif name in odd and draw(st.booleans()):
            body[name] = draw(value_of(name))
    if odd and draw(st.integers(0, 9)) == 0:  # a required field missing
        body.pop(draw(st.sampled_from(sorted(body))), None)
    claimed = draw(st.sampled_from([event_type] * 12 + ["lead.teleported", None]))
    if claimed is not None:
        body["event_type"] = claimed
    if draw(st.integers(0, 9)) == 0:
        body["unknown_field"] = draw(ODD)
    if draw(st.integers(0, 49)) == 0:
        return None, draw(st.sampled_from([[body], "text", 3, None]))
    return (claimed if claimed in EVENT_MODELS else None), body


def valid_value(name: str) -> st.SearchStrategy[Any]:
    """A value the validator accepts for ``name`` (one that is true at NOW)."""
    fixed = {
        "event_id": st.text(min_size=1, max_size=20).filter(lambda t: "\x00" not in t),
        "lead_id": st.sampled_from(["L-1", "L-2", "lead/ü"]),
        "occurred_at": st.sampled_from(["2026-03-02T09:30:00Z", "2024-02-29T23:59:59.5-05:00"]),
        "schema_version": st.sampled_from([1, None]),
        "score": st.integers(-100, 100),
        "amount": st.sampled_from(["1250.00", 0, 0.07, "0.07", 1234.5, "9999999999999.99"]),
        "currency": st.sampled_from(["EUR", "USD"]),
    }
    return fixed.get(name, st.sampled_from(["x", "", None, "paid_search"]))


# -- the property ---------------------------------------------------------------------------


def schema_accepts(event_type: str | None, raw: bytes) -> bool:
    instance = json.loads(raw, parse_float=Decimal)
    with localcontext() as exact:
        exact.prec = 1000  # multipleOf on numbers up to 1e308, exactly
        return bool(validator_for(event_type).is_valid(instance))


def date_rule(body: Any) -> bool:
    """The schema's form of the timestamp window: the timestamp's own date is 2000-01-01+."""
    return str(body["occurred_at"])[:10] >= "2000-01-01"


def assert_agree(event_type: str | None, body: Any) -> None:
    raw = json.dumps(body).encode()
    kind = topic_kind_of(event_type) if event_type else "marketing"
    verdict = classify(raw, kind, NOW)
    accepted = isinstance(verdict, BaseEvent)
    in_window_only = not accepted and verdict.reason == "timestamp_out_of_range"
    # The time-window rule, apart: the schema checks the date, the validator the instant.
    expected = (accepted or in_window_only) and date_rule(body)
    combined = schema_accepts(None, raw)
    assert combined == expected, f"combined schema says {combined}, validator {verdict}"
    if event_type is not None:
        own = schema_accepts(event_type, raw)
        assert own == expected, f"{event_type} schema says {own}, validator {verdict}"


AGREE = settings(
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@AGREE
@given(events())
def test_schema_and_validator_agree_on_any_event(case: tuple[str | None, Any]) -> None:
    assert_agree(*case)


@AGREE
@given(st.sampled_from(["opportunity.created", "deal.won"]), amounts())
def test_schema_and_validator_agree_on_amounts(event_type: str, amount: Any) -> None:
    assert_agree(event_type, {**WON, "event_type": event_type, "amount": amount})


@AGREE
@given(st.one_of(stamps(), BAD_STAMPS))
def test_schema_and_validator_agree_on_timestamps(stamp: str) -> None:
    assert_agree("deal.won", {**WON, "occurred_at": stamp})


@AGREE
@given(st.sampled_from(["lead.scored", "lead.mql"]), scores())
def test_schema_and_validator_agree_on_scores(event_type: str, score: Any) -> None:
    body = {**WON, "event_type": event_type, "score": score}
    assert_agree(event_type, body)


# -- the rules stated plainly -----------------------------------------------------------------

WON = {
    "event_id": "e-1",
    "event_type": "deal.won",
    "lead_id": "L-1",
    "occurred_at": "2026-03-02T09:30:00Z",
    "opportunity_id": "O-1",
    "amount": "1250.00",
    "currency": "EUR",
}


@pytest.mark.parametrize(
    ("change", "valid"),
    [
        ({}, True),
        ({"amount": 0.07}, True),
        ({"amount": 1.234}, False),
        ({"amount": "1.234"}, False),
        ({"amount": 1e20}, False),
        ({"amount": 9999999999999.99}, True),
        ({"amount": "1e2"}, False),
        ({"occurred_at": "1999-06-01T00:00:00Z"}, False),
        ({"occurred_at": "2026-03-02 09:30:00Z"}, False),
        ({"occurred_at": "2024-02-29T09:30:00+01:00"}, True),
        ({"occurred_at": "2100-02-29T09:30:00Z"}, False),
        ({"schema_version": True}, False),
        ({"owner_id": ""}, True),
        ({"opportunity_id": ""}, False),
    ],
)
def test_named_cases_agree(change: dict[str, Any], valid: bool) -> None:
    body = {**WON, **change}
    raw = json.dumps(body).encode()
    assert isinstance(classify(raw, "sales", NOW), BaseEvent) == valid
    assert schema_accepts("deal.won", raw) == valid
    assert schema_accepts(None, raw) == valid


def test_every_field_has_a_description_and_a_valid_example() -> None:
    for event_type in EVENT_MODELS:
        schema = event_schema(event_type)
        for name, rule in schema["properties"].items():
            assert rule["description"] and rule["examples"], (event_type, name)
        (example,) = schema["examples"]
        assert validator_for(event_type).is_valid(example), event_type
        raw = json.dumps(example).encode()
        assert isinstance(classify(raw, topic_kind_of(event_type), NOW), BaseEvent)


def test_the_time_window_is_documented() -> None:
    rule = event_schema("lead.created")["properties"]["occurred_at"]["description"]
    assert "24 hours" in rule and "2000-01-01" in rule
    tomorrow = (NOW + timedelta(hours=30)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    raw = json.dumps({**WON, "occurred_at": tomorrow}).encode()
    assert schema_accepts("deal.won", raw), "the schema cannot know now"
    assert getattr(classify(raw, "sales", NOW), "reason", None) == "timestamp_out_of_range"
