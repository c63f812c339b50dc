"""train / valid / test from a stable hash of ``petition_idx`` — never from row order.

``u = first 8 bytes of sha256(f"{salt}:{petition_idx}")`` read as a fraction in [0, 1);
``u < test`` -> test, ``u < test + valid`` -> valid, else train. A petition's split depends only
on its id, the salt and the fractions, so adding or removing months never moves one.
"""

from __future__ import annotations

from collections.abc import Iterable

from elmo.stable_hash import unit_hash


def split_of(petition_idx: int, valid_fraction: float, test_fraction: float, salt: str) -> str:
    u = unit_hash(petition_idx, salt)
    if u < test_fraction:
        return "test"
    if u < test_fraction + valid_fraction:
        return "valid"
    return "train"


def assign_splits(ids: Iterable[int], valid_fraction: float, test_fraction: float, salt: str) -> list[str]:
    return [split_of(int(i), valid_fraction, test_fraction, salt) for i in ids]
