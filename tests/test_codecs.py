"""Issue 18, item 1: every Kafka codec in, every codec out, and batches nobody can decode.

Producers other than ours (confluent-kafka: librdkafka, its own partitioner, idempotence on)
and ours (kafka-python through ``Publisher``) publish in each codec, with keys by lead, random
and none; a worker whose own output uses the same codec must leave the store equal to the
pure fold. The test process reads the topics back and checks the codec of every batch.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from leadflow.pipeline.faust.patches import undecodable as decoding
from leadflow.pipeline.kafka.broker import EmbeddedBroker
from leadflow.pipeline.kafka.producer import Publisher
from leadflow.pipeline.publish.simulate import SimMessage
from leadflow.pipeline.settings import CODEC_IDS, load_settings
from leadflow.schemas.classify import Rejection, classify
from leadflow.schemas.errors import SettingsError
from leadflow.sinks import make_engine
from tests.support.faults import assert_store_equals, expected_of, wait_store
from tests.support.fixtures import WorkerFactory, settings_for
from tests.support.kafka_batches import batch_codecs
from tests.support.queries import table_rows
from tests.support.traffic import bootstrap, kinds, raw, sim

CODECS = tuple(CODEC_IDS)
KEY_MODES = ("lead_id", "random", "none")


def traffic(now: datetime) -> list[SimMessage]:
    """One simulated set per key mode, each with leads of its own (the seed names them)."""
    return [
        message
        for seed, key_mode in enumerate(KEY_MODES, start=70)
        for message in sim(40, seed, now, key_mode=key_mode)
    ]


def publish_confluent(servers: str, codec: str, messages: list[SimMessage]) -> None:
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": servers,
            "compression.type": codec,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 30_000,
        }
    )
    failures: list[Any] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(error)

    for topic, key, value in raw(messages):
        producer.produce(topic, value=value, key=key, on_delivery=delivered)
        producer.poll(0)
    assert producer.flush(60) == 0, "confluent-kafka did not deliver everything in 60 s"
    assert not failures, f"confluent-kafka delivery failed: {failures[:3]}"


def assert_codecs(broker: EmbeddedBroker, codec: str) -> None:
    """Every topic, input and the worker's output, holds batches in ``codec``, and no other.

    Producers (librdkafka, kafka-python and aiokafka alike) send a batch plain when
    compressing does not make it smaller, so plain batches may sit beside them.
    """
    names = settings_for(broker, "sqlite://").topic_names()
    wanted = CODEC_IDS[codec]
    for topic in (names.marketing, names.sales, names.lifecycle, names.dead_letters):
        seen = batch_codecs(bootstrap(broker), topic)
        assert wanted in seen, f"{topic}: batches in codecs {seen}, none in {codec}"
        assert seen <= {0, wanted}, f"{topic}: batches in codecs {seen}, expected {codec}"


def run_codec_case(
    broker: EmbeddedBroker, url: str, start_worker: WorkerFactory, codec: str, client: str
) -> None:
    now = datetime.now(UTC)
    messages = traffic(now)
    expected = expected_of(kinds(messages), now)
    assert expected.invalid > 0, "the traffic must hold dead letters, to check their topic"
    worker = start_worker(url, LEADFLOW_COMPRESSION=codec)
    if client == "confluent-kafka":
        publish_confluent(bootstrap(broker), codec, messages)
    else:
        with Publisher(settings_for(broker, url, compression=codec)) as publisher:
            publisher.send_all((m.topic_kind, m.key, m.value) for m in messages)
    wait_store(url, expected, timeout=90, workers=[worker])
    assert_store_equals(url, expected)
    assert_codecs(broker, codec)


@pytest.mark.broker
@pytest.mark.slow
@pytest.mark.parametrize("codec", CODECS)
def test_confluent_kafka_in_every_codec_gives_the_fold(
    broker: EmbeddedBroker, database_url: str, start_worker: WorkerFactory, codec: str
) -> None:
    run_codec_case(broker, database_url, start_worker, codec, "confluent-kafka")


@pytest.mark.broker
@pytest.mark.slow
@pytest.mark.parametrize("codec", CODECS)
def test_kafka_python_publisher_in_every_codec_gives_the_fold(
    broker: EmbeddedBroker, tmp_path: Path, start_worker: WorkerFactory, codec: str
) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    run_codec_case(broker, url, start_worker, codec, "kafka-python")


# -- batches the worker cannot decode ----------------------------------------------------------

BROKEN = ("gzip_garbage", "zstd_garbage", "bad_crc")


def broken_batch(kind: str, records: int = 3, codec: int = 0) -> Any:
    """An aiokafka ``BatchBuilder`` whose built bytes are a v2 batch nobody can decode.

    Its codec bits claim gzip, zstd or the unknown id 7 over a plain body (CRC recomputed,
    so only the decompression fails), or its CRC is wrong, or its last record is corrupt
    under a valid CRC; "intact" leaves it whole. Tansu
    stores corrupt bodies and bad CRCs but refuses unknown codec ids at produce time, so
    those are tested without a broker.
    """
    from aiokafka.producer.message_accumulator import BatchBuilder
    from aiokafka.record.util import calc_crc32c

    builder = BatchBuilder(1 << 20, codec)
    for i in range(records):
        builder.append(timestamp=None, key=b"K", value=b'{"broken": %d}' % i)
    buf = bytearray(builder._build())
    # v2 batch: CRC (uint32) at byte 17 covers everything from the attributes at byte 21.
    if kind == "bad_crc":
        buf[17] ^= 0xFF
    elif kind == "corrupt_last_record":
        buf[-1] = 0x7F  # the last record's header count: its record no longer parses
        struct.pack_into(">I", buf, 17, calc_crc32c(bytes(buf[21:])))
    elif kind != "intact":
        codec_bits = {"gzip_garbage": 1, "zstd_garbage": 4, "unknown_codec": 7}[kind]
        buf[22] = (buf[22] & ~0x07) | codec_bits
        struct.pack_into(">I", buf, 17, calc_crc32c(bytes(buf[21:])))
    builder._buffer = bytes(buf)
    return builder


async def _send_broken(servers: str, topic: str) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=servers)
    await producer.start()
    try:
        for kind in BROKEN:
            delivery = await producer.send_batch(broken_batch(kind), topic, partition=0)
            await asyncio.wait_for(delivery, 15)
    finally:
        await producer.stop()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'store.db'}"


@pytest.mark.broker
@pytest.mark.slow
def test_undecodable_batches_become_dead_letters_and_the_worker_goes_on(
    broker: EmbeddedBroker, sqlite_url: str, start_worker: WorkerFactory
) -> None:
    now = datetime.now(UTC)
    before, after = sim(30, 81, now, key_mode="lead_id"), sim(30, 82, now, key_mode="none")
    expected = expected_of(kinds(before + after), now)
    expected.invalid += len(BROKEN)
    worker = start_worker(sqlite_url)
    settings = settings_for(broker, sqlite_url)
    with Publisher(settings) as publisher:
        publisher.send_all((m.topic_kind, m.key, m.value) for m in before)
    asyncio.run(_send_broken(bootstrap(broker), settings.topic_names().marketing))
    with Publisher(settings) as publisher:
        publisher.send_all((m.topic_kind, m.key, m.value) for m in after)
    wait_store(sqlite_url, expected, timeout=90, workers=[worker])
    assert_store_equals(sqlite_url, expected)
    engine = make_engine(sqlite_url)
    try:
        letters = [r for r in table_rows(engine, "dead_letters") if "decoded" in r["error"]]
    finally:
        engine.dispose()
    assert len(letters) == len(BROKEN), letters
    assert {r["reason"] for r in letters} == {"invalid_json"}
    assert all("3 record(s) are skipped" in r["error"] for r in letters), letters
    assert any("CRC" in r["error"] for r in letters), letters
    assert worker.proc.poll() is None, "the worker stopped"


@pytest.mark.parametrize("kind", [*BROKEN, "unknown_codec"])
def test_a_batch_that_cannot_be_decoded_is_one_stand_in_record(kind: str) -> None:
    from aiokafka.record.memory_records import MemoryRecords

    records = decoding.GuardedRecords(MemoryRecords(broken_batch(kind, records=4)._build()))
    batch = records.next_batch()
    assert batch is not None and batch.validate_crc()
    (record,) = list(batch)
    assert record.offset == 0 and record.key is None
    verdict = classify(record.value, "marketing")
    assert isinstance(verdict, Rejection) and verdict.reason == "invalid_json"
    assert "offsets 0..3 could not be decoded" in verdict.error, verdict.error
    assert records.next_batch() is None


def test_a_record_that_fails_mid_batch_leaves_the_records_before_it() -> None:
    from aiokafka.record.memory_records import MemoryRecords

    built = broken_batch("corrupt_last_record", records=4)._build()
    batch = decoding.GuardedRecords(MemoryRecords(built)).next_batch()
    assert batch is not None and batch.validate_crc()
    *good, stand_in = list(batch)
    assert [r.value for r in good] == [b'{"broken": %d}' % i for i in range(3)]
    assert stand_in.offset == 3
    verdict = classify(stand_in.value, "marketing")
    assert isinstance(verdict, Rejection) and "from there on are skipped" in verdict.error


@pytest.mark.parametrize("codec", CODECS)
def test_a_batch_that_decodes_passes_unchanged(codec: str) -> None:
    from aiokafka.record.memory_records import MemoryRecords

    built = broken_batch("intact", records=4, codec=CODEC_IDS[codec])._build()
    batch = decoding.GuardedRecords(MemoryRecords(built)).next_batch()
    assert batch is not None and batch.validate_crc()
    assert [r.value for r in batch] == [b'{"broken": %d}' % i for i in range(4)]


# -- the setting -----------------------------------------------------------------------------


def test_compression_setting_accepts_the_five_codecs_and_refuses_others() -> None:
    for codec in CODECS:
        assert load_settings(compression=codec.upper()).compression == codec
    assert load_settings().compression_type is None
    assert load_settings(compression="lz4").compression_type == "lz4"
    with pytest.raises(SettingsError, match="LEADFLOW_COMPRESSION"):
        load_settings(compression="brotli")
