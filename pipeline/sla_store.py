"""Whether the store was computed with this worker's SLA policies (docs/contract.md, 8)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from leadflow.agents.fold import FoldConfig, sla_fingerprint
from leadflow.sinks.engine import WRITE_OPTION
from leadflow.sinks.settings import claim_fingerprint

log = logging.getLogger("leadflow")


def check_sla_policies(store: Engine, config: FoldConfig) -> dict[str, Any]:
    """{"fingerprint", "store", "matches"}; an empty store records ours. One warning on a mismatch.

    ``store`` is None when the store has rows but never recorded a fingerprint.
    """
    ours = sla_fingerprint(config)
    with store.connect() as conn:
        conn = conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            theirs = claim_fingerprint(conn, ours, datetime.now(UTC))
    matches = theirs == ours
    if not matches:
        log.warning(
            "SLA policies differ from the store's: this worker's fingerprint is %s, the store"
            " was computed with %s; stop the workers and run `leadflow rebuild` to restate"
            " every cycle with this file",
            ours,
            theirs or "an unrecorded one",
        )
    return {"fingerprint": ours, "store": theirs, "matches": matches}
