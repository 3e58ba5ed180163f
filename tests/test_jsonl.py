"""Reading `leadflow publish` JSON Lines files: both line forms, every refusal, line numbers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from leadflow.pipeline.publish.jsonl import Outgoing, Refusal, iter_jsonl, read_jsonl
from leadflow.pipeline.publish.simulate import simulate, valid_events

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def created(**extra: Any) -> dict[str, Any]:
    return {
        "event_id": "e-1",
        "event_type": "lead.created",
        "lead_id": "L-1",
        "occurred_at": "2025-05-01T09:00:00+02:00",
        "source": "paid_search",
        **extra,
    }


def won(amount: Any = "1200.50") -> dict[str, Any]:
    return {
        "event_id": "e-2",
        "event_type": "deal.won",
        "lead_id": "L-1",
        "occurred_at": "2025-05-03T09:00:00Z",
        "opportunity_id": "O-1",
        "amount": amount,
        "currency": "EUR",
    }


def write(tmp_path: Path, *lines: str | bytes) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines) + b"\n")
    return path


def line(value: Any) -> str:
    return json.dumps(value)


def test_both_forms_routed_with_lead_key_and_original_value(tmp_path: Path) -> None:
    bare_sales = won()
    path = write(
        tmp_path,
        line({"topic": "marketing", "value": created(extra_field="kept")}),
        line(bare_sales),
        line(created(event_id="e-3")),
    )
    outgoing, refusals = read_jsonl(path, NOW)
    assert refusals == []
    assert [(o.line_no, o.topic_kind, o.key) for o in outgoing] == [
        (1, "marketing", b"L-1"),
        (2, "sales", b"L-1"),
        (3, "marketing", b"L-1"),
    ]
    assert (
        outgoing[0].value == json.dumps(created(extra_field="kept"), separators=(",", ":")).encode()
    )
    assert outgoing[1].value == json.dumps(bare_sales, separators=(",", ":")).encode()


def test_blank_lines_skipped_and_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "", line(created()), "   ", "\t", line(won()), "")
    outgoing, refusals = read_jsonl(path, NOW)
    assert refusals == []
    assert [o.line_no for o in outgoing] == [2, 5]


def test_every_refusal_kind_with_its_line_number(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        line(created()),
        '{"event_id": "e-9", "event_type": ',
        b'{"event_id": "\xff"}',
        line({"topic": "crm", "value": created()}),
        line({"topic": "marketing", "value": won()}),
        line(created(event_type="lead.teleported")),
        line({k: v for k, v in created().items() if k != "source"}),
        line({"topic": "sales"}),
        line(created(schema_version=2)),
        line(created(occurred_at="2025-06-05T00:00:00Z")),
        line([1, 2]),
    )
    outgoing, refusals = read_jsonl(path, NOW)
    assert [o.line_no for o in outgoing] == [1]
    assert [(r.line_no, r.reason) for r in refusals] == [
        (2, "invalid_json"),
        (3, "invalid_json"),
        (4, "invalid_event"),
        (5, "wrong_topic"),
        (6, "unknown_event_type"),
        (7, "invalid_event"),
        (8, "invalid_event"),
        (9, "unsupported_schema_version"),
        (10, "timestamp_out_of_range"),
        (11, "invalid_event"),
    ]
    by_line = {r.line_no: r.error for r in refusals}
    assert all(error.startswith(f"line {n}") for n, error in by_line.items())
    assert '"marketing" or "sales"' in by_line[4] and '"crm"' in by_line[4]
    assert "source is required" in by_line[7]
    assert "lead.teleported" in by_line[6]


def test_amounts_keep_their_exact_value(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        line(won(12.5)),
        '{"event_id":"e-3","event_type":"deal.won",'
        '"lead_id":"L-1","occurred_at":"2025-05-03T09:00:00Z","opportunity_id":"O-1",'
        '"amount":1234567890123456.78,"currency":"EUR"}',
    )
    outgoing, refusals = read_jsonl(path, NOW)
    assert b'"amount":12.5,' in outgoing[0].value
    # 18 digits: no double holds it, and the store keeps 15 exactly: refused, not rounded.
    assert [(r.line_no, r.reason) for r in refusals] == [(2, "invalid_event")]
    assert "amount" in refusals[0].error


def test_byte_order_mark_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + line(created()).encode() + b"\r\n" + line(won()).encode())
    outgoing, refusals = read_jsonl(path, NOW)
    assert refusals == [] and len(outgoing) == 2


def test_streams_lazily(tmp_path: Path) -> None:
    path = write(tmp_path, line(created()), "not json")
    items = iter_jsonl(path, NOW)
    assert isinstance(next(items), Outgoing)
    assert isinstance(next(items), Refusal)


def test_simulated_traffic_round_trips_in_both_forms(tmp_path: Path) -> None:
    start = datetime(2025, 5, 1, tzinfo=UTC)
    messages = simulate(100, seed=4, start=start)
    lines = []
    for i, message in enumerate(messages):
        wrapped = b'{"topic":"%s","value":%s}' % (message.topic_kind.encode(), message.value)
        # Bad messages stay wrapped: bare, a wrong-topic one would be routed correctly.
        lines.append(wrapped if i % 2 or not message.valid else message.value)
    path = write(tmp_path, *lines)
    outgoing, refusals = read_jsonl(path, start)
    good = [m for m in messages if m.valid]
    assert len(outgoing) == len(good)
    assert len(refusals) == len(messages) - len(good)
    assert {o.value for o in outgoing} == {m.value for m in valid_events(messages)}
