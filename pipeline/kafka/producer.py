"""Publishing to the input topics with kafka-python (the `publish` and `simulate` commands)."""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Any

from leadflow.pipeline.kafka.topics import kafka_client
from leadflow.pipeline.settings import Settings
from leadflow.schemas.errors import BrokerError


class Publisher:
    """A batching kafka-python producer that sends (topic kind, key, value) to the input topics."""

    def __init__(self, settings: Settings, *, linger_ms: int = 5) -> None:
        from kafka import KafkaProducer

        self.names = settings.topic_names()
        self._producer: Any = kafka_client(
            KafkaProducer,
            settings,
            client_id=f"{settings.app_id}-publisher",
            acks="all",
            compression_type=settings.compression_type,
            linger_ms=linger_ms,
            batch_size=256 * 1024,
            max_request_size=2 * 1024 * 1024,
            request_timeout_ms=30_000,
        )
        self._pending: list[Any] = []

    def topic(self, topic_kind: str) -> str:
        return self.names.marketing if topic_kind == "marketing" else self.names.sales

    def send(
        self, topic_kind: str, key: bytes | None, value: bytes, partition: int | None = None
    ) -> None:
        self._pending.append(
            self._producer.send(self.topic(topic_kind), key=key, value=value, partition=partition)
        )
        if len(self._pending) >= 10_000:
            self._settle()

    def send_all(self, messages: Iterable[tuple[str, bytes | None, bytes]]) -> int:
        count = 0
        for topic_kind, key, value in messages:
            self.send(topic_kind, key, value)
            count += 1
        return count

    def flush(self) -> None:
        self._producer.flush()
        self._settle()

    def _settle(self) -> None:
        from kafka.errors import KafkaError

        pending, self._pending = self._pending, []
        try:
            for future in pending:
                future.get(timeout=30)
        except KafkaError as exc:
            raise BrokerError(f"the broker did not accept a message: {exc}") from None

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._producer.close(timeout=10)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
