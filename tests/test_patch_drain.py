"""The fetch loop never delivers a record fetched before or during a seek, nor commits past one.

Faust's real Consumer (tests/support/faust_consumer.py) runs the patched fetch loop on a real
aiokafka consumer on the embedded broker. Records 0-4 are processed and offset 5 committed;
the fetch position is 12, as after a rebalance cleared the buffered records 5-11. Each
scenario interleaves seeks to the commit with the loop's fetches differently; in all of them
the loop delivers 5-19 exactly once, in order, and the offset it would commit never passes a
record that was not processed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from faust.types import TP, Message
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from leadflow.pipeline.faust.patches import drain
from leadflow.pipeline.kafka.broker import EmbeddedBroker
from tests.support.faust_consumer import TOPIC, Fetcher, GatedConsumer, acking_app
from tests.support.traffic import bootstrap

COMMITTED, POSITION, END = 5, 12, 20
FTP = TP(TOPIC, 0)


@dataclass
class Outcome:
    delivered: list[int] = field(default_factory=list)
    # (offset being processed, offset a commit would write) whenever the second passed the first
    early_commits: list[tuple[int, int]] = field(default_factory=list)


def fill(bootstrap_servers: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    admin.create_topics([NewTopic(TOPIC, 1, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers)
    for i in range(END):
        producer.send(TOPIC, f"{i}".encode(), partition=0)
    producer.flush()
    producer.close()


async def until(what: str, check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def interleave(
    consumer: GatedConsumer, scenario: str, start_loop: Callable[[], None]
) -> None:
    """Run the seeks of ``scenario`` around the loop's first fetch; every seek completes."""
    seeks: list[asyncio.Task[None]] = []
    if scenario == "fetch-then-seek":  # the fetch returns before the seek, delivers after it
        consumer.release_fetch.clear()
        start_loop()
        await until("the first fetch", consumer.fetch_started.is_set)
        consumer.gate.set()
        await consumer.perform_seek()
        consumer.release_fetch.set()
        return
    held = {"one-seek-in-flight": 1, "two-overlapping-seeks": 2}[scenario]
    for _ in range(held):
        seeks.append(asyncio.create_task(consumer.perform_seek()))
    await until("the seeks to start", lambda: consumer.seeks_entered == held)
    start_loop()
    # The loop has delivered (or set aside) its first fetch: it fetches again, or seeks.
    await until(
        "the first fetch handled", lambda: consumer.fetches >= 2 or consumer.seeks_entered > held
    )
    consumer.gate.set()
    await asyncio.gather(*seeks)


async def scenario_outcome(bootstrap_servers: str, scenario: str) -> Outcome:
    outcome = Outcome()
    kafka = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, group_id="g", enable_auto_commit=False
    )
    await kafka.start()
    consumer: GatedConsumer | None = None

    async def on_message(message: Message) -> None:
        outcome.delivered.append(message.offset)
        assert consumer is not None
        consumer.ack(message)
        unprocessed = sorted(set(range(COMMITTED, END)) - set(outcome.delivered))
        would_commit = consumer._new_offset(FTP)
        if unprocessed and would_commit is not None and would_commit > unprocessed[0]:
            outcome.early_commits.append((message.offset, would_commit))

    try:
        ktp = TopicPartition(TOPIC, 0)
        kafka.assign([ktp])
        await kafka.commit({ktp: OffsetAndMetadata(COMMITTED, "")})
        kafka.seek(ktp, POSITION)
        consumer = GatedConsumer(acking_app(bootstrap_servers), kafka, on_message)
        consumer._read_offset[FTP] = COMMITTED - 1
        consumer._committed_offset[FTP] = COMMITTED
        fetcher = Fetcher()
        loop: list[asyncio.Task[None]] = []

        def start_loop() -> None:
            loop.append(asyncio.create_task(consumer._drain_messages(fetcher)))

        await interleave(consumer, scenario, start_loop)
        try:
            await until("every record read", lambda: END - 1 in outcome.delivered, timeout=10)
        finally:
            fetcher._stopped.set()
            await asyncio.wait_for(loop[0], timeout=10)
    finally:
        await kafka.stop()
    return outcome


@pytest.mark.broker
@pytest.mark.parametrize(
    "scenario", ["fetch-then-seek", "one-seek-in-flight", "two-overlapping-seeks"]
)
def test_records_fetched_before_or_during_a_seek_are_never_delivered(
    broker: EmbeddedBroker, scenario: str
) -> None:
    drain.install()
    fill(bootstrap(broker))
    outcome = asyncio.run(asyncio.wait_for(scenario_outcome(bootstrap(broker), scenario), 60))
    assert outcome.delivered == list(range(COMMITTED, END))
    assert outcome.early_commits == []


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(["seek begins", "seek ends", "fetch", "deliver"]), max_size=40))
def test_the_seek_guard_passes_a_fetch_only_if_no_seek_touched_it(ops: list[str]) -> None:
    """Any interleaving of overlapping seeks and fetches, against a direct oracle."""
    guard = drain.SeekGuard()
    running = 0  # seeks in flight
    fetch: tuple[int | None, bool] | None = None  # (ticket, a seek ran since the fetch began)
    for op in ops:
        if op == "seek begins":
            guard.begin_seek()
            running += 1
            fetch = None if fetch is None else (fetch[0], True)
        elif op == "seek ends" and running:
            guard.end_seek()
            running -= 1
        elif op == "fetch" and fetch is None:
            fetch = (guard.ticket(), running > 0)
        elif op == "deliver" and fetch is not None:
            ticket, touched = fetch
            assert guard.clean(ticket) is not (touched or running > 0)
            fetch = None
