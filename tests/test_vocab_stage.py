"""The vocab stage: word/char vocabularies on the train split, hashes, metrics, bad input."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from elmo.errors import StageError
from elmo.params import parse_params
from elmo.stages import vocab as stage
from elmo.text.parallel import SCHEMA
from elmo.text.pipeline import TextPipeline
from elmo.vocab import Vocabulary

TRAIN = [
    "나 는 학교 에 간다 .",
    "나 는 집 에 간다 .",
    "너 는 학교 에 간다 ?",
    "우리 는 COVID - 19 를 이긴다 😀",
    "학교 는 쉰다 .",
]
VALID = ["나 는 공원 에 간다 .", "그들 은 학교 에 간다 !"]
TEST = ["뷁 은 모른다 ."]
TOKENIZER = {"tagger": "mecab", "pos_tags": False, "max_sentence_tokens": 100}


def write_sentences(directory: Path, splits: dict[str, list[str]] | None = None, tokenizer=TOKENIZER) -> Path:
    """Tokenize-stage output from space-separated sentences (petition i has one sentence each)."""
    splits = splits if splits is not None else {"train": TRAIN, "valid": VALID, "test": TEST}
    directory.mkdir(parents=True, exist_ok=True)
    base = {"train": 100, "valid": 200, "test": 300}
    for split, sentences in splits.items():
        table = pa.table({
            "petition_idx": pa.array([base[split] + i for i in range(len(sentences))], pa.int64()),
            "sentence_idx": pa.array([0] * len(sentences), pa.int32()),
            "tokens": pa.array([s.split(" ") for s in sentences], pa.list_(pa.string())),
        }, schema=SCHEMA)
        pq.write_table(table, directory / f"{split}.parquet")
    (directory / "tokenizer.json").write_text(json.dumps({"tokenizer": tokenizer, "fields": ["title", "content"]}))
    TextPipeline(tokenizer=tokenizer).save(directory)
    return directory


def params(**vocab):
    return parse_params({"vocab": {"char_unit": "syllables", "min_count": 1, **vocab}})


@pytest.fixture()
def ws(tmp_path: Path) -> Path:
    write_sentences(tmp_path / "data/processed/sentences")
    return tmp_path


def _files(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_words_specials_first_then_frequency(ws: Path) -> None:
    stage.run(params(min_count=2), ws)
    lines = (ws / "data/processed/vocab/words.txt").read_text().splitlines()
    words = [line.split("\t")[0] for line in lines]
    counts = [int(line.split("\t")[1]) for line in lines]
    # train counts: 는 5, 간다 3, 에 3, 학교 3, . 3, 나 2; ties in code point order ('.' < '간' < '에' < '학')
    assert words == ["<pad>", "<unk>", "<bos>", "<eos>", "는", ".", "간다", "에", "학교", "나"]
    n_tokens = sum(len(s.split()) for s in TRAIN)
    assert counts[:4] == [0, n_tokens - sum(counts[4:]), 5, 5] and counts[4:] == [5, 3, 3, 3, 3, 2]
    stage.run(params(min_count=1, max_size=7), ws)
    words = [line.split("\t")[0] for line in (ws / "data/processed/vocab/words.txt").read_text().splitlines()]
    assert words == ["<pad>", "<unk>", "<bos>", "<eos>", "는", ".", "간다"]


def test_metrics_report_types_tokens_and_valid_coverage(ws: Path) -> None:
    report = stage.run(params(min_count=2), ws)
    m = json.loads((ws / "metrics/vocab.json").read_text())
    assert m == {k: report[k] for k in m}
    train_tokens = [t for s in TRAIN for t in s.split()]
    assert m["words"]["train_tokens"] == len(train_tokens) == 30
    assert m["words"]["train_types"] == len(set(train_tokens))
    assert m["words"]["size"] == 10
    # valid: 12 tokens; out of vocabulary: 공원, 그들, 은, ! → coverage 8/12
    assert m["splits"]["valid"]["tokens"] == 12 and m["splits"]["valid"]["oov_tokens"] == 4
    assert m["splits"]["valid"]["coverage"] == round(8 / 12, 6) and m["splits"]["valid"]["oov_rate"] == round(4 / 12, 6)
    oov = {"집", "너", "?", "우리", "COVID", "-", "19", "를", "이긴다", "😀", "쉰다"}
    assert m["splits"]["train"]["oov_tokens"] == sum(1 for t in train_tokens if t in oov)
    assert m["splits"]["test"]["unk_char_rate"] > 0  # 뷁, 모 … never seen in train
    char_counts = Counter(c for t in train_tokens for c in t)
    assert m["chars"] == {"unit": "syllables", "size": 6 + sum(n >= 2 for n in char_counts.values()),
                          "min_count": 2, "max_chars_per_token": 20}


def test_hash_is_stable_and_content_addressed(ws: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    stage.run(params(), ws)
    first = json.loads((ws / "data/processed/vocab/vocab.json").read_text())
    files, arrays = _files(ws / "data/processed/vocab"), _files(ws / "data/processed/arrays")
    stage.run(params(), ws)  # again, same place
    assert _files(ws / "data/processed/vocab") == files and _files(ws / "data/processed/arrays") == arrays
    other = tmp_path_factory.mktemp("other")
    write_sentences(other / "data/processed/sentences")
    stage.run(params(), other)  # again, elsewhere
    assert _files(other / "data/processed/vocab") == files
    assert first["sha256"] == Vocabulary.load(other / "data/processed/vocab").sha256
    assert first["chars"]["unit"] == "syllables" and first["tokenizer"] == TOKENIZER
    stage.run(params(min_count=2), ws)
    assert json.loads((ws / "data/processed/vocab/vocab.json").read_text())["sha256"] != first["sha256"]


def test_load_checks_files(ws: Path) -> None:
    stage.run(params(), ws)
    d = ws / "data/processed/vocab"
    v = Vocabulary.load(d)
    assert v.size == len((d / "words.txt").read_text().splitlines())
    assert v.word_ids(["학교", "없는말", "<unk>", "<pad>"]).tolist() == [v.words.index["학교"], 1, 1, 1]
    assert v.char_ids(["학교", "<pad>"]).shape == (2, 20)
    assert TextPipeline.load(d).tokenizer.config() == TOKENIZER  # the corpus's text pipeline travels with it
    words = (d / "words.txt").read_text()
    (d / "words.txt").write_text(words.replace("학교", "학원"))
    with pytest.raises(StageError, match="do not match the sha256"):
        Vocabulary.load(d)
    (d / "chars.txt").unlink()
    with pytest.raises(FileNotFoundError, match="chars.txt: no such file"):
        Vocabulary.load(d)


def test_each_char_unit_builds(ws: Path) -> None:
    for unit, size in (("bytes", 262), ("jamo", None), ("syllables", None)):
        stage.run(params(char_unit=unit, char_min_count=1), ws)
        v = Vocabulary.load(ws / "data/processed/vocab")
        assert v.chars.unit == unit and (size is None or v.char_size == size)
        rows = np.load(ws / "data/processed/arrays/type_chars.npy")
        assert rows.shape[1] == 20 and rows.max() < v.char_size


def test_bad_inputs_are_named(ws: Path) -> None:
    d = ws / "data/processed/sentences"
    (d / "valid.parquet").write_bytes(b"not parquet")
    with pytest.raises(StageError, match=rf"{d / 'valid.parquet'}: not a readable parquet file"):
        stage.run(params(), ws)
    (d / "train.parquet").write_bytes(b"")
    with pytest.raises(StageError, match=rf"{d / 'train.parquet'}: empty file \(0 bytes\)"):
        stage.run(params(), ws)
    write_sentences(d, {"train": [], "valid": VALID, "test": TEST})
    with pytest.raises(StageError, match=rf"{d / 'train.parquet'}: has no rows"):
        stage.run(params(), ws)
    write_sentences(d, {"train": ["좋은 문장", "나쁜  토큰"], "valid": [], "test": []})
    with pytest.raises(StageError, match=r"train.parquet: petition 101 sentence 0: field tokens holds a null, empty"):
        stage.run(params(), ws)
    write_sentences(d)
    (d / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match="tokenizer.json: no such file"):
        stage.run(params(), ws)
    write_sentences(d)
    (d / "text_pipeline.json").unlink()
    with pytest.raises(FileNotFoundError, match="text_pipeline.json: no such file"):
        stage.run(params(), ws)
    write_sentences(d, {"train": TRAIN, "valid": [], "test": []})
    report = stage.run(params(), ws)  # empty valid/test splits are fine, just without coverage
    assert report["splits"]["valid"]["coverage"] is None
