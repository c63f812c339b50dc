"""Cleaning the raw petitions: schema checks and quarantine reasons, splits.

Text normalisation is the text pipeline's (``elmo.text.normalize``, ``elmo.text.pipeline``): the
clean stage applies it to the petitions, and every later reader of text applies the same one.

- ``schema``    — a raw line -> typed record or a quarantine reason; the output columns
- ``split``     — train/valid/test from a stable hash of ``petition_idx``
- ``reader``    — the month files named by crawl's manifest, checked against their sha256
"""

from elmo.clean.schema import OUTPUT_COLUMNS, REASONS, Rejection, parse_record
from elmo.clean.split import split_of
from elmo.contracts import SPLITS

__all__ = [
    "OUTPUT_COLUMNS",
    "REASONS",
    "Rejection",
    "parse_record",
    "SPLITS",
    "split_of",
]
