"""Liveness apart from readiness: /live is 200 while the worker process runs, also while /health
(readiness) is 503; with LEADFLOW_WORKER_DASHBOARD=false the worker serves no dashboard."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from leadflow.pipeline.demo import WorkerProcess
from leadflow.pipeline.kafka.broker import EmbeddedBroker, free_port
from leadflow.pipeline.settings import Settings

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return None


def _start(broker: EmbeddedBroker, tmp_path: Path) -> WorkerProcess:
    variables = {
        "LEADFLOW_BROKER": broker.url,
        "LEADFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}",
        "LEADFLOW_WEB_PORT": str(free_port()),
        "LEADFLOW_SESSION_TIMEOUT": "3",
        "LEADFLOW_WORKER_DASHBOARD": "false",
    }
    settings = Settings(**{k.removeprefix("LEADFLOW_").lower(): v for k, v in variables.items()})
    return WorkerProcess(settings, tmp_path / "worker.log", variables)


def test_live_answers_while_not_ready_and_no_dashboard(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    worker = _start(broker, tmp_path)
    try:
        seen: set[tuple[int | None, int | None]] = set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (200, 200) not in seen:
            assert worker.proc.poll() is None, worker.log_path.read_text()
            live = _status(worker.base_url + "/live")
            if live is not None:
                seen.add((live, _status(worker.base_url + "/health")))
            time.sleep(0.05)
        assert (200, 200) in seen, seen  # ready in the end
        assert (200, 503) in seen, seen  # alive while not ready: no restart for it
        assert {live for live, _ in seen} == {200}
        assert _status(worker.base_url + "/dashboard") == 404
    finally:
        worker.stop()
