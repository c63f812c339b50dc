"""The task model: shapes, padding, training on a tiny fixture set, Classifier save/load/predict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from elmo.task.model import TaskConfig, TaskModel
from elmo.task.train import TaskData, fit, make_batches, predict_proba
from elmo.task.words import TaskWords
from elmo.text.pipeline import TextPipeline
from tiny_elmo import HEADLINES, make_bilm_dir


@pytest.fixture(scope="module")
def tokenizer():
    from elmo.text import Tokenizer

    return Tokenizer("mecab")


@pytest.fixture(scope="module")
def bilm_dir(tmp_path_factory, tokenizer) -> Path:
    return make_bilm_dir(tmp_path_factory.mktemp("task"), tokenizer)


@pytest.fixture(scope="module")
def elmo(bilm_dir):
    from elmo.embed.elmo import Elmo

    return Elmo.load(bilm_dir)


@pytest.fixture(scope="module")
def dataset(elmo, bilm_dir, tmp_path_factory):
    from elmo.embed.cache import cached_layers

    labels = sorted(HEADLINES)
    texts = [(t, lab) for lab, ts in HEADLINES.items() for t in ts]
    tokens = elmo.tokenize([t for t, _ in texts])
    words = TaskWords.build(tokens)
    y = np.array([labels.index(lab) for _, lab in texts])
    cache = cached_layers(elmo, tokens, tmp_path_factory.mktemp("cache"), model_dir=bilm_dir, progress=False)
    return labels, words, TaskData([words.ids(t) for t in tokens], y, cache), tokens


def config(elmo, words, **kw) -> TaskConfig:
    base = dict(n_classes=3, vocab_size=len(words), elmo_layers=elmo.n_layers, elmo_dim=elmo.dim, word_dim=8,
                hidden=8, dropout=0.0, elmo_dropout=0.0)
    base.update(kw)
    return TaskConfig(**base)


def test_padding_does_not_change_a_text_s_logits(elmo, dataset) -> None:
    labels, words, data, _ = dataset
    torch.manual_seed(0)
    model = TaskModel(config(elmo, words, elmo_output_mix=True)).eval()
    short = min(range(len(data)), key=lambda i: len(data.words[i]))
    long = max(range(len(data)), key=lambda i: len(data.words[i]))
    alone = model(*data.batch([short], True))
    together = model(*data.batch([long, short], True))[1:]
    assert together.shape == (1, 3) and torch.allclose(alone, together, atol=1e-5)


@pytest.mark.parametrize("kw", [dict(use_elmo=False), dict(word_dim=0), dict(elmo_output_mix=True, rnn="gru",
                                                                                 pooling="mean", elmo_layer_norm=True)])
def test_variants_produce_logits(elmo, dataset, kw) -> None:
    labels, words, data, _ = dataset
    model = TaskModel(config(elmo, words, **kw))
    logits = model(*data.batch([0, 1, 2], model.cfg.use_elmo))
    assert logits.shape == (3, 3) and torch.isfinite(logits).all()


def test_finetuning_raises_training_accuracy(elmo, dataset) -> None:
    labels, words, data, _ = dataset
    torch.manual_seed(0)
    model = TaskModel(config(elmo, words))
    before = (predict_proba(model, data).argmax(1) == data.labels).mean()
    res = fit(model, data, data, labels, batch_size=6, lr=0.03, weight_decay=0.0, max_epochs=8, patience=8,
              grad_clip=5.0, seed=0, log=lambda s: None)
    after = (predict_proba(model, data).argmax(1) == data.labels).mean()
    assert after > before and after >= 0.9
    assert res.history[-1]["train_acc"] > res.history[0]["train_acc"]
    assert res.best_heldout["macro_f1"] == max(h["heldout_macro_f1"] for h in res.history)
    assert len(res.history) == 8 and res.best_epoch >= 1


def test_early_stopping_keeps_the_best_epoch(elmo, dataset) -> None:
    labels, words, data, _ = dataset
    model = TaskModel(config(elmo, words))
    res = fit(model, data, data, labels, batch_size=6, lr=1e-9, weight_decay=0.0, max_epochs=10, patience=2,
              grad_clip=5.0, seed=0, log=lambda s: None)
    assert res.stopped_early and len(res.history) == 3 and res.best_epoch == 1 and res.ended_by == "early_stop"


def test_learning_rate_decays_after_each_epoch_without_improvement(elmo, dataset) -> None:
    labels, words, data, _ = dataset
    model = TaskModel(config(elmo, words))
    res = fit(model, data, data, labels, batch_size=6, lr=1e-9, weight_decay=0.0, max_epochs=10, patience=3,
              grad_clip=5.0, seed=0, lr_decay=0.5, log=lambda s: None)
    assert res.best_epoch == 1 and len(res.history) == 4
    assert [h["lr"] for h in res.history] == [1e-9, 1e-9, 0.5e-9, 0.25e-9]


def test_time_budget_stops_training(elmo, dataset) -> None:
    labels, words, data, _ = dataset
    model = TaskModel(config(elmo, words))
    res = fit(model, data, data, labels, batch_size=6, lr=0.01, weight_decay=0.0, max_epochs=10, patience=10,
              grad_clip=5.0, seed=0, max_seconds=1e-6, log=lambda s: None)
    assert res.out_of_time and not res.stopped_early and len(res.history) == 1 and res.ended_by == "clock"


def test_batches_cover_every_item_once() -> None:
    lengths = np.random.default_rng(0).integers(1, 30, size=503)
    for rng in (None, np.random.default_rng(1)):
        batches = make_batches(lengths, 32, rng)
        assert sorted(np.concatenate(batches).tolist()) == list(range(503))
        assert max(len(b) for b in batches) == 32


def test_classifier_save_load_predict(elmo, dataset, bilm_dir, tokenizer, tmp_path) -> None:
    from elmo.task.classifier import Classifier, save_classifier

    labels, words, data, tokens = dataset
    torch.manual_seed(0)
    model = TaskModel(config(elmo, words, elmo_output_mix=True))
    fit(model, data, data, labels, batch_size=6, lr=0.02, weight_decay=0.0, max_epochs=5, patience=5,
        grad_clip=5.0, seed=0, log=lambda s: None)
    out = save_classifier(tmp_path / "clf", model=model, labels=labels, words=words,
                          pipeline=TextPipeline(tokenizer=tokenizer.config()), max_tokens=64, bilm_dir=bilm_dir,
                          layer_dtype="float16")
    clf = Classifier.load(out)
    texts = [t for ts in HEADLINES.values() for t in ts]
    expected = predict_proba(model, data)
    got = clf.predict_proba(texts)
    assert np.allclose(got, expected, atol=1e-4)  # raw text path == cached-layers path (fp16 cache)
    res = clf.predict(texts[:2])
    assert set(res[0]) == {"label", "probs"} and set(res[0]["probs"]) == set(labels)
    assert abs(sum(res[0]["probs"].values()) - 1) < 1e-5
    with pytest.raises(ValueError, match="text 1 is empty"):
        clf.predict(["국회", "   "])
    with pytest.raises(TypeError):
        clf.predict("한 문장")
    assert clf.predict([]) == []


def test_model_directories_have_one_mode(elmo, dataset, bilm_dir, tokenizer, tmp_path) -> None:
    """The biLM's and the classifier's directories come from one writer (elmo.io.model_directory): every
    file 0666 and every folder 0777 less the umask, even a biLM copied in from files of other modes
    (safetensors writes 0600, DVC's cache 0444)."""
    import os
    import shutil

    from elmo.model import BiLM
    from elmo.task.classifier import save_classifier

    mask = os.umask(0)
    os.umask(mask)
    source = Path(shutil.copytree(bilm_dir, tmp_path / "source"))
    for i, f in enumerate(sorted(p for p in source.rglob("*") if p.is_file())):
        f.chmod((0o600, 0o444, 0o640)[i % 3])
    labels, words, data, tokens = dataset
    model = TaskModel(config(elmo, words))
    clf = save_classifier(tmp_path / "clf", model=model, labels=labels, words=words,
                          pipeline=TextPipeline(tokenizer=tokenizer.config()), max_tokens=64, bilm_dir=source,
                          layer_dtype="float32")
    bilm = BiLM.load(source).save(tmp_path / "bilm", vocab_dir=source / "vocab")

    def modes(root: Path) -> dict[str, str]:
        return {p.relative_to(root).as_posix(): oct(p.stat().st_mode & 0o777) for p in [root, *root.rglob("*")]}

    got = {**{f"clf/{k}": v for k, v in modes(clf).items()}, **{f"bilm/{k}": v for k, v in modes(bilm).items()}}
    assert {"clf/weights.safetensors", "clf/words.txt", "clf/bilm/weights.safetensors", "clf/bilm/vocab/words.txt",
            "bilm/weights.safetensors", "bilm/config.json", "bilm/vocab/chars.txt"} <= set(got)
    want = {k: oct((0o777 if (tmp_path / k).is_dir() else 0o666) & ~mask) for k in got}
    assert got == want
