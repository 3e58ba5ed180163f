"""Issue 18 item 2: `leadflow ingest` against a real embedded broker and real workers.

Events sent over HTTP must leave the store exactly as the pure fold of the same events, which is
what the same events published straight to Kafka give (tests/test_reliability.py).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from leadflow.pipeline.kafka.broker import EmbeddedBroker
from tests.support.faults import assert_store_equals, expected_of, wait_store
from tests.support.fixtures import WorkerFactory
from tests.support.ingest import (
    SECRETS,
    IngestProcess,
    array,
    json_lines,
    topic_values,
)
from tests.support.kafka_batches import batch_codecs
from tests.support.traffic import bootstrap, kinds, sim

pytestmark = [pytest.mark.broker, pytest.mark.timeout(240)]

IngestFactory = Callable[..., IngestProcess]
INPUTS = ["marketing-leads", "sales-outcomes"]
TOKEN_OF = {"marketing": SECRETS["mkt"], "sales": SECRETS["crm"]}


@pytest.fixture
def start_ingest(broker: EmbeddedBroker, tmp_path: Path) -> Iterator[IngestFactory]:
    started: list[IngestProcess] = []

    def start(**env: str) -> IngestProcess:
        process = IngestProcess(broker, tmp_path, **env)
        started.append(process)
        process.wait_healthy(60)
        return process

    yield start
    for process in started:
        process.stop()


def event(n: int, event_type: str = "lead.created", **fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "event_id": f"e-{n}",
        "event_type": event_type,
        "lead_id": f"L-{n}",
        "occurred_at": "2026-11-02T09:00:00Z",
    }
    if event_type == "lead.created":
        base["source"] = "paid_search"
    return {**base, **fields}


def encoded(*events: dict[str, object]) -> list[bytes]:
    return [json.dumps(e).encode() for e in events]


def chunks(values: list[bytes], size: int) -> list[list[bytes]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


@pytest.mark.slow
def test_400_leads_over_http_give_the_store_of_the_fold(
    database_url: str, start_worker: WorkerFactory, start_ingest: IngestFactory
) -> None:
    now = datetime.now(UTC)
    messages = [m for m in sim(400, seed=18, now=now) if m.valid]
    expected = expected_of(kinds(messages), now)
    worker = start_worker(database_url)
    ingest = start_ingest()
    requests = []
    for kind in ("marketing", "sales"):
        values = [m.value for m in messages if m.topic_kind == kind]
        half = len(values) // 2
        requests += [(kind, array(c), "application/json") for c in chunks(values[:half], 200)]
        for number, chunk in enumerate(chunks(values[half:], 200)):
            media = "application/x-ndjson" if number % 2 else "application/jsonl"
            requests.append((kind, json_lines(chunk), media))
    sent = 0
    for kind, body, media in requests:
        answer = ingest.post_events(TOKEN_OF[kind], body, media, gzipped=sent % 3 == 0)
        assert answer.status == 200, answer
        assert answer.body["refused"] == [], answer.body["refused"][:3]
        sent += answer.body["accepted"]
    assert sent == len(messages)
    wait_store(database_url, expected, timeout=120, workers=[worker])
    assert_store_equals(database_url, expected)

    # The same request again changes nothing.
    kind, body, media = requests[0]
    again = ingest.post_events(TOKEN_OF[kind], body, media)
    assert again.status == 200 and again.body["accepted"] > 0
    time.sleep(3)
    wait_store(database_url, expected, timeout=60, workers=[worker])
    assert_store_equals(database_url, expected)


def test_bad_events_are_refused_with_reasons_and_never_published(
    broker: EmbeddedBroker, start_ingest: IngestFactory
) -> None:
    ingest = start_ingest()
    future = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    batch = [
        event(1),
        {"event_id": "x-1", "event_type": "lead.created", "lead_id": "L-x"},
        event(2, "lead.teleported"),
        event(3, "lead.assigned", owner_id="o-1"),
        event(4, occurred_at="2026-11-02T09:00:00"),
        event(5, occurred_at=future),
        event(6, schema_version=2),
        "not an object",
        event(7, "lead.scored", score=40),
    ]
    answer = ingest.post_events(SECRETS["mkt"], json.dumps(batch).encode())
    assert answer.status == 200
    assert answer.body["accepted"] == 2
    reasons = {r["index"]: r["reason"] for r in answer.body["refused"]}
    assert reasons == {
        1: "invalid_event",
        2: "unknown_event_type",
        3: "wrong_topic",
        4: "invalid_event",
        5: "timestamp_out_of_range",
        6: "unsupported_schema_version",
        7: "invalid_event",
    }
    assert all(r["error"] for r in answer.body["refused"])
    assert "source" in answer.body["refused"][0]["error"]

    lines = b'{"event_id": "s-1", "event_type": "lead.assigned", "lead_id": "L-1", '
    lines += b'"occurred_at": "2026-11-02T10:00:00Z", "owner_id": "o-9"}\n\n{oops\n'
    lines += json.dumps(event(8)).encode() + b"\n"
    answer = ingest.post_events(SECRETS["ops"], lines, "application/x-ndjson")
    assert answer.status == 200
    assert answer.body["accepted"] == 2
    assert [(r["index"], r["reason"]) for r in answer.body["refused"]] == [(1, "invalid_json")]

    published = {json.loads(v)["event_id"] for v in topic_values(broker, INPUTS, 8)}
    assert published == {"e-1", "e-7", "s-1", "e-8"}


def test_sigkill_right_after_a_200_loses_nothing_answered(
    broker: EmbeddedBroker, start_ingest: IngestFactory
) -> None:
    now = datetime.now(UTC)
    values = [m.value for m in sim(150, seed=7, now=now) if m.valid]
    requests = chunks(values, 200)
    assert len(requests) >= 4
    ingest = start_ingest()
    answered: list[bytes] = []
    for body in requests[:3]:
        answer = ingest.post_events(SECRETS["ops"], array(body))
        assert answer.status == 200 and answer.body["accepted"] == len(body)
        answered += body
    # A fourth request is in flight when the kill comes, right after the third 200.
    late = threading.Thread(target=lambda: _ignore_errors(ingest, array(requests[3])))
    late.start()
    ingest.sigkill()
    late.join(30)
    published = {json.loads(v)["event_id"] for v in topic_values(broker, INPUTS, 8)}
    missing = {json.loads(v)["event_id"] for v in answered} - published
    assert not missing, f"{len(missing)} events answered 200 are not on the topic"


def _ignore_errors(ingest: IngestProcess, body: bytes) -> None:
    with contextlib.suppress(OSError):
        ingest.post_events(SECRETS["ops"], body)


def test_status_codes_401_413_400_415(start_ingest: IngestFactory) -> None:
    ingest = start_ingest(LEADFLOW_INGEST_MAX_EVENTS="50")
    one = json.dumps(event(1)).encode()
    assert ingest.post_events(None, one).status == 401
    assert ingest.post_events("not-a-token", one).status == 401
    basic = ingest.request("POST", "/v1/events", one, {"Authorization": "Basic " + SECRETS["ops"]})
    assert basic.status == 401
    assert ingest.post_events(SECRETS["ops"], b"").status == 400
    assert ingest.post_events(SECRETS["ops"], b"  \n").status == 400
    bad = ingest.post_events(SECRETS["ops"], b"{not json")
    assert bad.status == 400 and "JSON" in bad.body["error"]
    assert ingest.post_events(SECRETS["ops"], b"\n\n", "application/x-ndjson").status == 400
    big = b"[" + b" " * (5 * 1024 * 1024) + b"]"
    assert ingest.post_events(SECRETS["ops"], big).status == 413
    bomb = ingest.post_events(SECRETS["ops"], big, gzipped=True)
    assert bomb.status == 413, bomb
    just_under = b"[" + b" " * (5 * 1024 * 1024 - 2 - len(one)) + one + b"]"
    assert ingest.post_events(SECRETS["ops"], just_under, gzipped=True).status == 200
    many = ingest.post_events(SECRETS["ops"], array(encoded(*[event(n) for n in range(51)])))
    assert many.status == 413 and "50" in many.body["error"]
    odd = ingest.request(
        "POST",
        "/v1/events",
        one,
        {"Authorization": f"Bearer {SECRETS['ops']}", "Content-Encoding": "br"},
    )
    assert odd.status == 415
    metrics = ingest.metrics()
    assert 'leadflow_ingest_requests_total{code="401",route="/v1/events"} 3.0' in metrics
    assert 'leadflow_ingest_requests_total{code="413",route="/v1/events"} 3.0' in metrics
    assert 'leadflow_ingest_accepted_total{topic="marketing"} 1.0' in metrics
    assert "leadflow_ingest_publish_seconds_bucket" in metrics
    assert SECRETS["ops"] not in ingest.log_path.read_text()


def test_token_is_checked_before_the_body_is_read(start_ingest: IngestFactory) -> None:
    ingest = start_ingest()
    with socket.create_connection(("127.0.0.1", ingest.port), timeout=10) as conn:
        conn.sendall(
            b"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
        )
        started = time.monotonic()
        head = conn.recv(4096)
    assert head.startswith(b"HTTP/1.1 401"), head
    assert time.monotonic() - started < 5


def test_broker_down_gives_503_and_health_follows(
    broker: EmbeddedBroker, start_ingest: IngestFactory
) -> None:
    ingest = start_ingest(LEADFLOW_INGEST_PUBLISH_TIMEOUT="3")
    assert ingest.health() == 200
    broker.stop()
    started = time.monotonic()
    answer = ingest.post_events(SECRETS["mkt"], json.dumps(event(1)).encode())
    assert answer.status == 503, answer
    assert "nothing" in answer.body["error"]
    assert time.monotonic() - started < 20
    assert ingest.health() == 503
    broker.start()
    deadline = time.monotonic() + 30
    while ingest.health() != 200:
        assert time.monotonic() < deadline, "health did not come back with the broker"
        time.sleep(0.5)


def test_gzip_json_lines_round_trip(broker: EmbeddedBroker, start_ingest: IngestFactory) -> None:
    ingest = start_ingest()
    body = json_lines(encoded(event(1), event(2), event(3, "lead.mql")))
    answer = ingest.post_events(SECRETS["ops"], body, "application/jsonl", gzipped=True)
    assert answer.status == 200 and answer.body == {"accepted": 3, "refused": []}
    assert len(topic_values(broker, INPUTS, 8)) == 3


def test_ingest_publishes_in_the_configured_codec(
    broker: EmbeddedBroker, start_ingest: IngestFactory
) -> None:
    ingest = start_ingest(LEADFLOW_COMPRESSION="zstd")
    body = json_lines(encoded(*(event(n) for n in range(50))))
    answer = ingest.post_events(SECRETS["ops"], body, "application/jsonl")
    assert answer.status == 200 and answer.body == {"accepted": 50, "refused": []}
    # zstd, or plain where compressing a batch would not shrink it, and no other codec
    assert batch_codecs(bootstrap(broker), "marketing-leads") <= {0, 4}
    assert 4 in batch_codecs(bootstrap(broker), "marketing-leads")
