"""Text normalisation: the first half of the text pipeline (:mod:`elmo.text.pipeline`).

Every text a model sees goes through it: the petitions (the clean stage), the task records
(finetune's readers), raw input to ``Classifier``, ``Elmo.embed`` and the registry's pyfunc. One
implementation, vectorised with polars: :meth:`Normalizer.series` on a column, :meth:`Normalizer.texts`
for plain strings (the same code). In this order:

1. HTML entities decoded once (``&amp;`` -> ``&``, ``&#128;`` -> ``€``; Python's html.unescape).
2. Unicode NFC (decomposed Hangul jamo sequences become syllables).
3. Zero-width and invisible format characters removed (ZWSP, ZWNJ, ZWJ, word joiner, invisible
   operators, BOM, soft hyphen, bidi marks, embeddings and isolates).
4. Other control characters (C0 except tab/newline/CR, DEL, C1) become spaces.
5. The board's moderator notices (``clean.moderator_notices``) become spaces, e.g.
   "[본 게시물의 일부 내용이 국민 청원 요건에 위배되어 관리자에 의해 수정되었습니다]".
6. Every masked span (``clean.mask_pattern``: ``***``, ``○○○``, ``XXX`` …) becomes one
   placeholder (``clean.mask_placeholder``, default ``***``): a mask is one token, whatever
   its length; directly adjacent masks (``**○○``) are one span.
7. Whitespace runs (any Unicode White_Space: spaces, NBSP, ideographic space, tabs, newlines)
   become one space; both ends stripped.

Patterns use Rust regex syntax (polars): ``\\p{Hangul}`` works, look-around does not.
"""

from __future__ import annotations

import html
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

import polars as pl

from elmo.params.clean import check_pattern

ZERO_WIDTH = r"[\u200B-\u200F\u2060-\u2064\uFEFF\u00AD\u202A-\u202E\u2066-\u2069]"
CONTROL = r"[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]"
SPACES = r"[^\S ]\s*| \s+"  # a whitespace run other than a lone space (those stay as they are)
COUNT_KEYS = (
    "html_entities",  # values changed by entity decoding
    "nfc_changed",  # values changed by NFC
    "zero_width_removed",  # characters
    "control_chars",  # characters
    "moderator_notices_removed",  # notices
    "masked_spans",  # spans replaced by the placeholder
)
CONFIG_KEYS = ("moderator_notices", "mask_pattern", "mask_placeholder")


def _unescape_nfc(s: pl.Series, counts: Counter) -> pl.Series:
    """Steps 1-2 (in Python: its NFC has a quick-check fast path that polars' lacks); only the
    values that change are written back."""
    idx, values = [], []
    for i, x in enumerate(s.to_list()):
        if x is None:
            continue
        y = x
        if "&" in y:
            z = html.unescape(y)
            if z != y:
                counts["html_entities"] += 1
                y = z
        if not unicodedata.is_normalized("NFC", y):
            counts["nfc_changed"] += 1
            y = unicodedata.normalize("NFC", y)
        if y is not x:
            idx.append(i)
            values.append(y)
    return s.scatter(idx, values) if idx else s


def _replace(s: pl.Series, pattern: str, value: str, counts: Counter, key: str) -> pl.Series:
    """Replace every match of ``pattern``, counting them; only the rows that match are rewritten."""
    n = s.str.count_matches(pattern)
    counts[key] += int(n.sum() or 0)
    rows = (n > 0).arg_true()
    if rows.len() == 0:
        return s
    return s.scatter(rows, s.gather(rows).str.replace_all(pattern, value))


@dataclass
class Normalizer:
    """Compiled settings; ``counts`` tallies what was changed (for the clean report)."""

    moderator_notices: list[str]
    mask_pattern: str
    mask_placeholder: str
    counts: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        for i, p in enumerate(self.moderator_notices):
            check_pattern(p, f"clean.moderator_notices[{i}]")
        check_pattern(self.mask_pattern, "clean.mask_pattern")
        if "$" in self.mask_placeholder:
            raise ValueError("clean.mask_placeholder: must not contain '$'")
        self._notices = "|".join(f"(?:{p})" for p in self.moderator_notices) or None
        self._masks = f"(?:{self.mask_pattern})+"  # adjacent masks ("**○○") are one span

    @classmethod
    def from_params(cls, p) -> "Normalizer":
        """From the ``clean`` params section."""
        return cls(list(p.moderator_notices), p.mask_pattern, p.mask_placeholder)

    @classmethod
    def from_config(cls, config: dict) -> "Normalizer":
        """From :meth:`config` (what a text pipeline file stores)."""
        missing = [k for k in CONFIG_KEYS if k not in config]
        if missing:
            raise ValueError(f"normalizer config lacks {', '.join(missing)} (got {sorted(config)})")
        return cls(list(config["moderator_notices"]), config["mask_pattern"], config["mask_placeholder"])

    def config(self) -> dict:
        return {"moderator_notices": list(self.moderator_notices), "mask_pattern": self.mask_pattern,
                "mask_placeholder": self.mask_placeholder}

    def series(self, s: pl.Series) -> pl.Series:
        """Normalise a String series (nulls stay null); adds to ``counts``."""
        c = self.counts
        s = _unescape_nfc(s.cast(pl.String).clone(), c)
        s = _replace(s, ZERO_WIDTH, "", c, "zero_width_removed")
        s = _replace(s, CONTROL, " ", c, "control_chars")
        if self._notices:
            s = _replace(s, self._notices, " ", c, "moderator_notices_removed")
        s = _replace(s, self._masks, self.mask_placeholder, c, "masked_spans")
        return _replace(s, SPACES, " ", Counter(), "spaces").str.strip_chars(" ")

    def texts(self, texts: list[str]) -> list[str]:
        return self.series(pl.Series("text", texts, dtype=pl.String)).to_list()

    def __call__(self, text: str) -> str:
        return self.texts([text])[0]

