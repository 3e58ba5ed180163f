"""Issue 18 item 2, without a broker: tokens, bodies under limits, the door's verdicts, the CLI."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from leadflow.pipeline.ingest.bodies import (
    MAX_BODY_BYTES,
    BodyError,
    LineError,
    is_json_lines,
    read_body,
    split_json,
    split_json_lines,
)
from leadflow.pipeline.ingest.door import judge
from leadflow.pipeline.ingest.tokens import find_token, load_tokens, parse_tokens
from leadflow.pipeline.settings import Settings
from leadflow.schemas.errors import LeadflowError

NOW = datetime(2026, 11, 3, tzinfo=UTC)
CREATED = {
    "event_id": "e-1",
    "event_type": "lead.created",
    "lead_id": "L-1",
    "occurred_at": "2026-11-02T09:00:00Z",
    "source": "referral",
}
ASSIGNED = {
    "event_id": "e-2",
    "event_type": "lead.assigned",
    "lead_id": "L-1",
    "occurred_at": "2026-11-02T10:00:00+01:00",
    "owner_id": "ae-3",
}


def test_token_file_skips_blank_and_comment_lines() -> None:
    tokens = parse_tokens("# who scope secret\n\n  web marketing s3cret-a\ncrm sales s3cret-b\n")
    assert [(t.name, t.scope) for t in tokens] == [("web", "marketing"), ("crm", "sales")]
    assert find_token(tokens, "Bearer s3cret-b") is tokens[1]
    assert find_token(tokens, "bearer  s3cret-a ") is tokens[0]
    for header in (None, "", "Bearer", "Bearer s3cret", "Basic s3cret-a", "s3cret-a"):
        assert find_token(tokens, header) is None
    assert "s3cret" not in repr(tokens)


@pytest.mark.parametrize(
    "text", ["web marketing", "web everything s", "a b c d", "# only a comment\n"]
)
def test_bad_token_files_are_refused(text: str) -> None:
    with pytest.raises(LeadflowError):
        parse_tokens(text)


def test_no_token_file_means_no_start(tmp_path: Path) -> None:
    with pytest.raises(LeadflowError, match="LEADFLOW_INGEST_TOKENS"):
        load_tokens(None)
    with pytest.raises(LeadflowError, match="not a file"):
        load_tokens(str(tmp_path / "absent.txt"))


def test_cli_refuses_to_start_without_tokens_in_one_sentence() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    result = subprocess.run(
        [sys.executable, "-m", "leadflow", "ingest"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "LEADFLOW_INGEST_TOKENS" in lines[0], result.stderr


def test_ingest_help_has_a_curl_example() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "leadflow", "ingest", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    assert "curl" in result.stdout and "/v1/events" in result.stdout
    assert "Authorization: Bearer" in result.stdout


def test_settings_defaults() -> None:
    settings = Settings()
    assert (settings.ingest_host, settings.ingest_port) == ("127.0.0.1", 6068)
    assert settings.ingest_publish_timeout == 30.0
    with pytest.raises(Exception, match="frozen"):
        settings.ingest_port = 1  # type: ignore[misc]


async def _chunks(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def read(data: bytes, encoding: str = "") -> bytes:
    return asyncio.run(read_body(_chunks(data), encoding))


def test_read_body_limits_after_decoding() -> None:
    exact = b"x" * MAX_BODY_BYTES
    assert read(exact) == exact
    assert read(gzip.compress(exact), "gzip") == exact
    with pytest.raises(BodyError) as info:
        read(exact + b"x")
    assert info.value.status == 413
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024))
    assert len(bomb) < 100_000
    with pytest.raises(BodyError) as info:
        read(bomb, "gzip")
    assert info.value.status == 413
    assert read(zlib.compress(b"[1]"), "deflate") == b"[1]"
    members = gzip.compress(b'[{"a": 1},') + gzip.compress(b'{"b": 2}]')
    assert read(members, "gzip") == b'[{"a": 1},{"b": 2}]'
    half = b"y" * (MAX_BODY_BYTES // 2 + 1)
    with pytest.raises(BodyError) as info:
        read(gzip.compress(half) + gzip.compress(half), "gzip")
    assert info.value.status == 413


def test_read_body_refuses_broken_and_unknown_encodings() -> None:
    for data, encoding, status in (
        (b"not gzip at all", "gzip", 400),
        (gzip.compress(b"[1, 2]")[:-6], "gzip", 400),
        (b"[]", "br", 415),
        (zlib.compress(b"[1]") + b"junk", "deflate", 400),
        (gzip.compress(b"[1]") + b"junk", "gzip", 400),
    ):
        with pytest.raises(BodyError) as info:
            read(data, encoding)
        assert info.value.status == status


def test_split_json_and_json_lines() -> None:
    one = json.dumps(CREATED).encode()
    assert split_json(b" " + one + b"\n") == [one]
    assert split_json(b"[" + one + b" ,\n 3,[] ]") == [one, b"3", b"[]"]
    assert split_json(b'[{"amount": 12345678901234567.89}]') == [
        b'{"amount": 12345678901234567.89}'
    ]
    assert split_json(b" [ ] ") == []
    deep = b"[" * 200_000 + b"]" * 200_000
    bad = (b"", b"  \n", b"{", b"\xff", b"[1,]", b"[1 2]", b"[1] x", b"{} {}", b"[NaN]", deep)
    for body in bad:
        with pytest.raises(BodyError) as info:
            split_json(body)
        assert info.value.status == 400
    items = split_json_lines(b'{"a": 1}\r\n\n  \nnope\n[1]\n{} {}')
    assert items[0] == b'{"a": 1}' and isinstance(items[1], LineError) and items[2] == b"[1]"
    assert isinstance(items[3], LineError) and len(items) == 4
    assert isinstance(split_json_lines(b"[" * 200_000)[0], LineError)
    assert is_json_lines("application/x-ndjson; charset=utf-8")
    assert is_json_lines("Application/JSONL") and not is_json_lines("application/json")


def test_the_door_judges_as_classify_does_within_the_scope() -> None:
    items = [json.dumps(e).encode() for e in (CREATED, ASSIGNED)]
    for scope, accepted in (("all", 2), ("marketing", 1), ("sales", 1)):
        verdicts = judge(items, scope, NOW)
        assert len(verdicts.outgoing) == accepted
        assert [r["reason"] for r in verdicts.refused] == ["wrong_topic"] * (2 - accepted)
    huge = dict(ASSIGNED, event_id="e-3", extra=10**30)
    assert len(judge([json.dumps(huge).encode()], "all", NOW).outgoing) == 1
    routed = judge(items, "all", NOW).outgoing
    assert [(kind, key) for kind, key, _ in routed] == [("marketing", b"L-1"), ("sales", b"L-1")]
    assert routed[0][2] == items[0]
    verdicts = judge([LineError("bad line"), b'{"event_type": "x.y"}', b"7"], "all", NOW)
    assert [(r["index"], r["reason"]) for r in verdicts.refused] == [
        (0, "invalid_json"),
        (1, "unknown_event_type"),
        (2, "invalid_event"),
    ]
