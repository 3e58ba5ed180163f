"""Topic names, and creating them up front with the partition counts the contract asks for."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from leadflow.pipeline.settings import Settings
from leadflow.schemas.errors import BrokerError

log = logging.getLogger(__name__)
T = TypeVar("T")


def kafka_client(factory: Callable[..., T], settings: Settings, **options: Any) -> T:
    """A kafka-python client with the security settings; one clear sentence if unreachable."""
    from kafka.errors import KafkaError

    try:
        return factory(
            bootstrap_servers=settings.bootstrap_servers,
            bootstrap_timeout_ms=5_000,  # an unreachable broker fails fast
            **settings.kafka_python_options(),
            **options,
        )
    except KafkaError as exc:
        raise BrokerError(
            f"cannot reach the Kafka broker at {settings.broker} ({exc}); "
            "start one (leadflow broker) or set LEADFLOW_BROKER"
        ) from None


def ensure_topics(settings: Settings, timeout: float = 20.0) -> dict[str, int]:
    """Create any missing topic with LEADFLOW_PARTITIONS partitions; return every partition count.

    Topics are created before any client asks for metadata: some brokers (Tansu among them)
    auto-create unknown topics with their own default partition count.
    """
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    names = settings.topic_names()
    wanted = [names.marketing, names.sales, names.lifecycle, names.dead_letters, names.rekeyed]
    admin = kafka_client(
        KafkaAdminClient,
        settings,
        client_id=f"{settings.app_id}-admin",
        request_timeout_ms=int(timeout * 1000),
    )
    try:
        existing = set(admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        new = [NewTopic(n, settings.partitions, settings.replication_factor) for n in missing]
        if names.changelog not in existing:
            new.append(
                NewTopic(
                    names.changelog,
                    settings.partitions,
                    settings.replication_factor,
                    topic_configs={"cleanup.policy": "compact"},
                )
            )
        for topic in new:
            try:
                admin.create_topics([topic])
                log.info("created topic %s with %d partitions", topic.name, topic.num_partitions)
            except TopicAlreadyExistsError:
                pass
        described = admin.describe_topics([*wanted, names.changelog])
        return {item["name"]: len(item["partitions"]) for item in described}
    except KafkaError as exc:
        raise BrokerError(f"cannot create or describe topics on {settings.broker}: {exc}") from None
    finally:
        admin.close()


def true_end_offsets(
    settings: Settings, ends: dict[Any, int], timeout: float = 5.0
) -> dict[Any, int]:
    """The offset after the last record of each partition, from the ends a broker listed.

    Reads each partition from its listed end minus one: the consumer's position after that
    last batch is the true end (the listed end itself on a broker that lists it right).
    """
    from kafka import KafkaConsumer, TopicPartition

    probed = {tp: end for tp, end in ends.items() if end}
    if not probed:
        return dict(ends)
    consumer = kafka_client(
        KafkaConsumer,
        settings,
        client_id=f"{settings.app_id}-end-probe",
        group_id=None,
        enable_auto_commit=False,
    )
    try:
        tps = {tp: TopicPartition(tp.topic, tp.partition) for tp in probed}
        consumer.assign(list(tps.values()))
        for tp, end in probed.items():
            consumer.seek(tps[tp], end - 1)
        result = dict(ends)
        pending = set(probed)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            consumer.poll(timeout_ms=200)
            for tp in list(pending):
                position = consumer.position(tps[tp])
                if position is not None and position >= probed[tp]:
                    result[tp] = position
                    pending.discard(tp)
        if pending:
            log.warning("could not confirm the end offsets of %s", sorted(map(str, pending)))
        return result
    finally:
        consumer.close()
