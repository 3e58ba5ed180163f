"""Fault injection for the reliability tests: a loopback TCP proxy, kills, store checks.

Everything here talks to loopback only and stops what it started by PID or by socket.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import selectors
import signal
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, text

from leadflow.agents.facts import Fact, canonical
from leadflow.agents.fold import FoldConfig, fold
from leadflow.pipeline.demo import WorkerProcess
from leadflow.schemas.classify import classify
from leadflow.schemas.events import BaseEvent
from leadflow.schemas.records import LeadSnapshot
from leadflow.schemas.vocabulary import UNKNOWN
from leadflow.sinks import make_engine
from tests.support.queries import (
    funnel_groupby,
    funnel_rows,
    revenue_groupby,
    revenue_rows,
    table_rows,
)

CONFIG = FoldConfig(24 * 3600.0, frozenset({"not_now", "nurture", "no_budget", "timing"}))


# -- a loopback TCP proxy that can be cut -----------------------------------------------------


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; ``cut()`` resets every connection and refuses new
    ones (the store is unreachable), ``restore()`` listens again on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.accepted = 0
        self._listener: socket.socket | None = None
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> TcpProxy:
        self._listen()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="tcp-proxy", daemon=True)
        self._thread.start()
        return self

    def _listen(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        with self._lock:
            self._listener = sock

    def cut(self) -> None:
        """Stop listening and reset every open connection (RST, like a dead peer)."""
        with self._lock:
            listener, self._listener = self._listener, None
            pairs, self._pairs = self._pairs, []
        if listener is not None:
            listener.close()
        for a, b in pairs:
            for s in (a, b):
                _reset(s)

    def restore(self) -> None:
        self._listen()

    def close(self) -> None:
        self._stop.set()
        self.cut()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                listener = self._listener
                pairs = list(self._pairs)
            sel = selectors.DefaultSelector()
            try:
                if listener is not None:
                    sel.register(listener, selectors.EVENT_READ, None)
                for a, b in pairs:
                    sel.register(a, selectors.EVENT_READ, b)
                    sel.register(b, selectors.EVENT_READ, a)
            except (ValueError, OSError):
                sel.close()
                continue
            try:
                ready = sel.select(0.05)
            except (ValueError, OSError):
                ready = []
            for key, _ in ready:
                sock: Any = key.fileobj
                if key.data is None:
                    self._accept(sock)
                else:
                    self._pipe(sock, key.data)
            sel.close()

    def _accept(self, listener: socket.socket) -> None:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            _reset(client)
            return
        client.setblocking(False)
        upstream.setblocking(False)
        with self._lock:
            if self._listener is None:  # cut meanwhile
                _reset(client)
                _reset(upstream)
                return
            self._pairs.append((client, upstream))
            self.accepted += 1

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            data = src.recv(65536)
            if data:
                dst.setblocking(True)
                dst.sendall(data)
                dst.setblocking(False)
                return
        except OSError:
            pass
        with self._lock:
            self._pairs = [p for p in self._pairs if src not in p]
        src.close()
        dst.close()


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


# -- processes -------------------------------------------------------------------------------


def sigkill(worker: WorkerProcess) -> None:
    """kill -9 the worker by its PID and reap it."""
    os.kill(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait(10)


def wait_for(what: str, check: Callable[[], bool], timeout: float, every: float = 0.1) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def metric(worker: WorkerProcess, name: str) -> float:
    return worker.metric(name) or 0.0


# -- what the store must hold ------------------------------------------------------------------


@dataclass
class Expected:
    """The pure fold over a set of raw messages: every table the store must hold."""

    leads: dict[str, LeadSnapshot]
    invalid: int
    messages: int
    events: int = field(init=False)

    def __post_init__(self) -> None:
        self.events = sum(s.lifecycle["event_count"] for s in self.leads.values())


def expected_of(
    messages: Iterable[tuple[str, bytes | None]], now: datetime, config: FoldConfig = CONFIG
) -> Expected:
    """``messages`` are (topic kind, raw value); classify and fold them as the contract says.

    Copies of one ``event_id`` with other content (another lead too) are one event: the copy
    whose canonical JSON sorts first goes to its lead, and every other distinct copy is one
    ``conflicting_duplicate`` dead letter. Every other lead that sent a copy lost the event
    (section 7, lead_retractions): it is folded without it, and a lead left with no event has
    no rows. Its version counts one lost copy: exact when each lead sends one copy of an id
    (with several, how many of them the store records as lost depends on their order), and
    every copy of a lead but its own that sorts first counts as a copy it beat.
    """
    copies: dict[str, dict[bytes, tuple[str, Fact]]] = defaultdict(dict)
    invalid = total = 0
    for kind, value in messages:
        total += 1
        verdict = classify(value, kind, now)
        if isinstance(verdict, BaseEvent):
            fact = Fact.from_event(verdict)
            copies[fact.event_id][canonical(verdict.lead_id, fact)] = (verdict.lead_id, fact)
        else:
            invalid += 1
    facts: dict[str, list[Fact]] = defaultdict(list)
    lost: dict[str, dict[str, set[str]]] = defaultdict(dict)
    beaten: dict[str, dict[str, set[str]]] = defaultdict(dict)
    for event_id, distinct in copies.items():
        lead_id, fact = distinct[min(distinct)]
        facts[lead_id].append(fact)
        invalid += len(distinct) - 1
        for key in sorted(distinct, reverse=True):  # each lead's copy that sorts first
            loser, _ = distinct[key]
            if loser != lead_id:
                lost[loser][event_id] = {hashlib.sha256(key).hexdigest()}
        for lead, keys in _by_lead(distinct).items():  # beaten by the lead's own first copy
            if len(keys) > 1:
                beaten[lead][event_id] = {hashlib.sha256(key).hexdigest() for key in keys[1:]}
    leads = {
        lead: fold(lead, facts.get(lead, []), config, now, lost.get(lead), beaten.get(lead))
        for lead in {*facts, *lost}
    }
    kept = {lead: snap for lead, snap in leads.items() if snap.lifecycle["event_count"]}
    return Expected(kept, invalid, total)


def _by_lead(distinct: dict[bytes, tuple[str, Fact]]) -> dict[str, list[bytes]]:
    """The canonical JSON of each lead's copies, in sort order."""
    found: dict[str, list[bytes]] = defaultdict(list)
    for key in sorted(distinct):
        found[distinct[key][0]].append(key)
    return found


