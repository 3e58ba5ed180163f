"""The one frozen settings object, read from LEADFLOW_* variables (docs/contract.md, section 1)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from leadflow.agents.fold import FoldConfig
from leadflow.agents.sla.policies import PolicyError, load_policies
from leadflow.schemas.errors import SettingsError
from leadflow.schemas.records import TopicNames
from leadflow.schemas.vocabulary import DEFAULT_RECYCLE_REASONS

Compression = Literal["none", "gzip", "snappy", "lz4", "zstd"]
# Kafka's codec ids, the low three bits of a record batch's attributes.
CODEC_IDS: dict[str, int] = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


class Settings(BaseSettings):
    """Every knob of leadflow; immutable once read."""

    model_config = SettingsConfigDict(env_prefix="LEADFLOW_", frozen=True, extra="ignore")

    broker: str = "kafka://127.0.0.1:9092"
    database_url: str = Field(default="sqlite:///leadflow.db", repr=False)
    app_id: str = Field(default="leadflow", min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    web_port: int = Field(default=6066, ge=0, le=65535)
    partitions: int = Field(default=8, ge=1, le=10_000)
    sla_hours: float = Field(default=24.0, gt=0)
    recycle_reasons: Annotated[tuple[str, ...], NoDecode] = DEFAULT_RECYCLE_REASONS
    sla_policies: str | None = None  # a YAML file of SLA policies; replaces sla_hours
    topic_marketing: str = Field(default="marketing-leads", min_length=1)
    topic_sales: str = Field(default="sales-outcomes", min_length=1)
    topic_lifecycle: str = Field(default="lead-lifecycle", min_length=1)
    topic_dead_letters: str = Field(default="lead-dead-letters", min_length=1)
    tansu_bin: str | None = None
    # Beyond the contract's table: tuning with safe defaults.
    web_host: str = "127.0.0.1"
    # The worker serves /dashboard beside /metrics; deployments serve it apart (`leadflow
    # dashboard` behind a login) and turn this off.
    worker_dashboard: bool = True
    replication_factor: int = Field(default=1, ge=1)
    session_timeout: float = Field(default=10.0, ge=1.0, le=300.0)
    batch_size: int = Field(default=2000, ge=1, le=100_000)
    batch_seconds: float = Field(default=0.1, gt=0, le=10.0)
    fetch_max_wait_ms: int = Field(default=100, ge=0, le=10_000)
    store_retry_max_seconds: float = Field(default=30.0, gt=0)
    sla_check_seconds: float = Field(default=1.0, gt=0, le=3600)
    # A lead's further new events are dead-lettered past this count (README, "Limits").
    max_events_per_lead: int = Field(default=10_000, ge=1, le=100_000)
    # Secrets: SecretStr never prints its value (repr, logs, errors).
    database_password: SecretStr | None = None
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    goals_refresh_seconds: float = Field(default=15.0, gt=0, le=3600)
    # HTTP ingestion (contract section 9).
    ingest_host: str = "127.0.0.1"
    ingest_port: int = Field(default=6068, ge=0, le=65535)
    ingest_tokens: str | None = None
    ingest_presets: str | None = None
    ingest_max_events: int = Field(default=5000, ge=1, le=100_000)
    ingest_publish_timeout: float = Field(default=30.0, gt=0, le=300)

    # The codec of every record batch leadflow produces (publish, simulate, the worker's output).
    compression: Compression = "none"

    @field_validator("compression", mode="before")
    @classmethod
    def _lower_compression(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

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
            shown = redact_url(value)
            raise ValueError(f"expected a sqlite:// or postgresql+psycopg:// URL, got {shown!r}")
        authority = value.partition("://")[2].split("/", 1)[0]
        if authority.count("@") > 1:
            raise ValueError(
                "the password holds '@': write it as %40, or set LEADFLOW_DATABASE_PASSWORD"
            )
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            port = make_url(value).port
        except (ValueError, ArgumentError):
            raise ValueError("the URL does not parse: check its port and quoting") from None
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"port {port} is out of range: use 1 to 65535")
        return value

    @property
    def store_url(self) -> str:
        """The database URL with LEADFLOW_DATABASE_PASSWORD put in: for engines, never for print."""
        if self.database_password is None:
            return self.database_url
        from sqlalchemy.engine import make_url

        url = make_url(self.database_url).set(password=self.database_password.get_secret_value())
        return url.render_as_string(hide_password=False)

    @property
    def store_shown(self) -> str:
        """The database URL as it may be shown: any password masked."""
        return redact_url(self.database_url)

    def kafka_python_options(self) -> dict[str, Any]:
        """Security options for kafka-python clients (publisher, admin)."""
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.security_protocol.startswith("SASL"):
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            if self.sasl_password is not None:
                options["sasl_plain_password"] = self.sasl_password.get_secret_value()
        if self.security_protocol.endswith("SSL"):
            options.update(
                ssl_cafile=self.ssl_cafile,
                ssl_certfile=self.ssl_certfile,
                ssl_keyfile=self.ssl_keyfile,
            )
        return options

    @property
    def compression_type(self) -> str | None:
        """The codec as kafka-python, aiokafka and Faust name it: None for no compression."""
        return None if self.compression == "none" else self.compression

    @property
    def codec_id(self) -> int:
        """The codec's id in a record batch's attributes."""
        return CODEC_IDS[self.compression]

    def faust_credentials(self) -> Any:
        """Faust's ``broker_credentials`` (aiokafka underneath), or None for PLAINTEXT."""
        import faust

        context = None
        if self.security_protocol.endswith("SSL"):
            import ssl

            context = ssl.create_default_context(cafile=self.ssl_cafile)
            if self.ssl_certfile:
                context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        if self.security_protocol.startswith("SASL"):
            password = self.sasl_password.get_secret_value() if self.sasl_password else None
            return faust.SASLCredentials(
                username=self.sasl_username,
                password=password,
                mechanism=self.sasl_mechanism,
                ssl_context=context,
            )
        return faust.SSLCredentials(context) if context is not None else None

    def topic_names(self) -> TopicNames:
        """Every topic this pipeline reads or writes."""
        return TopicNames.for_app(
            self.app_id,
            self.topic_marketing,
            self.topic_sales,
            self.topic_lifecycle,
            self.topic_dead_letters,
        )

    def fold_config(self) -> FoldConfig:
        """What the fold needs: the SLA clock (or the policy file, read now) and reasons."""
        policies = None
        if self.sla_policies:
            try:
                policies = load_policies(self.sla_policies)
            except PolicyError as error:
                raise SettingsError(f"LEADFLOW_SLA_POLICIES: {error}") from None
            except OSError as error:
                raise SettingsError(
                    f"LEADFLOW_SLA_POLICIES: cannot read {self.sla_policies} ({error.strerror})"
                ) from None
        return FoldConfig(self.sla_seconds, frozenset(self.recycle_reasons), policies)

    @property
    def sla_seconds(self) -> float:
        return self.sla_hours * 3600.0

    @property
    def bootstrap_servers(self) -> list[str]:
        """The broker list as host:port strings, for kafka-python and aiokafka."""
        return broker_servers(self.broker)


