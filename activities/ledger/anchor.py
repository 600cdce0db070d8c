"""The ledger's anchor: each case's head (last sequence number and hash) signed, and each entry
sealed as it is stored, with a key kept in the deployment's settings, never in the database.
Someone who can write the database but not read that key cannot truncate a case's chain, append
to it, re-hash it or reword an entry without the head or the seal giving it away, long after
Temporal has forgotten the case.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from workflows.care.chain import canonical

DEVELOPMENT_KEY = "followthrough-development-ledger-anchor-key"


@dataclass(frozen=True)
class Anchor:
    key: str = DEVELOPMENT_KEY

    @property
    def key_id(self) -> str:
        """Names the key without revealing it (the first 12 hex digits of its SHA-256)."""
        return hashlib.sha256(self.key.encode()).hexdigest()[:12]

    def sign(self, case_id: str, last_seq: int, head_hash: str) -> str:
        message = f"{case_id}\n{last_seq}\n{head_hash}".encode()
        return hmac.new(self.key.encode(), message, hashlib.sha256).hexdigest()

    def holds(self, case_id: str, last_seq: int, head_hash: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign(case_id, last_seq, head_hash), signature)

    def seal(self, row: dict[str, Any]) -> str:
        """A stored entry's seal: its every field, the summary's words included, which the
        chain's hashes leave out so that replaying cases never depend on wording."""
        return hmac.new(self.key.encode(), canonical(row).encode(), hashlib.sha256).hexdigest()
