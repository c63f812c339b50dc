"""Params of the tokenize stage (see elmo/stages/tokenize.py and elmo/text/)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from elmo.params.base import Section, runtime_only, runtime_only_keys
from elmo.params.paths import WorkspacePath


class TokenizeParams(Section):
    in_parquet: str = "data/interim/petitions.parquet"  # what clean writes
    out_dir: WorkspacePath = "data/processed/sentences"  # {train,valid,test}.parquet + tokenizer.json
    metrics: WorkspacePath = "metrics/tokenize.json"
    # Morphological analyser: mecab (konlpy's Mecab with the python-mecab-ko-dic dictionary, through
    # a fast output format; the default) or okt / komoran (konlpy, need a Java runtime).
    tagger: Literal["mecab", "okt", "komoran"] = "mecab"
    pos_tags: bool = False  # tokens as "morph/TAG" instead of "morph"
    fields: list[Literal["title", "content"]] = Field(default_factory=lambda: ["title", "content"], min_length=1)
    # A sentence longer than this many tokens is cut into pieces (after its last sentence-final
    # ending in the window when there is one in the window's second half, else hard at the limit).
    max_sentence_tokens: int = Field(100, ge=8, le=10_000)
    workers: int = runtime_only(0, ge=0, le=256)  # processes; 0 = every core this process may use


# Keys that change how the stage runs but never what it writes (dvc.yaml leaves them out of the
# stage's params, so changing them does not rerun it; tests/test_tokenize_dvc.py checks that).
RUNTIME_ONLY = runtime_only_keys(TokenizeParams)
