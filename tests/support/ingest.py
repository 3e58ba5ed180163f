"""An `leadflow ingest` child process for the tests: started, probed and killed by its PID."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from leadflow.pipeline.kafka.broker import EmbeddedBroker, free_port

TOKENS = {"mkt": "marketing", "crm": "sales", "ops": "all"}
SECRETS = {name: f"tok-{name}-0123456789abcdef" for name in TOKENS}


@dataclass
class Answer:
    status: int
    body: dict[str, Any]


def write_tokens(path: Path) -> Path:
    lines = ["# name scope token", ""]
    lines += [f"{name} {scope} {SECRETS[name]}" for name, scope in TOKENS.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class IngestProcess:
    """`python -m leadflow ingest` against a broker, on a free loopback port."""

    def __init__(self, broker: EmbeddedBroker, tmp: Path, **env: str) -> None:
        self.port = free_port()
        self.log_path = tmp / f"ingest-{self.port}.log"
        variables = {
            "LEADFLOW_BROKER": broker.url,
            "LEADFLOW_INGEST_PORT": str(self.port),
            "LEADFLOW_INGEST_TOKENS": str(write_tokens(tmp / "tokens.txt")),
            **env,
        }
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "leadflow", "ingest"],
                env={**os.environ, **variables},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def health(self) -> int:
        return self.request("GET", "/v1/health").status

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"ingest exited: {self.log_path.read_text()}")
            try:
                if self.health() == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"ingest not healthy after {timeout:g}s: {self.log_path.read_text()}")

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> Answer:
        req = urllib.request.Request(self.url + path, data=body, method=method)
        for name, value in (headers or {}).items():
            req.add_header(name, value)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                return Answer(response.status, _json(response.read()))
        except urllib.error.HTTPError as error:
            return Answer(error.code, _json(error.read()))

    def post_events(
        self,
        token: str | None,
        body: bytes,
        content_type: str = "application/json",
        gzipped: bool = False,
    ) -> Answer:
        headers = {"Content-Type": content_type}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if gzipped:
            headers["Content-Encoding"] = "gzip"
            body = gzip.compress(body)
        return self.request("POST", "/v1/events", body, headers)

    def metrics(self) -> str:
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as response:
            text: str = response.read().decode()
            return text

    def sigkill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.sigkill()


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {"raw": raw.decode(errors="replace")}
    return value if isinstance(value, dict) else {"value": value}


def array(values: Sequence[bytes]) -> bytes:
    return b"[" + b",".join(values) + b"]"


def json_lines(values: Sequence[bytes]) -> bytes:
    return b"\n".join(values) + b"\n"


def topic_values(broker: EmbeddedBroker, topics: Sequence[str], partitions: int) -> list[bytes]:
    """Every value on the topics, read from the beginning (three idle seconds end it)."""
    consumer = KafkaConsumer(
        bootstrap_servers=broker.url.removeprefix("kafka://"),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=3000,
    )
    consumer.assign([TopicPartition(t, p) for t in topics for p in range(partitions)])
    values = [record.value for record in consumer]
    consumer.close()
    return values
