"""What the worker holds per lead: the table value must stay close to its encoded length."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from leadflow.agents.batch import fold_batch
from leadflow.agents.codec import decode_state, encode_state
from leadflow.agents.facts import Fact, to_micros
from leadflow.agents.fold import FoldConfig, Header
from leadflow.schemas.vocabulary import TYPE_RANK

NOW = datetime(2026, 6, 1, tzinfo=UTC)
CONFIG = FoldConfig(sla_seconds=86_400.0, recycle_reasons=frozenset({"not_now"}))


def created(lead: int) -> tuple[str, Fact]:
    at = to_micros(NOW - timedelta(days=3, seconds=lead))
    lead_id = f"lead-{lead:07d}"
    return lead_id, Fact(at, TYPE_RANK["lead.created"], f"{lead_id}-c", "paid_search", "cmp-01")


def held_per_item(make: Callable[[int], bytes], count: int) -> tuple[float, list[bytes]]:
    """Bytes traced per item for ``count`` items made by ``make`` and kept alive."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [make(i) for i in range(count)]
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return held / count, kept


def test_a_table_value_is_allocated_at_its_own_size() -> None:
    # orjson 3.12+ hands out bytes in a buffer of at least 4 KiB; kept per lead that was
    # 4 KiB for ~100 bytes of JSON (some 400 MB per 100,000 leads).
    header = Header("new", False, None, "")

    def value(i: int) -> bytes:
        return encode_state(header, [created(i)[1]])

    per_value, kept = held_per_item(value, 2_000)
    length = len(kept[0])
    assert length < 200
    assert per_value < length + 100, f"{per_value:.0f} B held for a {length} B value"
    assert decode_state(kept[0]) == (header, [created(0)[1]])


def test_the_state_of_many_leads_costs_a_few_hundred_bytes_each() -> None:
    """Folding new leads into a table: what stays is the table's keys and values only."""
    leads = 20_000
    table: dict[str, bytes] = {}

    def run() -> None:
        for start in range(0, leads, 2_000):
            batch = [created(i) for i in range(start, start + 2_000)]
            result = fold_batch(batch, table.get, CONFIG, NOW)
            for update in result.updates:
                table[update.lead_id] = update.state

    gc.collect()
    tracemalloc.start()
    try:
        run()
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(table) == leads
    per_lead = held / leads
    assert per_lead < 400, f"{per_lead:.0f} B per lead"
