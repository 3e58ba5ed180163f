"""Topic names, and creating them up front with the partition counts the contract asks for."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pipeline.errors import BrokerError
from pipeline.settings import Settings
from schemas.events import topic_kind_of

log = logging.getLogger(__name__)
STATE_TABLE = "leads"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class TopicNames:
    """Every topic one pipeline (one ``LEADFLOW_APP_ID``) reads or writes."""

    marketing: str
    sales: str
    lifecycle: str
    dead_letters: str
    rekeyed: str  # internal: events whose key or partition did not match the lead's partition
    changelog: str  # internal: the Faust table of per-lead state

    @classmethod
    def of(cls, settings: Settings) -> TopicNames:
        return cls(
            marketing=settings.topic_marketing,
            sales=settings.topic_sales,
            lifecycle=settings.topic_lifecycle,
            dead_letters=settings.topic_dead_letters,
            rekeyed=f"{settings.app_id}-events-by-lead",
            changelog=f"{settings.app_id}-{STATE_TABLE}-changelog",
        )

    @property
    def inputs(self) -> tuple[str, str]:
        return (self.marketing, self.sales)

    def topic_of(self, event_type: str) -> str:
        """The input topic an (accepted) event of this type came from."""
        return self.marketing if topic_kind_of(event_type) == "marketing" else self.sales

    def kind_of(self, topic: str) -> str:
        """``marketing`` or ``sales`` for an input topic name."""
        return "marketing" if topic == self.marketing else "sales"


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

    names = TopicNames.of(settings)
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
