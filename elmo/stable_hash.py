"""A stable fraction in [0, 1) for a record's key: the one hash behind every split of the project.

``unit_hash(key, salt)`` = the first 8 bytes of sha256(f"{salt}:{key}") read as a fraction. clean's
train/valid/test split (elmo/clean/split.py, keyed by petition_idx) and finetune's held-out slice of
the task's train split (elmo/task/experiment.py, keyed by record id) use it, so a record's side
depends only on its key, the salt and the fraction, never on row order or on what else is in the data.
"""

from __future__ import annotations

import hashlib


def unit_hash(key: int | str, salt: str) -> float:
    """A stable fraction in [0, 1) for ``key`` (a petition_idx, or any record id: UTF-8 encoded)."""
    digest = hashlib.sha256(f"{salt}:{key}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64
