"""The files stages hand to each other: split names, file names and the sentences schema.

One home for facts that several stages (and their tests) must agree on; a leaf module (standard
library only; pyarrow/polars are imported by the functions that build their schema objects).
"""

from __future__ import annotations

# clean's `split` column, tokenize's files per split, vocab's and pretrain's arrays per split
SPLITS = ("train", "valid", "test")

# tokenize writes it next to the sentences (the tagger and its settings); vocab reads it
TOKENIZER_FILE = "tokenizer.json"

# the text pipeline (normaliser + tokenizer settings, elmo.text.pipeline): tokenize writes it next to
# the sentences, vocab copies it into the vocabulary (and so into every biLM), finetune into every
# classifier directory
TEXT_PIPELINE_FILE = "text_pipeline.json"

# tokenize's {split}.parquet, one row per sentence: (column, arrow type, polars type)
SENTENCE_COLUMNS = (
    ("petition_idx", "int64", "Int64"),
    ("sentence_idx", "int32", "Int32"),
    ("tokens", "list<string>", "List(Utf8)"),
)


def sentences_arrow_schema():
    """:data:`SENTENCE_COLUMNS` as a ``pyarrow.Schema`` (what tokenize writes)."""
    import pyarrow as pa

    types = {"int64": pa.int64(), "int32": pa.int32(), "list<string>": pa.list_(pa.string())}
    return pa.schema([(name, types[arrow]) for name, arrow, _ in SENTENCE_COLUMNS])


def sentences_polars_schema() -> dict:
    """:data:`SENTENCE_COLUMNS` as polars dtypes (what vocab checks it reads)."""
    import polars as pl

    types = {"Int64": pl.Int64, "Int32": pl.Int32, "List(Utf8)": pl.List(pl.Utf8)}
    return {name: types[polars] for name, _, polars in SENTENCE_COLUMNS}