def store_totals(url: str) -> tuple[int, int]:
    """(sum of event_count over lead_lifecycle, rows of dead_letters)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            events = conn.execute(text("SELECT coalesce(sum(event_count), 0) FROM lead_lifecycle"))
            letters = conn.execute(text("SELECT count(*) FROM dead_letters"))
            return int(events.scalar_one()), int(letters.scalar_one())
    finally:
        engine.dispose()


def wait_store(
    url: str,
    expected: Expected,
    timeout: float,
    workers: Sequence[WorkerProcess] = (),
    retracted: int = 0,
) -> float:
    """Wait until the store holds every accepted event and every dead letter (never more, but
    for up to ``retracted`` events a losing lead counts until its retraction is folded)."""
    started = time.monotonic()
    last = (0, 0)
    while time.monotonic() - started < timeout:
        for worker in workers:
            if worker.proc.poll() is not None:
                raise AssertionError(
                    f"worker exited with {worker.proc.returncode}; see {worker.log_path}"
                )
        last = store_totals(url)
        assert last[0] <= expected.events + retracted, f"more events in the store than sent: {last}"
        assert last[1] <= expected.invalid, f"more dead letters than invalid messages: {last}"
        if last == (expected.events, expected.invalid):
            return time.monotonic() - started
        time.sleep(0.25)
    raise AssertionError(
        f"store has (events, dead letters) {last}, expected "
        f"{(expected.events, expected.invalid)} after {timeout:g}s"
    )


def _funnel_of(leads: dict[str, LeadSnapshot]) -> set[tuple[Any, ...]]:
    counts: Counter[tuple[Any, ...]] = Counter()
    for snap in leads.values():
        source = snap.lifecycle["source"] or UNKNOWN
        campaign = snap.lifecycle["campaign_id"] or UNKNOWN
        for t in snap.transitions:
            counts[(t["entered_at"].date(), source, campaign, t["stage"])] += 1
    return {(*key, n) for key, n in counts.items()}


def _revenue_of(leads: dict[str, LeadSnapshot]) -> set[tuple[Any, ...]]:
    groups: dict[tuple[Any, ...], list[Decimal]] = defaultdict(list)
    for snap in leads.values():
        life = snap.lifecycle
        if life["stage"] != "won":
            continue
        key = (
            life["won_at"].date(),
            life["source"] or UNKNOWN,
            life["campaign_id"] or UNKNOWN,
            life["currency"] or UNKNOWN,
        )
        groups[key].append(Decimal(life["amount"] or 0))
    return {
        (*key, len(v), sum(v, Decimal(0)).quantize(Decimal("0.01"))) for key, v in groups.items()
    }


def dump(url: str) -> dict[str, list[dict[str, Any]]]:
    engine = make_engine(url)
    try:
        return {
            table: table_rows(engine, table)
            for table in (
                "lead_lifecycle",
                "lead_stage_transitions",
                "handoff_sla",
                "funnel_daily",
                "revenue_daily",
                "dead_letters",
            )
        }
    finally:
        engine.dispose()


def assert_store_equals(url: str, expected: Expected) -> None:
    """Every contract table equals the pure fold (updated_at, received_at aside)."""
    engine: Engine = make_engine(url)
    try:
        leads = {row["lead_id"]: row for row in table_rows(engine, "lead_lifecycle")}
        transitions = table_rows(engine, "lead_stage_transitions")
        slas = table_rows(engine, "handoff_sla")
        letters = table_rows(engine, "dead_letters")
        funnel, funnel_sql = funnel_rows(engine), funnel_groupby(engine)
        revenue, revenue_sql = revenue_rows(engine), revenue_groupby(engine)
    finally:
        engine.dispose()
    assert set(leads) == set(expected.leads), "the store's leads differ from the fold's"
    wrong = []
    for lead_id, snap in expected.leads.items():
        row = dict(leads[lead_id])
        row.pop("updated_at")
        if row != snap.lifecycle:
            wrong.append((lead_id, row, snap.lifecycle))
    assert not wrong, f"{len(wrong)} lead_lifecycle rows differ, first: {wrong[0]}"

    def key(t: dict[str, Any]) -> tuple[Any, ...]:
        return (t["lead_id"], t["cycle_no"], t["stage"], t["entered_at"], t["inferred"])

    want_t = sorted(key(t) for s in expected.leads.values() for t in s.transitions)
    assert sorted(key(t) for t in transitions) == want_t, "lead_stage_transitions differ"
    want_sla = sorted(tuple(sorted(r.items())) for s in expected.leads.values() for r in s.sla)
    assert sorted(tuple(sorted(r.items())) for r in slas) == want_sla, "handoff_sla differs"
    assert funnel == _funnel_of(expected.leads), "funnel_daily differs from the fold"
    assert funnel == funnel_sql, "funnel_daily differs from its GROUP BY"
    assert revenue == _revenue_of(expected.leads), "revenue_daily differs from the fold"
    assert revenue == revenue_sql, "revenue_daily differs from its GROUP BY"
    assert len(letters) == expected.invalid, "dead_letters count differs"


# -- publishing with positions -----------------------------------------------------------------


def publish_positions(
    bootstrap: str, messages: Sequence[tuple[str, bytes | None, bytes]]
) -> list[tuple[str, int, int]]:
    """Publish (topic, key, value); return each message's (topic, partition, offset)."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        batch_size=256 * 1024,
        max_request_size=4 * 1024 * 1024,
    )
    try:
        futures = [producer.send(t, key=k, value=v) for t, k, v in messages]
        producer.flush(60)
        out = []
        for future in futures:
            meta = future.get(timeout=30)
            out.append((meta.topic, meta.partition, meta.offset))
        return out
    finally:
        producer.close(10)


TOPIC_OF = {"marketing": "marketing-leads", "sales": "sales-outcomes"}
