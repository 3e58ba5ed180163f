"""The Quix Streams peer: leadflow's job written as a Quix Streams application.

``python -m bench.quix_peer --broker H:P --group G --topics MARKETING,SALES --out-topic T
--database-url URL --state-dir DIR --started FILE``

What a competent Quix user would write for the same job, with leadflow's own classifier, fold
and codec so that only the framework differs:

- both input topics as raw bytes, concatenated into one ``StreamingDataFrame``; each message
  classified (``leadflow.schemas.classify``), the refused ones dead-lettered to the store;
- the valid ones re-keyed by lead with ``group_by`` (Quix's repartition topic), as the compact
  fact leadflow forwards (``[lead_id, *fact]``);
- per lead, a stateful ``apply``: the lead's state in Quix State (RocksDB, with its changelog
  topic), folded with ``leadflow.agents.batch.fold_batch`` and stored as leadflow's own table
  value (``encode_state``);
- each changed lead's lifecycle snapshot to ``--out-topic`` (``encode_snapshot``) and its rows
  to the store through a ``BatchingSink`` over ``leadflow.sinks.SqlSink`` (idempotent upserts,
  one transaction per topic partition at every checkpoint).

The broker settings are leadflow's in the bench (``LEADFLOW_SESSION_TIMEOUT=2``, commits every
second, at-least-once). Quix creates its repartition and changelog topics itself, with the
``retention.ms`` it reads from the input topics; the harness creates every topic with it
(Tansu returns no ``retention.ms`` for a topic created without one, and Quix needs it).

The process writes ``--started`` (a monotonic timestamp) when it classifies its first message;
the harness times it until the store holds every row, as it times leadflow.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from quixstreams import Application, State, message_context
from quixstreams.models.serializers import Serializer
from quixstreams.sinks import BatchingSink, SinkBatch
from quixstreams.state.rocksdb import RocksDBOptions

from leadflow.agents.batch import fold_batch
from leadflow.agents.codec import encode_snapshot
from leadflow.agents.facts import Fact
from leadflow.schemas.classify import DeadLetter, Rejection, classify
from leadflow.schemas.records import LeadSnapshot
from leadflow.sinks import make_engine, upgrade
from leadflow.sinks.store import SqlSink

STATE_KEY = b"lead"  # one value per lead: the lead is the message key after group_by


def utcnow() -> datetime:
    return datetime.now(UTC)


def _state_dumps(value: Any) -> bytes:
    # The state holds leadflow's table value as it is (bytes); anything else as JSON.
    return value if type(value) is bytes else orjson.dumps(value)


def _state_loads(raw: bytes) -> Any:
    return raw


class SnapshotSerializer(Serializer):
    """The lifecycle topic's value: leadflow's snapshot JSON, stamped when it is produced."""

    def __call__(self, value: LeadSnapshot, ctx: Any = None) -> bytes:
        return encode_snapshot(value, utcnow())


class StoreSink(BatchingSink):
    """Lead snapshots or dead letters into the store, one transaction per batch (idempotent:
    a snapshot replaces a lead's rows only when its version is newer)."""

    def __init__(self, sink: SqlSink, letters: bool) -> None:
        super().__init__()
        self.store = sink
        self.letters = letters

    def write(self, batch: SinkBatch) -> None:
        values = [item.value for item in batch]
        if self.letters:
            self.store.write_batch([], values, utcnow())
        else:
            self.store.write_batch(values, [], utcnow())


def build(args: argparse.Namespace) -> Application:
    from leadflow.pipeline.settings import Settings

    config = Settings().fold_config()  # the defaults, as the bench's leadflow worker gets them
    app = Application(
        broker_address=args.broker,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        commit_interval=1.0,  # leadflow's broker_commit_interval
        state_dir=str(args.state_dir),
        rocksdb_options=RocksDBOptions(dumps=_state_dumps, loads=_state_loads),
        consumer_extra_config={
            # leadflow's LEADFLOW_SESSION_TIMEOUT=2 in the bench (heartbeat: a tenth, >= 0.3 s)
            "session.timeout.ms": int(args.session_timeout * 1000),
            "heartbeat.interval.ms": int(max(0.3, args.session_timeout / 10) * 1000),
        },
        producer_extra_config={"linger.ms": 2},  # leadflow's producer_linger
        loglevel="WARNING",
        processing_guarantee="at-least-once",
    )
    marketing, sales = args.topics
    kinds = {marketing: "marketing", sales: "sales"}
    inputs = [
        app.topic(name, key_deserializer="bytes", value_deserializer="bytes")
        for name in (marketing, sales)
    ]
    lifecycle = app.topic(
        args.out_topic, key_serializer="bytes", value_serializer=SnapshotSerializer()
    )
    engine = make_engine(args.database_url)
    store = SqlSink(engine)
    started = args.started
    first: list[float] = []

    def verdict(value: bytes | None) -> DeadLetter | list[Any]:
        if not first:
            first.append(time.monotonic())
            tmp = started.with_suffix(".tmp")
            tmp.write_text(repr(first[0]))
            tmp.rename(started)
        context = message_context()
        now = utcnow()
        result = classify(value, kinds[context.topic], now)
        if isinstance(result, Rejection):
            return DeadLetter.of(
                value, result, context.topic, context.partition, context.offset, now
            )
        return [result.lead_id, *Fact.from_event(result)]

    def is_letter(value: Any) -> bool:
        return isinstance(value, DeadLetter)

    def fold(value: list[Any], state: State[Any, Any]) -> LeadSnapshot | None:
        lead_id, fact = value[0], Fact(*value[1:])
        raw = state.get(STATE_KEY)
        result = fold_batch([(lead_id, fact)], lambda _: raw, config, utcnow())
        if not result.updates:
            return None  # a duplicate (or an event past the lead's limits)
        update = result.updates[0]
        state.set(STATE_KEY, update.state)
        return update.snapshot

    sdf = app.dataframe(inputs[0]).concat(app.dataframe(inputs[1]))
    sdf = sdf.apply(verdict)
    letters = sdf.filter(is_letter)
    letters.sink(StoreSink(store, letters=True))
    events = sdf.filter(lambda value: not is_letter(value))
    events = events.group_by(
        lambda value: value[0].encode(),
        name="lead",
        key_serializer="bytes",
        key_deserializer="bytes",
    )
    events = events.apply(fold, stateful=True).filter(lambda snapshot: snapshot is not None)
    events = events.to_topic(lifecycle)
    events.sink(StoreSink(store, letters=False))
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.quix_peer")
    parser.add_argument("--broker", required=True, help="host:port")
    parser.add_argument("--group", required=True)
    parser.add_argument("--topics", required=True, type=lambda s: s.split(","))
    parser.add_argument("--out-topic", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--started", required=True, type=Path)
    parser.add_argument("--session-timeout", type=float, default=2.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    upgrade(args.database_url)
    app = build(args)
    print(f"quix peer pid {os.getpid()} ready to run", flush=True)
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
