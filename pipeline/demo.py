"""`leadflow demo`: embedded broker, one worker, simulated traffic, SQLite, then the report."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from leadflow.pipeline.kafka.broker import EmbeddedBroker, free_port, port_answers
from leadflow.pipeline.publish.publishing import send_simulated, simulated_traffic
from leadflow.pipeline.settings import Settings, redact_url
from leadflow.schemas.errors import LeadflowError


class WorkerProcess:
    """A `leadflow worker` child process, watched through its /health and /metrics pages."""

    def __init__(self, settings: Settings, log_path: Path, env: dict[str, str]) -> None:
        self.settings = settings
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "leadflow",
                "worker",
                "--loglevel",
                os.environ.get("LEADFLOW_WORKER_LOGLEVEL", "warning"),
            ],
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.web_port}"

    def _get(self, path: str) -> str | None:
        try:
            with urllib.request.urlopen(self.base_url + path, timeout=2) as response:
                body: bytes = response.read()
                return body.decode()
        except (urllib.error.URLError, OSError):
            return None

    def wait_ready(self, timeout: float) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            self._check_alive()
            if self._get("/health") is not None:
                return time.monotonic() - started
            time.sleep(0.2)
        raise LeadflowError(f"the worker was not ready within {timeout:g}s; see {self.log_path}")

    def metric(self, name: str) -> float | None:
        """The sum of a metric's samples named exactly ``name`` (None: not exported)."""
        text = self._get("/metrics")
        if text is None:
            return None
        values = [
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name
        ]
        return sum(values) if values else None

    def processed(self) -> int:
        """Input messages the worker has finished (written and emitted), from its metrics."""
        return int(self.metric("leadflow_events_total") or 0)

    def wait_processed(self, expected: int, timeout: float) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            self._check_alive()
            if self.processed() >= expected:
                return time.monotonic() - started
            time.sleep(0.25)
        raise LeadflowError(
            f"the worker processed {self.processed()} of {expected} messages within "
            f"{timeout:g}s; see {self.log_path}"
        )

    def _check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise LeadflowError(
                f"the worker exited with code {self.proc.returncode}; see {self.log_path}"
            )

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _free_or(host: str, port: int) -> int:
    return free_port(host) if port_answers(host, port) else port


def fresh_store(database_url: str, keep_store: bool) -> str | None:
    """Make the demo start from an empty store; the sentence saying what was done, or None.

    A SQLite file is moved aside to ``<file>.previous`` (replacing an older one); any other
    database is never emptied, so the demo needs ``--keep-store`` to add to it.
    """
    if keep_store:
        return None
    if not database_url.startswith("sqlite:///"):
        raise LeadflowError(
            "the demo adds to the non-SQLite store in LEADFLOW_DATABASE_URL only with --keep-store"
        )
    path = Path(database_url.removeprefix("sqlite:///").split("?", 1)[0])
    if not path.exists():
        return None
    previous = path.with_name(path.name + ".previous")
    path.replace(previous)
    for suffix in ("-wal", "-shm", "-journal"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    return f"fresh store: the previous {path} is now {previous} (--keep-store adds to it instead)"


def run_demo(
    settings: Settings, leads: int, seed: int, keep_running: bool, keep_store: bool = False
) -> int:
    """Run the whole product once on this machine and print the shared report."""
    from leadflow.pipeline.reporting import run_report

    console = Console(stderr=True)
    moved = fresh_store(settings.database_url, keep_store)
    if moved:
        console.print(moved, markup=False, highlight=False)
    started = time.monotonic()
    host, _, port_text = settings.bootstrap_servers[0].rpartition(":")
    port = _free_or(host, int(port_text))
    web_port = _free_or("127.0.0.1", settings.web_port)
    workdir = Path(tempfile.mkdtemp(prefix="leadflow-demo-"))
    demo = settings.model_copy(update={"broker": f"kafka://{host}:{port}", "web_port": web_port})
    env = {
        "LEADFLOW_BROKER": demo.broker,
        "LEADFLOW_WEB_PORT": str(web_port),
        "LEADFLOW_DATABASE_URL": demo.database_url,
        "LEADFLOW_SESSION_TIMEOUT": "2",
    }
    broker = EmbeddedBroker(host, port, settings.tansu_bin, log_path=str(workdir / "broker.log"))
    worker: WorkerProcess | None = None
    # SIGTERM stops the demo like Ctrl-C does, so its broker and worker are stopped too.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        broker.start()
        console.print(f"[green]broker[/] embedded Tansu on {host}:{port} (memory only)")
        worker = WorkerProcess(demo, workdir / "worker.log", env)
        ready = worker.wait_ready(60)
        console.print(
            f"[green]worker[/] ready in {ready:.1f}s, metrics at {worker.base_url}/metrics"
        )
        messages = simulated_traffic(leads, seed)
        publish_started = time.monotonic()
        send_simulated(demo, messages, rate=0)
        console.print(f"[green]simulate[/] {len(messages)} messages for {leads} leads published")
        worker.wait_processed(len(messages), timeout=max(90.0, len(messages) / 200))
        elapsed = time.monotonic() - publish_started
        console.print(
            f"[green]caught up[/] {len(messages)} messages in {elapsed:.1f}s "
            f"({len(messages) / elapsed:,.0f} messages/s); total {time.monotonic() - started:.1f}s"
        )
        console.print(f"database: {_describe_database(demo.database_url)}", markup=False)
        run_report(demo.store_url, "table", sys.stdout)
        if keep_running:
            console.print(
                f"serving {worker.base_url}/metrics and /health until Ctrl-C ...", highlight=False
            )
            console.print(f"dashboard: {worker.base_url}/dashboard", highlight=False)
            while worker.proc.poll() is None:
                time.sleep(0.5)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not cut cleanup
        if worker is not None:
            worker.stop()
        broker.stop()


def _describe_database(url: str) -> str:
    if url.startswith("sqlite:///"):
        return str(Path(url.removeprefix("sqlite:///")).resolve())
    return redact_url(url)