def redact_url(url: str) -> str:
    """A database URL with its password masked, whatever characters the password holds.

    The user info is everything between ``://`` and the last ``@``, so a password holding ``@``,
    ``:`` or ``/`` is masked whole; a ``password=`` query parameter is masked too.
    """
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        userinfo, _, host = rest.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        rest = f"{user}:***@{host}" if colon else f"{userinfo}@{host}"
    shown = f"{scheme}{sep}{rest}"
    return _PASSWORD_PARAMETER.sub(r"\1***", shown)


_PASSWORD_PARAMETER = re.compile(r"([?&]password=)[^&]*", re.IGNORECASE)


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


_SECRET_VARIABLES = {
    "LEADFLOW_DATABASE_PASSWORD",
    "LEADFLOW_SASL_PASSWORD",
    "LEADFLOW_DATABASE_URL",
}


def load_settings(**overrides: object) -> Settings:
    """Read the settings; a validation failure becomes one sentence naming each bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = "LEADFLOW_" + "_".join(str(part) for part in err["loc"][:1]).upper()
            shown = "(secret)" if name in _SECRET_VARIABLES else repr(err.get("input"))
            problems.append(f"{name}: {err['msg']} (got {shown})")
        raise SettingsError("invalid setting " + "; ".join(problems)) from None
