"""The audit ledger's hash chain: each entry's hash covers its content and the previous hash.

Pure and deterministic, so the workflow computes it (replays give the same hashes) and the
auditor's check recomputes it from the stored rows.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

GENESIS = "0" * 64


def canonical(content: dict[str, Any]) -> str:
    """Sorted keys, no insignificant whitespace, ISO timestamps: one text for one content."""
    return json.dumps(
        content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


def link(prev_hash: str, content: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical(content)).encode()).hexdigest()
