"""Params of the clean stage (see elmo/stages/clean.py and elmo/clean/)."""

from __future__ import annotations

import polars as pl
from pydantic import Field, field_validator, model_validator

from elmo.params.base import Section
from elmo.params.paths import WorkspacePath

# The board's own notices, appended by moderators to an edited petition; not the author's words.
DEFAULT_MODERATOR_NOTICES = [
    r"\[\s*본\s*게시물의\s*일부\s*내용이\s*국민\s*청원\s*요건에\s*위배되어\s*관리자에\s*의해\s*수정되었습니다\.?\s*\]",
    r"\(\s*본문의\s*내용\s*중\s*타인의\s*명의\s*등\s*개인정보가\s*무분별하게\s*노출되어\s*해당\s*내용은\s*"
    r"홈페이지\s*관리자에\s*의해\s*'숨김'\s*처리\s*되었습니다\.?\s*\)",
]
# Masked spans (Rust regex syntax): 2+ asterisks, 2+ circles or 3+ x (***, ○○○, XXX), with any
# asterisks and circles around them (**○○*): each becomes one placeholder.
DEFAULT_MASK_PATTERN = r"[*＊○◯]*(?:[*＊]{2}|[○◯]{2}|[xX]{3,})[*＊○◯]*"


def check_pattern(pattern: str, what: str) -> None:
    """``ValueError`` unless ``pattern`` is a polars (Rust) regex that cannot match ''.

    Here rather than in elmo.text.normalize (which uses it too) so that params never import the
    stages' code: validating params.yaml must not make every stage depend on elmo/clean.
    """
    try:
        matches_empty = pl.Series([""]).str.contains(pattern).item()
    except pl.exceptions.PolarsError as err:
        first = str(err).strip().splitlines()
        raise ValueError(f"{what}: not a valid (Rust syntax) regular expression: {' '.join(first[:4])}") from None
    if matches_empty:
        raise ValueError(f"{what}: the pattern matches the empty string")


class CleanParams(Section):
    in_dir: str = "data/raw/petitions"
    out_parquet: WorkspacePath = "data/interim/petitions.parquet"
    quarantine: WorkspacePath = "data/interim/quarantine.jsonl"
    metrics: WorkspacePath = "metrics/clean.json"
    valid_fraction: float = Field(0.05, ge=0, lt=1)
    test_fraction: float = Field(0.05, ge=0, lt=1)
    split_salt: str = "elmo-ko-split-v1"
    moderator_notices: list[str] = DEFAULT_MODERATOR_NOTICES  # regexes, removed from title and content
    mask_pattern: str = DEFAULT_MASK_PATTERN  # regex of a masked span
    mask_placeholder: str = "***"  # what every masked span becomes

    @field_validator("moderator_notices")
    @classmethod
    def _notices_compile(cls, value: list[str]) -> list[str]:
        for i, pattern in enumerate(value):
            check_pattern(pattern, f"item {i}")
        return value

    @field_validator("mask_pattern")
    @classmethod
    def _mask_compiles(cls, value: str) -> str:
        check_pattern(value, "mask_pattern")
        return value

    @field_validator("mask_placeholder")
    @classmethod
    def _placeholder(cls, value: str) -> str:
        if "$" in value:
            raise ValueError("must not contain '$' (it would be read as a regex group reference)")
        return value

    @model_validator(mode="after")
    def _fractions(self) -> "CleanParams":
        if self.valid_fraction + self.test_fraction >= 1:
            raise ValueError(
                f"valid_fraction + test_fraction must be below 1 (got {self.valid_fraction} + {self.test_fraction})"
            )
        return self
