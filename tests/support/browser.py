"""Chromium for the browser tests, and waiting for a page to answer."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from leadflow.pipeline.kafka.broker import free_port

CHROMIUM = os.environ.get("LEADFLOW_TEST_CHROMIUM", "/usr/bin/chromium")


ARTIFACTS = Path(
    os.environ.get("LEADFLOW_TEST_ARTIFACTS", Path(__file__).parent.parent / "test-artifacts")
)


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout}s")


@contextlib.contextmanager
def dashboard_process(database_url: str, log_path: Path, timeout: float) -> Iterator[str]:
    """`leadflow dashboard` on ``database_url`` as a child process; yields its /dashboard URL."""
    port = free_port()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "leadflow", "dashboard", "--port", str(port)],
            env={**os.environ, "LEADFLOW_DATABASE_URL": database_url},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/dashboard", timeout)
            yield f"http://127.0.0.1:{port}/dashboard"
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
