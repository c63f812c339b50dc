"""Compact, memory-mapped training arrays: what the pretrain stage reads instead of text.

``arrays_dir`` (written by the vocab stage, atomically as one directory)::

    arrays.json            format, vocabulary sha256, sizes, per-split counts
    type_chars.npy         (n_types, C) uint16  character ids of every token type
    type_words.npy         (n_types,)   int32   word id (softmax target) of every token type
    types.txt              the token types from id 4 on, one per line (for inspection)
    {split}.tokens.npy     (n_tokens,)  int32   type ids of all sentences, concatenated
    {split}.offsets.npy    (n_sent+1,)  int64   sentence i is tokens[offsets[i]:offsets[i+1]]
    {split}.keys.npy       (n_sent, 2)  int64   (petition_idx, sentence_idx) of each sentence

Type ids: 0..3 are <pad> <unk> <bos> <eos>; 4..V-1 are the vocabulary's words in word-id order
(so a word's type id *is* its word id); V.. are the tokens outside the vocabulary, from every
split, in code point order. An out-of-vocabulary token therefore keeps its own row of real
characters in ``type_chars`` while its ``type_words`` entry is <unk> (1).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from elmo.errors import StageError
from elmo.io import atomic_path, atomic_write_json, atomic_write_text
from elmo.vocab.chars import CHAR_DTYPE, UNK as CHAR_UNK
from elmo.vocab.vocabulary import Vocabulary
from elmo.vocab.words import WORD_SPECIALS

ARRAYS_JSON, TYPE_CHARS, TYPE_WORDS, TYPES_TXT = "arrays.json", "type_chars.npy", "type_words.npy", "types.txt"
FORMAT = 1
# Names for the special type ids in the lookup; no token can be equal to them (tokens hold no controls).
_SPECIAL_CATEGORIES = [f"\x00{s}" for s in WORD_SPECIALS]


def split_files(split: str) -> dict[str, str]:
    return {"tokens": f"{split}.tokens.npy", "offsets": f"{split}.offsets.npy", "keys": f"{split}.keys.npy"}


def build_arrays(vocab: Vocabulary, tables: dict[str, pl.DataFrame], out_dir: str | Path,
                 known_types: dict[str, pl.Series] | None = None) -> dict:
    """Write the arrays of ``tables`` (split → petition_idx, sentence_idx, tokens); return counts per split.

    ``known_types`` may give a split's distinct tokens when already computed (the train counts).
    """
    out_dir = Path(out_dir)
    V = vocab.size
    vocab_words = vocab.words.words[len(WORD_SPECIALS):]
    flats = {s: t.select(pl.col("tokens").explode()).to_series() for s, t in tables.items()}
    distinct = [(known_types or {}).get(s, None) for s in flats]
    distinct = [d if d is not None else flats[s].unique() for d, s in zip(distinct, flats)]
    seen = pl.concat([d.rename("tokens") for d in distinct]) if distinct else pl.Series("tokens", [], pl.Utf8)
    oov = seen.filter(~seen.is_in(vocab_words)).unique().sort().to_list()
    types = vocab_words + oov
    lookup = pl.DataFrame({"tokens": _SPECIAL_CATEGORIES + types,
                           "type_id": np.arange(len(types) + len(WORD_SPECIALS), dtype=np.int32)})
    type_chars, type_words = vocab.type_table(types)
    keep = vocab.max_chars_per_token - 2
    n_units = np.zeros(len(type_words), dtype=np.int64)
    n_units[len(WORD_SPECIALS):] = [vocab.chars.n_units(t) for t in types]
    truncated_type = n_units > keep
    unk_units_type = (type_chars == CHAR_UNK).sum(axis=1)
    unk_units_type[: len(WORD_SPECIALS)] = 0
    stats: dict[str, dict] = {}
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        np.save(tmp / TYPE_CHARS, type_chars.astype(CHAR_DTYPE))
        np.save(tmp / TYPE_WORDS, type_words.astype(np.int32))
        atomic_write_text(tmp / TYPES_TXT, "".join(f"{t}\n" for t in types))
        for split, table in tables.items():
            joined = flats[split].to_frame().join(lookup, on="tokens", how="left", maintain_order="left")["type_id"]
            assert joined.null_count() == 0, "every token has a type id by construction"
            ids = joined.to_numpy().astype(np.int32)
            lengths = table["tokens"].list.len().to_numpy().astype(np.int64)
            offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
            np.cumsum(lengths, out=offsets[1:])
            keys = np.stack([table["petition_idx"].to_numpy().astype(np.int64),
                             table["sentence_idx"].to_numpy().astype(np.int64)], axis=1)
            files = split_files(split)
            np.save(tmp / files["tokens"], ids)
            np.save(tmp / files["offsets"], offsets)
            np.save(tmp / files["keys"], keys)
            n_tokens = len(ids)
            stats[split] = {
                "sentences": len(lengths),
                "tokens": n_tokens,
                "oov_tokens": int((ids >= V).sum()),
                "truncated_tokens": int(truncated_type[ids].sum()),
                "units": int(np.minimum(n_units[ids], keep).sum()),
                "unk_units": int(unk_units_type[ids].sum()),
                "max_sentence_tokens": int(lengths.max()) if len(lengths) else 0,
            }
        meta = {
            "format": FORMAT, "vocab_sha256": vocab.sha256, "vocab_size": V, "n_types": len(type_words),
            "char_unit": vocab.chars.unit, "char_size": vocab.char_size,
            "max_chars_per_token": vocab.max_chars_per_token, "splits": stats,
        }
        atomic_write_json(tmp / ARRAYS_JSON, meta)
    return stats


def read_types(arrays_dir: str | Path) -> list[str]:
    """The token types from type id 4 on (``types.txt``), in type-id order."""
    path = Path(arrays_dir) / TYPES_TXT
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (rebuild with `elmo vocab`)")
    return path.read_text(encoding="utf-8").splitlines()


class SentenceArrays:
    """Read-only, memory-mapped view of one split (opened lazily: cheap to pickle to workers)."""

    def __init__(self, arrays_dir: str | Path, split: str, vocab: Vocabulary | None = None) -> None:
        self.dir = Path(arrays_dir)
        self.split = split
        meta_path = self.dir / ARRAYS_JSON
        if not meta_path.is_file():
            raise FileNotFoundError(f"{meta_path}: no such file (the training arrays are written by `elmo vocab`)")
        self.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if self.meta.get("format") != FORMAT:
            raise StageError(f"{meta_path}: format {self.meta.get('format')!r}, this code reads {FORMAT}")
        if split not in self.meta["splits"]:
            raise StageError(f"{meta_path}: no split {split!r} (has {', '.join(self.meta['splits'])})")
        if vocab is not None and vocab.sha256 != self.meta["vocab_sha256"]:
            raise StageError(f"{self.dir}: built with vocabulary {self.meta['vocab_sha256'][:12]}, not the given "
                             f"{vocab.sha256[:12]}; rebuild with `elmo vocab`")
        for name in (TYPE_CHARS, TYPE_WORDS, *split_files(split).values()):
            if not (self.dir / name).is_file():
                raise FileNotFoundError(f"{self.dir / name}: no such file (rebuild with `elmo vocab`)")
        self._arrays: dict[str, np.ndarray] | None = None
        self._type_tables: tuple[np.ndarray, np.ndarray] | None = None

    def with_type_tables(self, type_chars: np.ndarray, type_words: np.ndarray) -> SentenceArrays:
        """The same sentences (type ids) read through other type tables: another vocabulary's
        characters and word ids for the same token types (pretrain's ``init: previous``)."""
        if len(type_chars) != self.meta["n_types"] or len(type_words) != self.meta["n_types"]:
            raise ValueError(f"{self.dir}: type tables of {len(type_words)} types for {self.meta['n_types']}")
        other = SentenceArrays.__new__(SentenceArrays)
        other.__dict__.update(self.__getstate__())
        other._type_tables = (np.ascontiguousarray(type_chars, dtype=np.int64),
                              np.ascontiguousarray(type_words, dtype=np.int64))
        return other

    def _open(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            files = {"type_chars": TYPE_CHARS, "type_words": TYPE_WORDS, **split_files(self.split)}
            arrays = {}
            for key, name in files.items():
                try:
                    arrays[key] = np.load(self.dir / name, mmap_mode="r")
                except (ValueError, OSError) as err:
                    raise StageError(f"{self.dir / name}: not a readable .npy array ({err}); "
                                     "rebuild with `elmo vocab`") from None
            # The type tables are small and hit at random: keep them in memory as the collate dtypes.
            arrays["type_chars"] = np.ascontiguousarray(arrays["type_chars"], dtype=np.int64)
            arrays["type_words"] = np.ascontiguousarray(arrays["type_words"], dtype=np.int64)
            if self._type_tables is not None:
                arrays["type_chars"], arrays["type_words"] = self._type_tables
            n = self.meta["splits"][self.split]
            if len(arrays["offsets"]) != n["sentences"] + 1 or len(arrays["tokens"]) != n["tokens"]:
                raise StageError(f"{self.dir}: {self.split} arrays do not match {ARRAYS_JSON}; "
                                 "rebuild with `elmo vocab`")
            self._arrays = arrays
        return self._arrays

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_arrays"] = None  # memory maps are reopened in the receiving process
        return state

    def __len__(self) -> int:
        return int(self.meta["splits"][self.split]["sentences"])

    @property
    def tokens(self) -> np.ndarray:
        return self._open()["tokens"]

    @property
    def offsets(self) -> np.ndarray:
        return self._open()["offsets"]

    @property
    def keys(self) -> np.ndarray:
        return self._open()["keys"]

    @property
    def type_chars(self) -> np.ndarray:
        return self._open()["type_chars"]

    @property
    def type_words(self) -> np.ndarray:
        return self._open()["type_words"]

    @property
    def lengths(self) -> np.ndarray:
        """(n_sent,) tokens per sentence (without <bos>/<eos>)."""
        return np.diff(self.offsets)

    def sentence(self, i: int) -> np.ndarray:
        """Type ids of sentence ``i``."""
        off = self.offsets
        return self.tokens[off[i]:off[i + 1]]
