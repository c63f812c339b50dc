"""Training arrays, the Batch, and the bucketing loader."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from elmo.data.arrays import SentenceArrays
from elmo.data.batch import Batch, encode_batch
from elmo.data.loader import SentenceDataset, make_loader
from elmo.data.sampler import BucketBatchSampler
from elmo.errors import StageError
from elmo.stages import vocab as vocab_stage
from elmo.vocab import Vocabulary
from elmo.vocab.chars import UNK as CHAR_UNK
from test_vocab_stage import params, write_sentences


def _corpus(n: int = 300, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words = ["나", "는", "학교", "에", "간다", ".", "집", "우리", "청원", "합니다", "정부", "😀", "COVID", "19"]
    rare = [f"희귀{i}" for i in range(40)]  # seen once: out of vocabulary with min_count=2
    out = []
    for _ in range(n):
        k = rng.choice([1, 2, 3, 5, 8, 13, 21, 34])
        out.append(" ".join(rng.choice(words) if rng.random() > 0.05 else rng.choice(rare) for _ in range(k)))
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("arrays")
    write_sentences(root / "data/processed/sentences",
                    {"train": _corpus(300), "valid": _corpus(40, 1), "test": _corpus(5, 2)})
    vocab_stage.run(params(min_count=2, char_unit="jamo", char_min_count=1), root)
    return root


def _vocab(root: Path) -> Vocabulary:
    return Vocabulary.load(root / "data/processed/vocab")


def _sentences(root: Path, split: str) -> list[list[str]]:
    return pl.read_parquet(root / f"data/processed/sentences/{split}.parquet")["tokens"].to_list()


def test_arrays_decode_back_to_the_tokens(built: Path) -> None:
    vocab = _vocab(built)
    arr = SentenceArrays(built / "data/processed/arrays", "train", vocab)
    types = ["<pad>", "<unk>", "<bos>", "<eos>"] + (built / "data/processed/arrays/types.txt").read_text().splitlines()
    sentences = _sentences(built, "train")
    assert len(arr) == len(sentences) and arr.lengths.tolist() == [len(s) for s in sentences]
    for i, tokens in enumerate(sentences):
        ids = arr.sentence(i)
        assert [types[t] for t in ids] == tokens
        assert arr.type_words[ids].tolist() == vocab.word_ids(tokens).tolist()
        assert np.array_equal(arr.type_chars[ids], vocab.char_ids(tokens))
    assert arr.keys[:, 0].tolist() == [100 + i for i in range(len(sentences))]
    # a word's type id is its word id
    V = vocab.size
    assert arr.type_words[:V].tolist() == list(range(V)) and set(arr.type_words[V:].tolist()) == {1}


def _check_batch(batch: Batch, sentences: list[list[str]], vocab: Vocabulary) -> None:
    B, T = batch.tokens.shape
    assert batch.chars.shape == (B, T, vocab.max_chars_per_token)
    assert batch.chars.dtype == batch.tokens.dtype == batch.fwd_targets.dtype == batch.bwd_targets.dtype == torch.int64
    assert batch.mask.dtype == torch.bool
    for b, tokens in enumerate(sentences):
        n = len(tokens) + 2
        words = [2] + vocab.word_ids(tokens).tolist() + [3]
        assert batch.mask[b].tolist() == [True] * n + [False] * (T - n)
        assert batch.tokens[b, :n].tolist() == words and not batch.tokens[b, n:].any()
        assert batch.fwd_targets[b].tolist() == words[1:] + [0] * (T - n + 1)  # next word; none at <eos>
        assert batch.bwd_targets[b].tolist() == [0] + words[:-1] + [0] * (T - n)  # previous; none at <bos>
        assert np.array_equal(batch.chars[b, 1:n - 1].numpy(), vocab.char_ids(tokens))  # real chars, OOV too
        assert batch.chars[b, 0, :3].tolist() == [1, 3, 2] and batch.chars[b, n - 1, :3].tolist() == [1, 4, 2]
        assert not batch.chars[b, n:].any()
    assert batch.num_targets == int(batch.mask.sum()) - B


def test_oov_word_keeps_real_characters_but_unk_target(built: Path) -> None:
    vocab = _vocab(built)
    assert "학교나" not in vocab.words.index  # made of known jamo, but not a word of the corpus
    batch = encode_batch(vocab, [["나", "학교나", "간다"], ["완전히새로운말"]])
    assert batch.tokens[0].tolist() == [2, vocab.words.index["나"], 1, vocab.words.index["간다"], 3]
    assert batch.fwd_targets[0, 1].item() == 1  # predicting the OOV word: <unk>
    oov_chars = batch.chars[0, 2].tolist()
    assert oov_chars == vocab.char_ids(["학교나"])[0].tolist() and CHAR_UNK not in oov_chars
    assert len(set(oov_chars) - {0, 1, 2}) > 2  # its own jamo, not an <unk> row
    _check_batch(batch, [["나", "학교나", "간다"], ["완전히새로운말"]], vocab)


@pytest.mark.parametrize("mode", [{"batch_size": 16}, {"batch_size": 7, "drop_last": True}, {"max_tokens": 120},
                                  {"batch_size": 32, "shuffle": False}])
def test_one_epoch_yields_every_sentence_once(built: Path, mode: dict) -> None:
    vocab = _vocab(built)
    ds = SentenceDataset(built / "data/processed/arrays", "train", vocab)
    sentences = _sentences(built, "train")
    sampler_kw = {k: v for k, v in mode.items()}
    loader = make_loader(ds, seed=3, **sampler_kw)
    seen: list[int] = []
    n_batches = 0
    for indices, batch in zip(loader.batch_sampler, make_loader(ds, seed=3, **sampler_kw)):
        _check_batch(batch, [sentences[i] for i in indices], vocab)
        if "max_tokens" in mode and len(indices) > 1:
            assert batch.tokens.numel() <= mode["max_tokens"]
        seen.extend(indices)
        n_batches += 1
    if mode.get("drop_last"):
        assert len(seen) == len(set(seen)) == (len(sentences) // 7) * 7
    else:
        assert sorted(seen) == list(range(len(sentences)))
    assert n_batches == len(loader)


def test_bucketing_keeps_padding_small_and_is_seeded() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 100, size=5000)
    def padding(sampler) -> float:
        real = padded = 0
        for b in sampler:
            L = lengths[b] + 2
            real += L.sum()
            padded += L.max() * len(b)
        return 1 - real / padded
    bucketed = padding(BucketBatchSampler(lengths, batch_size=32, seed=1))
    random_batches = [list(c) for c in np.array_split(rng.permutation(5000), 5000 // 32)]
    assert bucketed < 0.05 < padding(random_batches) / 4
    a = BucketBatchSampler(lengths, batch_size=32, seed=1)
    b = BucketBatchSampler(lengths, batch_size=32, seed=1)
    first, again = list(a), list(b)
    assert first == again  # same seed, same epoch
    assert list(a) != first  # the next epoch reshuffles
    b.set_epoch(0)
    assert list(b) == first
    assert len(a) == len(first) == 157


def test_encode_batch_matches_the_dataset(built: Path) -> None:
    vocab = _vocab(built)
    ds = SentenceDataset(built / "data/processed/arrays", "valid", vocab)
    sentences = _sentences(built, "valid")
    idx = [0, 5, 3, 9]
    a = ds.collate(ds.__getitems__(idx))
    b = encode_batch(vocab, [sentences[i] for i in idx])
    for name in ("chars", "tokens", "mask", "fwd_targets", "bwd_targets"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    moved = a.to("cpu")
    assert isinstance(moved, Batch) and len(moved) == 4


def test_loader_workers_and_vocab_check(built: Path) -> None:
    vocab = _vocab(built)
    ds = SentenceDataset(built / "data/processed/arrays", "test", vocab)
    plain = [b.tokens for b in make_loader(ds, batch_size=2, seed=5)]
    with_workers = [b.tokens for b in make_loader(ds, batch_size=2, seed=5, num_workers=1)]
    assert len(plain) == len(with_workers) == 3
    assert all(torch.equal(x, y) for x, y in zip(plain, with_workers))
    other = Vocabulary(vocab.words, vocab.chars, {**vocab.tokenizer_config, "pos_tags": True})
    with pytest.raises(StageError, match="built with vocabulary"):
        SentenceDataset(built / "data/processed/arrays", "test", other)
    with pytest.raises(FileNotFoundError, match="arrays.json: no such file"):
        SentenceDataset(built / "nowhere", "test")
    with pytest.raises(ValueError, match="exactly one of batch_size"):
        make_loader(ds)
