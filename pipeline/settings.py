"""The one frozen settings object, read from LEADFLOW_* variables (contract section 1)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlparse

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pipeline.errors import SettingsError

DEFAULT_RECYCLE_REASONS = ("not_now", "nurture", "no_budget", "timing")


class Settings(BaseSettings):
    """Every knob of leadflow; immutable once read."""

    model_config = SettingsConfigDict(env_prefix="LEADFLOW_", frozen=True, extra="ignore")

    broker: str = "kafka://127.0.0.1:9092"
    database_url: str = "sqlite:///leadflow.db"
    app_id: str = Field(default="leadflow", min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    web_port: int = Field(default=6066, ge=0, le=65535)
    partitions: int = Field(default=8, ge=1, le=10_000)
    sla_hours: float = Field(default=24.0, gt=0)
    recycle_reasons: Annotated[tuple[str, ...], NoDecode] = DEFAULT_RECYCLE_REASONS
    topic_marketing: str = Field(default="marketing-leads", min_length=1)
    topic_sales: str = Field(default="sales-outcomes", min_length=1)
    topic_lifecycle: str = Field(default="lead-lifecycle", min_length=1)
    topic_dead_letters: str = Field(default="lead-dead-letters", min_length=1)
    tansu_bin: str | None = None
    # Beyond the contract's table: tuning with safe defaults.
    web_host: str = "127.0.0.1"
    replication_factor: int = Field(default=1, ge=1)
    session_timeout: float = Field(default=10.0, ge=1.0, le=300.0)
    batch_size: int = Field(default=2000, ge=1, le=100_000)
    batch_seconds: float = Field(default=0.1, gt=0, le=10.0)
    store_retry_max_seconds: float = Field(default=30.0, gt=0)
    sla_check_seconds: float = Field(default=1.0, gt=0, le=3600)
    goals_refresh_seconds: float = Field(default=15.0, gt=0, le=3600)

    @field_validator("recycle_reasons", mode="before")
    @classmethod
    def _split_reasons(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("broker")
    @classmethod
    def _check_broker(cls, value: str) -> str:
        for server in broker_servers(value):
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(
                    f"expected host:port entries such as kafka://127.0.0.1:9092, got {server!r}"
                )
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        scheme = urlparse(value).scheme
        if not (scheme.startswith("sqlite") or scheme.startswith("postgresql")):
            raise ValueError(f"expected a sqlite:// or postgresql+psycopg:// URL, got {value!r}")
        return value

    @property
    def sla_seconds(self) -> float:
        return self.sla_hours * 3600.0

    @property
    def bootstrap_servers(self) -> list[str]:
        """The broker list as host:port strings, for kafka-python and aiokafka."""
        return broker_servers(self.broker)


def broker_servers(value: str) -> list[str]:
    """Split a LEADFLOW_BROKER value (``kafka://h1:9092,h2:9092`` or bare) into host:port items."""
    servers = []
    for item in value.split(","):
        item = item.strip()
        if "://" in item:
            item = item.split("://", 1)[1]
        if item:
            servers.append(item.rstrip("/"))
    if not servers:
        raise ValueError("no broker address given")
    return servers


def load_settings(**overrides: object) -> Settings:
    """Read the settings; a validation failure becomes one sentence naming each bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = "LEADFLOW_" + "_".join(str(part) for part in err["loc"][:1]).upper()
            problems.append(f"{name}: {err['msg']} (got {err.get('input')!r})")
        raise SettingsError("invalid setting " + "; ".join(problems)) from None
