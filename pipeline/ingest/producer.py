"""The ingest producer: aiokafka on the service's event loop, acks from all in-sync replicas."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from leadflow.pipeline.kafka.topics import ensure_topics
from leadflow.pipeline.settings import Settings

log = logging.getLogger(__name__)

Outgoing = tuple[str, bytes, bytes]
HEALTH_TIMEOUT = 5.0
_MESSAGE_BYTES = 2 * 1024 * 1024


class PublishTimeout(Exception):
    """The broker did not acknowledge every message of a request in time."""


def _security(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {"security_protocol": settings.security_protocol}
    if settings.security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        if settings.sasl_password is not None:
            options["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    if settings.security_protocol.endswith("SSL"):
        import ssl

        context = ssl.create_default_context(cafile=settings.ssl_cafile)
        if settings.ssl_certfile:
            context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile)
        options["ssl_context"] = context
    return options


class IngestProducer:
    """Starts once the broker answers; until then every publish and health check says no."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.names = settings.topic_names()
        self._producer: Any = None
        self._starting: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return self._producer is not None

    def topic(self, topic_kind: str) -> str:
        return self.names.marketing if topic_kind == "marketing" else self.names.sales

    def begin(self) -> None:
        """Start connecting in the background, retrying until the broker answers."""
        self._starting = asyncio.get_running_loop().create_task(self._start_until_up())

    async def _start_until_up(self) -> None:
        while self._producer is None:
            try:
                await self._start_once()
            except Exception as exc:
                log.warning("broker not reachable yet (%s); retrying", exc)
                await asyncio.sleep(1.0)

    async def _start_once(self) -> None:
        from aiokafka import AIOKafkaProducer

        await asyncio.to_thread(ensure_topics, self.settings, 10.0)
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap_servers,
            client_id=f"{self.settings.app_id}-ingest",
            acks="all",
            compression_type=self.settings.compression_type,
            linger_ms=2,
            max_request_size=_MESSAGE_BYTES,
            request_timeout_ms=int(self.settings.ingest_publish_timeout * 1000),
            **_security(self.settings),
        )
        try:
            await producer.start()
        except Exception:
            await producer.stop()
            raise
        self._producer = producer

    async def publish(self, messages: Sequence[Outgoing]) -> None:
        """Send (topic kind, key, value) and return once all are acknowledged; else raise."""
        if self._producer is None:
            raise PublishTimeout("the broker has not answered since ingest started")
        try:
            await asyncio.wait_for(self._send_all(messages), self.settings.ingest_publish_timeout)
        except TimeoutError:
            raise PublishTimeout("the broker did not acknowledge in time") from None
        except Exception as exc:
            raise PublishTimeout(f"the broker did not accept a message: {exc}") from None

    async def _send_all(self, messages: Sequence[Outgoing]) -> None:
        futures = [
            await self._producer.send(self.topic(kind), value=value, key=key)
            for kind, key, value in messages
        ]
        await asyncio.gather(*futures)

    async def healthy(self) -> bool:
        """A fresh metadata request answered by the broker."""
        if self._producer is None:
            return False
        try:
            await asyncio.wait_for(self._producer.client.fetch_all_metadata(), HEALTH_TIMEOUT)
        except Exception:
            return False
        return True

    async def close(self) -> None:
        if self._starting is not None:
            self._starting.cancel()
        if self._producer is not None:
            await self._producer.stop()
