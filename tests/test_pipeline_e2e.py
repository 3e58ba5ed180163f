"""The whole pipeline on a real broker and real stores: worker processes, topics, tables."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from leadflow.agents.facts import Fact
from leadflow.agents.fold import FoldConfig, fold
from leadflow.pipeline.kafka.broker import EmbeddedBroker
from leadflow.pipeline.publish.simulate import SimMessage, simulate
from leadflow.schemas.classify import classify
from leadflow.schemas.events import BaseEvent
from leadflow.sinks import make_engine
from tests.support.fixtures import WorkerFactory
from tests.support.golden import assert_rows_match, load_scenarios
from tests.support.queries import (
    funnel_groupby,
    funnel_rows,
    revenue_groupby,
    revenue_rows,
    table_rows,
)
from tests.support.traffic import BAD, SCENARIO_MESSAGES, publish, scenario_messages

pytestmark = [pytest.mark.broker, pytest.mark.slow]
SCENARIOS = load_scenarios()
TABLES = (
    "lead_lifecycle",
    "lead_stage_transitions",
    "handoff_sla",
    "funnel_daily",
    "revenue_daily",
    "dead_letters",
)


def assert_store_matches_scenarios(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        leads = {row["lead_id"]: row for row in table_rows(engine, "lead_lifecycle")}
        transitions: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in table_rows(engine, "lead_stage_transitions"):
            transitions[row["lead_id"]].append(row)
        slas: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in table_rows(engine, "handoff_sla"):
            slas[row["lead_id"]].append(row)
        assert len(leads) == len({s.lead_id for s in SCENARIOS})
        for scenario in SCENARIOS:
            where = f"{scenario.name} "
            assert_rows_match(leads[scenario.lead_id], scenario.expected["lead_lifecycle"], where)
            got = sorted(
                transitions[scenario.lead_id], key=lambda r: (r["cycle_no"], r["entered_at"])
            )
            want = scenario.expected["lead_stage_transitions"]
            assert len(got) == len(want), where
            for mine, theirs in zip(sorted(got, key=_transition_order), want, strict=True):
                assert_rows_match(mine, theirs, where + "transition")
            got_sla = sorted(slas[scenario.lead_id], key=lambda r: r["cycle_no"])
            assert len(got_sla) == len(scenario.expected["handoff_sla"]), where
            for mine, theirs in zip(got_sla, scenario.expected["handoff_sla"], strict=True):
                assert_rows_match(mine, theirs, where + "sla")
        assert funnel_rows(engine) == funnel_groupby(engine)
        assert revenue_rows(engine) == revenue_groupby(engine)
    finally:
        engine.dispose()


_STAGE_ORDER = {
    s: i
    for i, s in enumerate(("lead", "mql", "sal", "sql", "lost", "won", "recycled", "disqualified"))
}


def _transition_order(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["cycle_no"], row["entered_at"], _STAGE_ORDER[row["stage"]])


def dump(database_url: str) -> dict[str, list[dict[str, Any]]]:
    engine = make_engine(database_url)
    try:
        return {table: table_rows(engine, table) for table in TABLES}
    finally:
        engine.dispose()


# -- golden scenarios through a real worker -------------------------------------------------


def test_golden_scenarios_through_a_worker(
    broker: EmbeddedBroker, database_url: str, start_worker: WorkerFactory
) -> None:
    worker = start_worker(database_url)
    publish(broker, database_url, scenario_messages())
    worker.wait_processed(SCENARIO_MESSAGES, timeout=60)
    assert_store_matches_scenarios(database_url)

    before = dump(database_url)
    publish(broker, database_url, scenario_messages())
    worker.wait_processed(2 * SCENARIO_MESSAGES, timeout=60)
    assert dump(database_url) == before, "a replay changed a row"


@pytest.mark.parametrize("key_mode", ["none", "random"])
def test_any_key_and_partition_count_gives_the_same_result(
    broker: EmbeddedBroker, tmp_path: Any, start_worker: WorkerFactory, key_mode: str
) -> None:
    database_url = f"sqlite:///{tmp_path / 'store.db'}"
    admin = KafkaAdminClient(bootstrap_servers=broker.url.removeprefix("kafka://"))
    admin.create_topics([NewTopic("marketing-leads", 3, 1), NewTopic("sales-outcomes", 5, 1)])
    admin.close()
    worker = start_worker(database_url)
    publish(broker, database_url, scenario_messages(key_mode, seed=3))
    worker.wait_processed(SCENARIO_MESSAGES, timeout=60)
    assert_store_matches_scenarios(database_url)


# -- dead letters ----------------------------------------------------------------------------


def test_every_dead_letter_reason_is_recorded_and_the_worker_goes_on(
    broker: EmbeddedBroker, database_url: str, start_worker: WorkerFactory
) -> None:
    worker = start_worker(database_url)
    good = scenario_messages()
    mixed: list[tuple[str, bytes | None, bytes]] = []
    for i, (topic, key, value) in enumerate(good):
        mixed.append((topic, key, value))
        if i < len(BAD):
            bad_topic, raw, _ = BAD[i]
            mixed.append((bad_topic, b"B", raw))
    publish(broker, database_url, mixed)
    worker.wait_processed(len(mixed), timeout=60)
    assert_store_matches_scenarios(database_url)
    engine = make_engine(database_url)
    letters = table_rows(engine, "dead_letters")
    engine.dispose()
    assert sorted(r["reason"] for r in letters) == sorted(reason for _, _, reason in BAD)
    for row in letters:
        assert row["topic"] in ("marketing-leads", "sales-outcomes")
        assert row["offset"] >= 0 and row["partition"] >= 0
        assert row["error"] and row["payload"]
    payloads = {r["payload"] for r in letters}
    assert all(raw.decode() in payloads for _, raw, _ in BAD)


# -- simulated traffic equals the pure fold --------------------------------------------------


def expected_from(messages: list[SimMessage], now: datetime) -> dict[str, Any]:
    facts: dict[str, list[Fact]] = defaultdict(list)
    for message in messages:
        verdict = classify(message.value, message.topic_kind, now)
        if isinstance(verdict, BaseEvent):
            facts[verdict.lead_id].append(Fact.from_event(verdict))
    config = FoldConfig(24 * 3600.0, frozenset({"not_now", "nurture", "no_budget", "timing"}))
    return {lead: fold(lead, lead_facts, config, now) for lead, lead_facts in facts.items()}


def test_simulated_traffic_equals_the_pure_fold(
    broker: EmbeddedBroker, database_url: str, start_worker: WorkerFactory
) -> None:
    now = datetime.now(UTC)
    # Old enough that no SLA is still pending: the result cannot depend on when it is read.
    messages = simulate(400, seed=11, start=now - timedelta(days=3), key_mode="random")
    worker = start_worker(database_url)
    publish(broker, database_url, [(m.topic_kind, m.key, m.value) for m in messages])
    worker.wait_processed(len(messages), timeout=120)
    expected = expected_from(messages, now)

    engine = make_engine(database_url)
    leads = {row["lead_id"]: row for row in table_rows(engine, "lead_lifecycle")}
    transitions = table_rows(engine, "lead_stage_transitions")
    slas = table_rows(engine, "handoff_sla")
    letters = table_rows(engine, "dead_letters")
    funnel_ok = funnel_rows(engine) == funnel_groupby(engine)
    revenue_ok = revenue_rows(engine) == revenue_groupby(engine)
    engine.dispose()

    assert set(leads) == set(expected)
    for lead_id, snapshot in expected.items():
        row = dict(leads[lead_id])
        row.pop("updated_at")
        assert row == snapshot.lifecycle, lead_id
    want_transitions = sorted(
        (t["lead_id"], t["cycle_no"], t["stage"], t["entered_at"], t["inferred"])
        for s in expected.values()
        for t in s.transitions
    )
    got_transitions = sorted(
        (t["lead_id"], t["cycle_no"], t["stage"], t["entered_at"], t["inferred"])
        for t in transitions
    )
    assert got_transitions == want_transitions
    assert sorted(tuple(sorted(r.items())) for r in slas) == sorted(
        tuple(sorted(r.items())) for s in expected.values() for r in s.sla
    )
    assert len(letters) == sum(1 for m in messages if not m.valid)
    assert funnel_ok and revenue_ok


# -- the command a user runs -------------------------------------------------------------------


def test_demo_command_exits_zero_with_a_report(tmp_path: Any) -> None:
    from leadflow.pipeline.kafka.broker import free_port

    done = subprocess.run(
        [sys.executable, "-m", "leadflow", "demo", "--leads", "500"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
        env={
            **__import__("os").environ,
            "LEADFLOW_BROKER": f"kafka://127.0.0.1:{free_port()}",
            "LEADFLOW_WEB_PORT": str(free_port()),
            "LEADFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'leadflow.db'}",
        },
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Funnel" in done.stdout or "funnel" in done.stdout
    assert "won" in done.stdout and "Handoff SLA" in done.stdout
    assert (tmp_path / "leadflow.db").exists()


def test_publish_command_sends_valid_lines_and_reports_refusals(
    broker: EmbeddedBroker, tmp_path: Any
) -> None:
    """A file with refused lines publishes nothing, unless --partial; --dry-run never does."""
    import os

    from kafka import KafkaConsumer

    good = SCENARIOS[0].published
    lines = [json.dumps(good[0]), json.dumps(good[1]["value"]), "{not json", ""]
    lines.append(json.dumps({"topic": "sales", "value": good[0]["value"]}))  # wrong topic
    lines.append(json.dumps(good[2]))
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")

    def publish(*flags: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "leadflow", "publish", *flags, str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "LEADFLOW_BROKER": broker.url},
            check=False,
        )

    for flags, said in (
        (["--dry-run"], "dry run: 3 events valid, 2 lines refused; nothing published"),
        ([], "published nothing: 2 lines refused"),
    ):
        done = publish(*flags)
        assert done.returncode == 1, done.stderr
        assert "line 3: refused (invalid_json)" in done.stderr
        assert said in done.stdout
    consumer = KafkaConsumer(
        bootstrap_servers=broker.url.removeprefix("kafka://"), consumer_timeout_ms=3000
    )
    assert "marketing-leads" not in consumer.topics()  # nothing was sent, no topic made
    consumer.close()
    done = publish("--partial")
    assert done.returncode == 1, done.stderr
    assert "line 3: refused (invalid_json)" in done.stderr
    assert "line 5: refused (wrong_topic)" in done.stderr
    assert "published 3 events, refused 2 lines" in done.stdout
    consumer = KafkaConsumer(
        "marketing-leads",
        bootstrap_servers=broker.url.removeprefix("kafka://"),
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
    )
    ids = {json.loads(m.value)["event_id"] for m in consumer}
    consumer.close()
    assert ids == {good[i]["value"]["event_id"] for i in range(3)}
