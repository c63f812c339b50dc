"""Cleaning the raw petitions: schema checks and quarantine reasons, text normalisation, splits.

- ``schema``    — a raw line -> typed record or a quarantine reason; the output columns
- ``normalize`` — ``normalize_text`` / ``Normalizer`` (NFC, entities, invisible characters,
  moderator notices, masked spans, whitespace)
- ``split``     — train/valid/test from a stable hash of ``petition_idx``
- ``reader``    — the month files named by crawl's manifest, checked against their sha256
"""

from elmo.clean.normalize import Normalizer, normalize_text
from elmo.clean.schema import OUTPUT_COLUMNS, REASONS, Rejection, parse_record
from elmo.clean.split import split_of
from elmo.contracts import SPLITS

__all__ = [
    "Normalizer",
    "normalize_text",
    "OUTPUT_COLUMNS",
    "REASONS",
    "Rejection",
    "parse_record",
    "SPLITS",
    "split_of",
]
